"""Command line: flags, their validation, and the entry point."""
