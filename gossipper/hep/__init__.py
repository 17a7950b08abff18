"""HEPv3 capture copies toward a Homer collector."""
