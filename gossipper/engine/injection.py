"""-inf CSV injection files: the values behind [fieldN] keywords.

SIPp's format: the first line chooses how calls pick a line (SEQUENTIAL, RANDOM or
USER), then one record per line with fields separated by ';'. Lines starting with
'//' are comments. A call keeps the line it picked for all its messages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from gossipper.errors import FileProblem

ORDERS = ("SEQUENTIAL", "RANDOM", "USER")


@dataclass
class InjectionFile:
    path: str
    order: str
    records: list[list[str]]
    _next_sequential: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def load(cls, path: str) -> InjectionFile:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            raise FileProblem(f"{path}: cannot read: {error.strerror}", setting="injection_file") from None
        lines = text.splitlines()
        if not lines:
            raise FileProblem(
                f"{path}:1: empty injection file (first line must be SEQUENTIAL, RANDOM or USER)"
            )
        order = lines[0].split(",")[0].strip().upper()
        if order not in ORDERS:
            raise FileProblem(f"{path}:1: unknown order {lines[0].strip()!r} (expected {', '.join(ORDERS)})")
        records = [
            line.rstrip("\r").split(";")
            for line in lines[1:]
            if line.strip() and not line.lstrip().startswith("//")
        ]
        if not records:
            raise FileProblem(f"{path}:2: injection file has no data lines")
        return cls(path=path, order=order, records=records)

    def pick_line(self, user_id: int) -> int:
        """The line a new call uses, by the file's order."""
        if self.order == "RANDOM":
            return self._rng.randrange(len(self.records))
        if self.order == "USER":
            return user_id % len(self.records)
        line = self._next_sequential
        self._next_sequential = (line + 1) % len(self.records)
        return line

    def field(self, line: int, index: int) -> str:
        record = self.records[line % len(self.records)]
        return record[index] if 0 <= index < len(record) else ""


class Injection:
    """All -inf files of a run; the first one is the default for [fieldN]."""

    def __init__(self, paths: list[str]) -> None:
        self.files = [InjectionFile.load(path) for path in paths]
        self._by_name = {Path(f.path).name: f for f in self.files} | {f.path: f for f in self.files}

    def file(self, name: str | None) -> InjectionFile | None:
        if name is None:
            return self.files[0] if self.files else None
        return self._by_name.get(name) or self._by_name.get(Path(name).name)

    def pick_lines(self, user_id: int) -> dict[str, int]:
        """Line chosen in every file for a new call, keyed by file path."""
        return {f.path: f.pick_line(user_id) for f in self.files}
