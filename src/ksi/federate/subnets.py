"""Per-node pod and service subnets, carved from the configured pools by node id.

Every cluster of a job gets its own pod and service subnet so that Liqo never has to remap
(identical CIDRs can fail to peer: liqo#1972). None may overlap Liqo's reserved ranges, the
node LAN or the runtime's kind network."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Sequence

from ksi.errors import Exit, KsiError

# Liqo v1.0 defaults: externalCIDR and internalCIDR.
LIQO_RESERVED = ("10.70.0.0/16", "10.80.0.0/16")
POD_PREFIX = 20       # a /20 per node: room for the node's /24 pod range and then some
SERVICE_PREFIX = 20   # 4096 service IPs per cluster


@dataclass(frozen=True)
class NodeSubnets:
    pod: str
    service: str


def _net(text: str, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(str(text).strip(), strict=True)
    except ValueError as exc:
        raise KsiError(f"{what} {text!r} is not a network address ({exc})",
                       f"set {what} to an IPv4 CIDR such as 10.100.0.0/14",
                       code=Exit.CONFIG_INVALID) from exc
    if not isinstance(net, ipaddress.IPv4Network):
        raise KsiError(f"{what} {text} is not IPv4", f"set {what} to an IPv4 CIDR",
                       code=Exit.CONFIG_INVALID)
    return net


def carve(pool: str, node_id: int, prefix: int, what: str) -> ipaddress.IPv4Network:
    """The node_id-th /prefix of pool."""
    net = _net(pool, what)
    if prefix < net.prefixlen:
        raise KsiError(f"{what} {pool} is smaller than one /{prefix} subnet",
                       f"set {what} to a /{prefix} or larger network", code=Exit.CONFIG_INVALID)
    room = 2 ** (prefix - net.prefixlen)
    if not 0 <= node_id < room:
        raise KsiError(f"{what} {pool} has room for {room} nodes of /{prefix}; this job's "
                       f"node {node_id} does not fit",
                       f"set {what} to a larger network (e.g. a /{max(8, prefix - 8)})",
                       code=Exit.CONFIG_INVALID)
    size = 2 ** (32 - prefix)
    return ipaddress.ip_network(f"{net.network_address + node_id * size}/{prefix}")


def check_disjoint(named: Sequence[tuple[str, str]],
                   reserved: Iterable[tuple[str, str]]) -> None:
    """Fail when a subnet of `named` overlaps another one or a reserved range."""
    nets = [(label, ipaddress.ip_network(c, strict=False)) for label, c in named]
    res = [(label, ipaddress.ip_network(c, strict=False)) for label, c in reserved if c]
    for i, (a_label, a) in enumerate(nets):
        for b_label, b in nets[i + 1:]:
            if a.overlaps(b):
                raise KsiError(f"{a_label} {a} overlaps {b_label} {b}",
                               "set pod_subnet_pool and service_subnet_pool to disjoint "
                               "networks", code=Exit.CONFIG_INVALID)
        for r_label, r in res:
            if a.version == r.version and a.overlaps(r):
                raise KsiError(f"{a_label} {a} overlaps {r_label} {r}",
                               "set pod_subnet_pool / service_subnet_pool (KSI config) to "
                               f"networks outside {r}", code=Exit.CONFIG_INVALID)


def for_node(pod_pool: str, service_pool: str, node_id: int, num_nodes: int,
             extra_reserved: Iterable[tuple[str, str]] = ()) -> NodeSubnets:
    """This node's subnets; validates the whole job's layout (every node's subnets are
    disjoint from each other and from the reserved ranges)."""
    last = max(num_nodes, node_id + 1) - 1  # the whole job must fit, not only this node
    carve(pod_pool, last, POD_PREFIX, "pod_subnet_pool")
    carve(service_pool, last, SERVICE_PREFIX, "service_subnet_pool")
    reserved = [("Liqo's reserved range", c) for c in LIQO_RESERVED] + list(extra_reserved)
    check_disjoint([("pod_subnet_pool", pod_pool), ("service_subnet_pool", service_pool)],
                   reserved)
    # the pools are disjoint, so every node's subnets are disjoint from every other's
    return NodeSubnets(
        pod=str(carve(pod_pool, node_id, POD_PREFIX, "pod_subnet_pool")),
        service=str(carve(service_pool, node_id, SERVICE_PREFIX, "service_subnet_pool")))
