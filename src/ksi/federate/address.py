"""This node's address as the other nodes of the job reach it, and the networks around it."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from typing import TYPE_CHECKING, Optional, Sequence

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.runner import Runner

log = logging.getLogger("ksi.federate")


def _ipv4(host: str) -> Optional[str]:
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError):
        return None
    for info in infos:
        addr = str(info[4][0])
        if not ipaddress.ip_address(addr).is_loopback:
            return addr
    return None


def route_source(target: str) -> Optional[str]:
    """The local address the kernel would use to reach target (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((target, 9))
        addr = str(s.getsockname()[0])
    except OSError:
        return None
    finally:
        s.close()
    return None if ipaddress.ip_address(addr).is_loopback else addr


def node_address(configured: str, hostname: str, nodes: Sequence[str]) -> str:
    """The api_address setting, else the source address of the route to the other nodes,
    else this host name's own non-loopback address."""
    if configured:
        try:
            ipaddress.IPv4Address(configured)
        except ValueError as exc:
            raise KsiError(f"api_address {configured!r} is not an IPv4 address",
                           "set api_address (KSI_API_ADDRESS) to this node's IP address, or "
                           "unset it to let KSI find it", code=Exit.CONFIG_INVALID) from exc
        return configured
    me = hostname.split(".", maxsplit=1)[0]
    for other in nodes:
        if other.split(".")[0] == me:
            continue
        target = _ipv4(other)
        if target is None:
            continue
        src = route_source(target)
        if src:
            return src
    own = _ipv4(hostname)
    if own:
        return own
    raise KsiError(f"cannot find an address of {hostname} that the other nodes of the job "
                   f"({', '.join(n for n in nodes if n.split('.')[0] != me) or 'none'}) reach",
                   "set api_address (KSI_API_ADDRESS) to this node's IP address on the cluster "
                   "network", code=Exit.FEDERATION_FAILED)


def lan_cidr(address: str, runner: Runner) -> str:
    """The network of the interface that holds address (from `ip -j -4 addr`), else /32."""
    try:
        res = runner.run(["ip", "-j", "-4", "addr", "show"], timeout=20, check=False)
        data = json.loads(res.stdout) if res.returncode == 0 else []
    except (KsiError, ValueError):
        data = []
    for link in data or []:
        for a in link.get("addr_info") or []:
            if a.get("local") == address and a.get("prefixlen") is not None:
                return str(ipaddress.ip_network(f"{address}/{a['prefixlen']}", strict=False))
    return f"{address}/32"

