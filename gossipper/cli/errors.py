"""Errors that end the process with a one-line message instead of a traceback."""

from gossipper.cli.exit_codes import EXIT_BIND_FAILED, EXIT_FATAL


class GossipperError(Exception):
    """A user-facing failure: the message is printed as one line, then we exit."""

    exit_code = EXIT_FATAL


class UsageError(GossipperError):
    """A bad flag or flag value (names the flag)."""


class ConfigError(GossipperError):
    """A bad file or file content (names the file and, where known, the line)."""


class BindError(GossipperError):
    """A local socket could not be bound (SIPp exits -2 for this)."""

    exit_code = EXIT_BIND_FAILED
