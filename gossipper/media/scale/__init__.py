"""The high-scale synthetic RTP engine (native core plus pure-Python backend)."""
