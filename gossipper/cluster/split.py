"""The deterministic split of one run over N nodes, in the manner of k6's execution segments.

Every node is handed the same plan and takes its own row of it, so no node needs to ask
another what it does. The shares of a count (-m, -l, -rtp_streams) are integers that add up
to the total exactly and differ by at most one (the first `total % nodes` nodes carry the
extra unit); the shares of a rate are floats whose sum is the rate exactly, bit for bit, so
a cluster offers what a single host would. The media port range is cut into disjoint slices
of port pairs, so nodes that share an address (a local cluster on loopback) never bind the
same port, and each node's calls get a number range and a Call-ID prefix of their own so
Call-IDs cannot collide whatever `-cid_str` says.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossipper.errors import InvalidValue

PORT_STEP = 2  # RTP on even ports, RTCP beside it: a stream or call holds a pair
# Without -m a node's calls are numbered from index x this: far beyond what one node makes.
CALL_NUMBER_STRIDE = 1 << 40


def split_count(total: int, nodes: int) -> list[int]:
    """`total` units over `nodes`: floor or ceil of total / nodes each, the larger first."""
    _check_nodes(nodes)
    if total < 0:
        raise InvalidValue(f"cannot split a negative count ({total})")
    share, extra = divmod(total, nodes)
    return [share + (1 if index < extra else 0) for index in range(nodes)]


def split_rate(total: float, nodes: int) -> list[float]:
    """`total` over `nodes` as differences of the float boundaries total x i / nodes.

    Each boundary is a float and consecutive boundaries are within a factor of two of each
    other (the second is exactly twice the first), so each difference is exact (Sterbenz's
    lemma) and the running sum of the shares passes through the boundaries without rounding:
    `sum(shares) == total` holds exactly, not within an epsilon.
    """
    _check_nodes(nodes)
    if not total >= 0.0:  # also refuses NaN
        raise InvalidValue(f"cannot split a negative or undefined rate ({total})")
    bounds = [0.0, *(total * index / nodes for index in range(1, nodes)), total]
    return [bounds[index + 1] - bounds[index] for index in range(nodes)]


def _check_nodes(nodes: int) -> None:
    if nodes < 1:
        raise InvalidValue(f"a run needs at least one node, got {nodes}", setting="cluster_nodes")


@dataclass(frozen=True)
class NodeShare:
    """What node `index` of a cluster run does: its shares and the resources only it uses."""

    index: int
    nodes: int
    rate: float  # -r, in calls per rate period
    max_calls: int  # -m; 0 when the run has no limit (every node unlimited)
    max_concurrent: int  # -l; 0 when the run leaves it to the default
    streams: int  # -rtp_streams
    users: int  # -users; 0 when the run is rate-driven
    rate_increase: float  # -rate_increase
    rate_max: float  # -rate_max; 0 when the run has no cap
    base_port: int  # first media port of the node's slice (even when the range's base is)
    max_port: int  # last media port of the node's slice
    call_number_base: int  # the node's first call is numbered this + 1
    call_id_prefix: str  # put before every Call-ID the node makes
    # nothing left for the node: the run has fewer streams, calls (-m) or users than nodes
    # (a share of 0 calls or users must not run: -m 0 means "no limit", -users 0 "not given")
    idle: bool = False

    @property
    def port_pairs(self) -> int:
        return (self.max_port - self.base_port + 1) // PORT_STEP

    def describe(self) -> str:
        """The share in a line, as the driver announces it."""
        ports = f"ports {self.base_port}..{self.max_port}"
        if self.streams:
            return f"{self.streams} stream(s) from {ports}"
        calls = f"-m {self.max_calls}" if self.max_calls else "no -m"
        load = f"-users {self.users}" if self.users else f"-r {self.rate:g}"
        return (
            f"{load}, {calls}, -l {self.max_concurrent or 'none'}, media {ports}, "
            f"calls numbered from {self.call_number_base + 1}, Call-IDs {self.call_id_prefix}..."
        )


@dataclass(frozen=True)
class RunTotals:
    """The run's figures as given for one host."""

    rate: float = 0.0
    max_calls: int = 0
    max_concurrent: int = 0
    streams: int = 0
    users: int = 0
    rate_increase: float = 0.0
    rate_max: float = 0.0
    base_port: int = 6000
    max_port: int = 65535


def plan(totals: RunTotals, nodes: int) -> list[NodeShare]:
    """Every node's share of the run; the same totals always give the same plan."""
    pairs = (totals.max_port - totals.base_port + 1) // PORT_STEP
    if pairs < nodes:
        raise InvalidValue(
            f"ports {totals.base_port}..{totals.max_port} hold {pairs} pair(s), fewer than {nodes} nodes",
            setting="cluster_nodes",
        )
    rates = split_rate(totals.rate, nodes)
    calls = split_count(totals.max_calls, nodes)
    concurrent = split_count(totals.max_concurrent, nodes)
    streams = split_count(totals.streams, nodes)
    users = split_count(totals.users, nodes)
    increases = split_rate(totals.rate_increase, nodes)
    maxima = split_rate(totals.rate_max, nodes)
    slices = split_count(pairs, nodes)
    shares = []
    first_pair = 0
    first_call = 0
    for index in range(nodes):
        base = totals.base_port + PORT_STEP * first_pair
        shares.append(
            NodeShare(
                index=index,
                nodes=nodes,
                rate=rates[index],
                max_calls=calls[index],
                max_concurrent=concurrent[index],
                streams=streams[index],
                users=users[index],
                rate_increase=increases[index],
                rate_max=maxima[index],
                base_port=base,
                max_port=base + PORT_STEP * slices[index] - 1,
                call_number_base=first_call if totals.max_calls else index * CALL_NUMBER_STRIDE,
                call_id_prefix=f"n{index}-",
                idle=bool(
                    (totals.streams and not streams[index])
                    or (totals.max_calls and not calls[index])
                    or (totals.users and not users[index])
                ),
            )
        )
        first_pair += slices[index]
        first_call += calls[index]
    return shares
