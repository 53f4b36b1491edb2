"""Where this node sits in a multi-node run: the address the others reach, the network
around it, its pod and service subnets and Liqo's gateway NodePort, as a new (frozen) plan."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Optional

from ksi.federate import address, subnets

if TYPE_CHECKING:
    from ksi.federate.liqo import LiqoOptions
    from ksi.plan.plan import Plan
    from ksi.runner import Runner


def place(plan: Plan, names: list[str], runner: Runner,
          options: LiqoOptions) -> tuple[str, subnets.NodeSubnets, Plan]:
    """(the node network, this node's subnets, the plan with them)."""
    s, env = plan.settings, plan.env
    if env.num_nodes == 1 and not s.api_address:
        api_address = "127.0.0.1"   # a one-node federation: nobody else connects
    else:
        api_address = address.node_address(s.api_address, env.hostname, names)
    lan = address.lan_cidr(api_address, runner)
    nets = subnets.for_node(s.pod_subnet_pool, s.service_subnet_pool, env.node_id,
                            env.num_nodes, extra_reserved=[("the node network", lan)])
    nodeport = None
    if options.networking:
        _lo, hi = s.port_range()
        nodeport = hi if plan.k8s_port != hi else hi - 1
    placed = dataclasses.replace(plan, api_address=api_address, pod_subnet=nets.pod,
                                 service_subnet=nets.service, gateway_nodeport=nodeport)
    return lan, nets, placed


def and_list(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def unique(items: list[str]) -> list[str]:
    out: list[str] = []
    for x in items:
        if x and x not in out:
            out.append(x)
    return out


def as_int(value: Any) -> Optional[int]:
    return None if value in (None, "") else int(value)
