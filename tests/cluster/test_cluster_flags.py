"""-cluster and -cluster_nodes: what they accept, and the one line each refusal prints
(exit 1 as every refused flag), Ray's absence included."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gossipper.cli.main import main
from gossipper.cli.options import parse_args
from gossipper.cluster import availability

STANDALONE = ["-rtp_send", "-media_scale", "-rtp_addr", "127.0.0.1:40000", "-rtp_streams", "6"]


@pytest.mark.parametrize("address", ["auto", "ray://head:10001", "10.0.0.5:6379", "local:3"])
def test_ray_addresses_are_taken_as_given(address: str) -> None:
    config = parse_args([*STANDALONE, "-cluster", address, "-cluster_nodes", "2"])
    assert config.cluster_address == address
    assert config.cluster_nodes == 2


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        ([*STANDALONE, "-cluster", "local:0"], "-cluster: must be at least 1"),
        ([*STANDALONE, "-cluster", "local:x"], "-cluster: expected an integer"),
        ([*STANDALONE, "-cluster", "nowhere"], "-cluster: 'nowhere' is not a Ray address"),
        ([*STANDALONE, "-cluster_nodes", "2"], "-cluster_nodes: needs -cluster"),
        ([*STANDALONE, "-cluster", "auto", "-cluster_nodes", "0"], "-cluster_nodes: must be at least 1"),
        ([*STANDALONE, "-cluster", "local:2", "-cluster_nodes", "3"], "-cluster_nodes: 3 nodes asked of"),
        ([*STANDALONE, "-cluster", "local:8"], "-cluster_nodes: 8 nodes need at least 8 streams"),
        (
            ["-rtp_send", "-rtp_addr", "127.0.0.1:40000", "-cluster", "local:2"],
            "-cluster: the standalone generator runs on a cluster with -media_scale",
        ),
        (
            ["127.0.0.1", "-sn", "uac", "-cluster", "local:2", "-3pcc", "127.0.0.1:5000"],
            "-cluster: -3pcc: 3PCC pairs",
        ),
        (
            ["127.0.0.1", "-sn", "uac", "-cluster_media_ips", "127.0.0.2"],
            "-cluster_media_ips: needs -cluster",
        ),
        (
            ["127.0.0.1", "-sn", "uac", "-cluster", "local:2", "-cluster_media_ips", "127.0.0.2"],
            "-cluster_media_ips: 1 address(es) for 2 nodes",
        ),
        (
            ["127.0.0.1", "-sn", "uac", "-cluster", "auto", "-cluster_media_ips", "127.0.0.2,host"],
            "-cluster_media_ips: 'host' is not an IP address",
        ),
    ],
)
def test_bad_cluster_flags_give_one_line_and_exit_1(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(availability, "ray_import_problem", lambda: None)  # judged apart, below
    assert main(["sipp", *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert names in err
    assert "Traceback" not in err


def test_ray_missing_is_one_line_saying_how_to_install_it() -> None:
    """A process in which `import ray` fails as it does where Ray is not installed."""
    program = (
        "import sys; sys.modules['ray'] = None\n"  # what Python does for a module it cannot import
        "from gossipper.cli.main import main\n"
        f"sys.exit(main(['sipp', *{STANDALONE!r}, '-cluster', 'local:2']))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("gossipper: -cluster: needs Ray")
    assert "pip install gossipper[cluster]" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_ray_import_problem_is_none_where_ray_imports() -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install gossipper[cluster])")
    assert availability.ray_import_problem() is None
