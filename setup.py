"""Build hook for the optional native scale-engine core.

The extension is optional on purpose: where it cannot compile (no compiler,
non-Linux), the package still installs and the pure-Python backend runs.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure means "no native core"
            print(f"warning: native scale core not built ({exc}); pure-Python backend will run")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"warning: {ext.name} not built ({exc}); pure-Python backend will run")


setup(
    ext_modules=[
        Extension(
            "gossipper.media.scale._scalecore",
            # the binding, then the engine it drives (plain C, no Python.h)
            sources=["gossipper/media/scale/_scalecore.c", "gossipper/media/scale/scalecore.c"],
            include_dirs=["gossipper/media/scale"],
            depends=["gossipper/media/scale/scalecore.h"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
