"""Files a reader may poll while the run writes them (the summary JSON, the HTML report)."""

from __future__ import annotations

import os
import tempfile

from gossipper.errors import FileProblem


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str, text: str, setting: str) -> None:
    """Write through a temporary file and a rename, so that a CI script polling the path
    never reads half a file; FileProblem naming the setting if it cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    temp_path: str | None = None
    try:
        fd, temp_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp_path, path)
    except OSError as error:
        if temp_path is not None and os.path.exists(temp_path):
            os.unlink(temp_path)
        raise FileProblem(f"cannot write {path}: {error.strerror or error}", setting=setting) from None
