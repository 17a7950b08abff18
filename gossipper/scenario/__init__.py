"""SIPp XML scenarios: the model, the loader, keywords and the built-ins."""
