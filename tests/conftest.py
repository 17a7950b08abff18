"""Fixtures shared across test folders, registered once for the whole suite."""

# The scale engine's parametrised `backend` fixture: unit tests (tests/media/scale) build
# engines with it in-process, end-to-end tests (tests/e2e) run gossipper with its env and flags.
pytest_plugins = ["tests.media.scale.backends"]
