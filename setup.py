"""Build hook for the optional native cores: the RTP scale engine and SIP header indexing.

The extensions are optional on purpose: where one cannot compile (no compiler,
non-Linux), the package still installs and its pure-Python twin runs.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure means "no native core"
            print(f"warning: native cores not built ({exc}); the pure-Python backends will run")

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
        ),
        Extension(
            "gossipper.sip._sipcore",
            sources=["gossipper/sip/_sipcore.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall"],
        ),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
