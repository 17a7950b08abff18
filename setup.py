"""Build hook for the optional native cores: the RTP scale engine, the SIP parser and UDP
batches (C), and the SIP engine's hot modules compiled from their typed Python by mypyc.

Every one is optional on purpose: where one cannot compile (no compiler, no mypyc,
non-Linux), the package still installs and the Python it was built from runs.
GOSSIPPER_COMPILE=0 skips the mypyc step (a quicker build of the C cores only).
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The modules every SIP message and every call runs through (bench/sip_rate.py measures
# what compiling them saves); the rest of the package stays interpreted.
COMPILED_MODULES = [
    "gossipper/sip/message.py",
    "gossipper/scenario/model.py",
    "gossipper/scenario/template.py",
    "gossipper/stats/counters.py",
    "gossipper/engine/settings.py",
    "gossipper/engine/context.py",
    "gossipper/engine/keywords.py",
    "gossipper/engine/actions.py",
    "gossipper/engine/call.py",
    "gossipper/engine/dispatcher.py",
    "gossipper/engine/call_factory.py",
    "gossipper/engine/generator.py",
    "gossipper/engine/runner.py",
    "gossipper/engine/timers.py",
    "gossipper/sip/udp_batched.py",
]


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure means "no native core"
            print(f"warning: native cores not built ({exc}); the pure-Python backends will run")
            return
        # A module whose Python was only touched is not rebuilt; stamp every built one now, so
        # that gossipper's check for sources newer than their compiled twin stays quiet.
        for ext in self.extensions:
            built = self.get_ext_fullpath(ext.name)
            if os.path.exists(built):
                os.utime(built)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"warning: {ext.name} not built ({exc}); its Python will run")


def compiled_engine() -> list[Extension]:
    if os.environ.get("GOSSIPPER_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("warning: mypyc not installed; the SIP engine runs as Python")
        return []
    try:
        # one shared library inside the package (not beside it), so an editable install finds it
        return list(
            mypycify(COMPILED_MODULES, opt_level="3", debug_level="0", group_name="gossipper._compiled")
        )
    except Exception as exc:  # a mypyc that cannot compile this code: the Python runs
        print(f"warning: the SIP engine not compiled ({exc}); its Python will run")
        return []


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
        *compiled_engine(),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
