"""RTP, SDP, codecs, classic per-call media and the scale engine."""
