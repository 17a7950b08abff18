"""Call generation and the per-call scenario interpreter."""
