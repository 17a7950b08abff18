"""gossipper: a SIPp-compatible SIP load generator with a high-scale RTP engine."""

import os
import sys

__version__ = "0.1.0"

SIP_BACKEND_ENV = "GOSSIPPER_SIP_BACKEND"  # python: the SIP path as written, nothing native or compiled


def pure_python_sip() -> bool:
    return os.environ.get(SIP_BACKEND_ENV, "").strip().lower() == "python"


def _choose_engine_modules() -> None:
    from gossipper import _sources_first

    if pure_python_sip():
        _sources_first.run_sources()
        return
    stale = _sources_first.stale_compiled_module(os.path.dirname(__file__))
    if stale is not None:
        print(
            f"gossipper: {stale} is newer than its compiled module; running the Python "
            "(scripts/bootstrap.sh rebuilds it)",
            file=sys.stderr,
        )
        _sources_first.run_sources()


_choose_engine_modules()
