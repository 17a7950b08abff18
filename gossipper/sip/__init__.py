"""SIP messages, transports and transaction helpers."""
