"""The scale engine's backends this machine has, as a parametrised `backend` fixture.

"python" always exists; "native-send" and "native-iouring" join when the C core imports
(and io_uring really runs). The unit tests (tests/media/scale) build engines in-process; the
end-to-end tests (tests/e2e) run gossipper subprocesses with each backend's env and flags.
tests/conftest.py registers the fixture for both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from gossipper.media.scale.api import ScaleEngine
from gossipper.media.scale.factory import BACKEND_ENV, IOURING_ENV, create_scale_engine


@dataclass(frozen=True)
class Backend:
    """How to get one backend in-process (prefer) and in a gossipper subprocess (env, flags)."""

    name: str
    prefer: str
    env: dict[str, str]
    flags: tuple[str, ...] = ()

    def make(self) -> ScaleEngine:
        engine = create_scale_engine(prefer=self.prefer)
        assert engine.name == self.name, engine.reason
        return engine

    def subprocess_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key not in (BACKEND_ENV, IOURING_ENV)}
        env.update(self.env)
        return env


PYTHON = Backend("python", "python", {BACKEND_ENV: "python"})
NATIVE_SEND = Backend("native-send", "send", {BACKEND_ENV: "native"})
NATIVE_IOURING = Backend("native-iouring", "iouring", {BACKEND_ENV: "native"}, ("-media_iouring",))


def _native_skip_reason(backend: Backend) -> str | None:
    try:
        import gossipper.media.scale.native_backend  # noqa: F401
    except ImportError as error:
        return f"native core not importable ({error})"
    saved = {key: os.environ.pop(key) for key in (BACKEND_ENV, IOURING_ENV) if key in os.environ}
    try:
        engine = create_scale_engine(prefer=backend.prefer)
        engine.close()
    finally:
        os.environ.update(saved)
    if engine.name != backend.name:
        return f"{backend.name} unavailable here: {engine.reason}"
    return None


def _backend_params() -> list[object]:
    params: list[object] = [pytest.param(PYTHON, id="python")]
    for backend in (NATIVE_SEND, NATIVE_IOURING):
        reason = _native_skip_reason(backend)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(backend, id=backend.name, marks=marks))
    return params


BACKENDS = _backend_params()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.delenv(IOURING_ENV, raising=False)
    return request.param
