"""A run spread over several hosts (issue 17): the split of its work, and the Ray driver."""
