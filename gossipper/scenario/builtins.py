"""The -sn built-in scenarios, shipped as XML files beside this module.

They are ordinary scenario files (so -sd dumps exactly what runs, and a user can
start a custom scenario from one); only the hold default of invite_media_scale is
not expressible in SIPp's XML and is applied here.
"""

from __future__ import annotations

from importlib import resources

from gossipper.errors import InvalidValue
from gossipper.scenario import model
from gossipper.scenario.loader import parse_scenario

BUILTIN_NAMES = (
    "uac",
    "uas",
    "regexp",
    "branchc",
    "branchs",
    "3pcc-A",
    "3pcc-B",
    "3pcc-C-A",
    "3pcc-C-B",
    "uac_pcap",
    "ooc_default",
    "ooc_dummy",
    "invite_media_scale",
)
# Pauses without milliseconds use -d when given, else this hold (SPEC section 2).
DEFAULT_HOLD_MS = {"invite_media_scale": 30_000}
MEDIA_SCALE_BUILTINS = frozenset({"invite_media_scale"})
_SRTP_LINE = "[crypto_attribute]"  # gossipper's own keyword: the a=crypto line of -media_srtp


def _text(name: str, setting: str) -> bytes:
    if name not in BUILTIN_NAMES:
        raise InvalidValue(
            f"unknown built-in scenario {name!r} (expected one of {', '.join(BUILTIN_NAMES)})",
            setting=setting,
        )
    return resources.files("gossipper.scenario").joinpath("builtins", f"{name}.xml").read_bytes()


def dump_builtin(name: str, srtp: bool = True) -> str:
    """-sd NAME: the scenario XML, ready to be edited and run with -sf.

    With srtp False (-sd without -media_srtp) the [crypto_attribute] line, which then renders
    empty and is dropped from every message, is left out: what is printed is what runs, and
    SIPp (which has no such keyword) loads it.
    """
    text = _text(name, "dump_scenario").decode()
    if srtp:
        return text
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() != _SRTP_LINE)


def load_builtin(name: str) -> model.Scenario:
    scenario = parse_scenario(_text(name, "scenario_name"), f"<built-in {name}>", default_name=name)
    hold = DEFAULT_HOLD_MS.get(name)
    if hold is not None:
        for step in scenario.steps:
            if isinstance(step, model.Pause) and step.milliseconds is None and step.sampler is None:
                step.default_ms = hold
    return scenario
