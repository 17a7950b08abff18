"""Errors of the product's own layers, worded in their terms, never in flag names.

A lower layer knows which setting a bad value came from (a field of
`gossipper.settings`), not how the user spelled it: `cli/` maps `setting` to the flag
and picks the exit status, so one library call can serve a flag, a scenario attribute
and a test alike.
"""

from __future__ import annotations


class GossipperError(Exception):
    """A failure the user sees as one line. `setting` names the settings field whose
    value failed, None when the message already says where (a file and line)."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.setting = setting

    def for_setting(self, setting: str) -> GossipperError:
        """The same failure, now known to come from `setting`'s value."""
        self.setting = setting
        return self


class InvalidValue(GossipperError):
    """A value that cannot run: out of range, unknown, unresolvable, inconsistent."""


class FileProblem(GossipperError):
    """A file that cannot be read or written, or whose content is wrong (names file and line)."""


class BindError(GossipperError):
    """A local socket could not be bound or listen (SIPp exits -2 for this)."""


class ScenarioFatal(GossipperError):
    """A scenario's <error> action: SIPp's ERROR() ends the whole run at once (exit 255)."""


class PortRangeTooSmall(InvalidValue):
    """Streams that need more consecutive media ports than the allowed range holds."""

    def __init__(self, streams: int, base_port: int, last_port: int, max_port: int, fit: int) -> None:
        super().__init__(
            f"{streams} streams from port {base_port} need ports up to {last_port}, "
            f"above {max_port}; {fit} streams fit",
            setting="streams",
        )
        self.streams = streams
        self.base_port = base_port
        self.last_port = last_port
        self.max_port = max_port
        self.fit = fit
