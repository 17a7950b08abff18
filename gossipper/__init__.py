"""gossipper: a SIPp-compatible SIP load generator with a high-scale RTP engine."""

__version__ = "0.1.0"
