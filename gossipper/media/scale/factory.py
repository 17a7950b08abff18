"""Which scale backend runs, and a sentence saying why for the start line.

The native core is optional (it may not build), so it is imported only here and only
when asked for; every way of not getting it ends in the pure-Python backend with the
reason spelled out, except an explicit GOSSIPPER_MEDIA_BACKEND=native, which fails loudly
because the user asked for that backend and nothing else.
"""

from __future__ import annotations

import os

from gossipper.errors import InvalidValue
from gossipper.media.scale.api import ScaleEngine
from gossipper.media.scale.python_backend import PythonScaleEngine

BACKEND_ENV = "GOSSIPPER_MEDIA_BACKEND"  # python | native: overrides the caller's preference
IOURING_ENV = "GOSSIPPER_MEDIA_IOURING"  # 1: native core sends through io_uring
PREFERENCES = ("auto", "iouring", "send", "python")


def create_scale_engine(
    prefer: str = "auto", workers: int | None = None, rt_priority: int = 0, quality: bool = True
) -> ScaleEngine:
    """An engine, not started: native send() loop if the core imports, else pure Python.

    prefer: "auto" (native send loop, or io_uring when GOSSIPPER_MEDIA_IOURING=1),
    "iouring", "send" or "python"; GOSSIPPER_MEDIA_BACKEND overrides it. rt_priority:
    SCHED_RR priority the native workers ask for when they start (0: normal scheduling).
    quality: measure what comes back to each stream (api.py's ScaleEngine says what).
    """
    if prefer not in PREFERENCES:
        raise ValueError(f"scale engine preference {prefer!r} is not one of {', '.join(PREFERENCES)}")
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced not in ("", "python", "native"):
        raise InvalidValue(f"expected 'python' or 'native', got {forced!r}", setting="media_backend")
    if forced == "python":
        return _python_engine(f"pure Python: {BACKEND_ENV}=python", quality)
    if prefer == "python" and forced != "native":
        return _python_engine("pure Python: chosen by the caller", quality)
    use_iouring = prefer == "iouring" or os.environ.get(IOURING_ENV, "").strip() == "1"
    try:
        from gossipper.media.scale.native_backend import NativeScaleEngine
    except ImportError as error:
        why = f"native core not built ({type(error).__name__}: {error})"
        if forced == "native":
            raise InvalidValue(f"native was asked for but {why}", setting="media_backend") from None
        return _python_engine(f"pure Python: {why}", quality)
    engine = NativeScaleEngine(
        workers=workers, use_iouring=use_iouring, rt_priority=rt_priority, quality=quality
    )
    engine.reason = _native_reason(engine)
    return engine


def _python_engine(reason: str, quality: bool) -> ScaleEngine:
    engine = PythonScaleEngine(quality=quality)
    engine.reason = f"{reason}; one sender thread"
    return engine


def _native_reason(engine: ScaleEngine) -> str:
    """The core's own account of how it sends (or why io_uring fell back), with its thread count."""
    workers = getattr(engine, "workers", None) or engine.thread_count()
    return f"native core on {workers} worker thread(s): {engine.reason}"
