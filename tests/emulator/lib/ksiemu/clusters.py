"""Emulated Kubernetes API servers: cluster records and the API-server registry.

- ``$KSI_EMU_STATE/clusters/<id>/cluster.json``: what kind created (name, host,
  uid, provider, image, parsed config, mounts, port mappings, API address/port,
  created, ready_at, CA/client serials, loaded images, containerdConfigPatches).
- ``$KSI_EMU_STATE/clusters/<id>/objects.json``: API objects (kubectl).
- ``$KSI_EMU_STATE/apiservers/<key>.json``: advertised server address -> cluster,
  the host it runs on and the certificate SANs. Loopback addresses are only
  reachable from the same host, so their key includes the hostname.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import socket

from . import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

LOOPBACK_NAMES = ("localhost",)


def cluster_id(host: str, runtime: str, uid: int, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{host}.{runtime}-{uid}.{name}")


def cdir(cid: str) -> str:
    return state.dir_path("clusters", cid, shared_levels=1)


def load(cid: str) -> Optional[Dict[str, Any]]:
    return state.read_json(os.path.join(state.root(), "clusters", cid, "cluster.json"))


def save(rec: Dict[str, Any]) -> None:
    state.write_json(os.path.join(cdir(rec["id"]), "cluster.json"), rec)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
        return ip.is_loopback or ip.is_unspecified
    except ValueError:
        return False


def reg_key(addr: str, port: int, host: Optional[str] = None) -> str:
    if is_loopback(addr):
        return "lo_{}_{}".format(re.sub(r"[^A-Za-z0-9_.-]", "_", host or state.hostname()), port)
    return "{}_{}".format(re.sub(r"[^A-Za-z0-9_.:-]", "_", addr).replace(":", "_"), port)


def register(rec: Dict[str, Any]) -> None:
    save(rec)
    entry = {
        "cluster": rec["id"],
        "host": rec["host"],
        "address": rec["api_address"],
        "port": rec["api_port"],
        "sans": rec["sans"],
    }
    state.write_json(
        state.path(
            "apiservers",
            reg_key(rec["api_address"], rec["api_port"], rec["host"]) + ".json",
            shared_levels=1,
        ),
        entry,
    )


def unregister(rec: Dict[str, Any]) -> None:
    state.remove(
        os.path.join(
            state.root(),
            "apiservers",
            reg_key(rec["api_address"], rec["api_port"], rec["host"]) + ".json",
        )
    )
    d = os.path.join(state.root(), "clusters", rec["id"])
    for p in glob.glob(os.path.join(glob.escape(d), "*")) + glob.glob(
        os.path.join(glob.escape(d), ".*")
    ):
        state.remove(p)
    try:
        os.rmdir(d)
    except OSError:
        pass


def sans_for(name: str, api_address: str, node_ip: str) -> List[str]:
    # kind kubeadm config template: certSANs [localhost, 127.0.0.1, apiServerAddress]
    # plus kubeadm's defaults (node name, kubernetes.* service names, service IP, node IP)
    sans = [
        f"{name}-control-plane",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "10.96.0.1",
        node_ip,
        "127.0.0.1",
    ]
    if api_address and api_address not in sans:
        sans.append(api_address)
    return sans


def container_exists(rec: Dict[str, Any]) -> bool:
    p = os.path.join(
        state.root(),
        "hosts",
        rec["host"],
        "{}-{}".format(rec["provider"], rec["uid"]),
        "containers",
        rec["name"] + "-control-plane.json",
    )
    c = state.read_json(p)
    return bool(c) and bool(c.get("running", True))


def parse_server(url: str) -> Tuple[str, int]:
    u = url.split("://", 1)[-1].split("/", 1)[0]
    if u.startswith("["):
        host, _, rest = u[1:].partition("]")
        port = rest.lstrip(":")
    elif u.count(":") == 1:
        host, port = u.split(":")
    else:
        host, port = u, ""
    return host, int(port or (443 if url.startswith("https") else 80))


def resolve(url: str) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]], str]:
    """Find the cluster serving ``url`` as seen from this host.
    Returns (cluster record, registry entry, connect-host)."""
    host, port = parse_server(url)
    entry = state.read_json(os.path.join(state.root(), "apiservers", reg_key(host, port) + ".json"))
    if entry is None and not is_loopback(host):
        try:
            ip = socket.gethostbyname(host)
        except OSError:
            ip = ""
        if ip:
            entry = state.read_json(
                os.path.join(state.root(), "apiservers", reg_key(ip, port) + ".json")
            )
    if entry is None:
        return None, None, host
    rec = load(entry["cluster"])
    if rec is None or not container_exists(rec):
        return None, entry, host
    return rec, entry, host


def all_clusters() -> List[Dict[str, Any]]:
    res = []
    for p in glob.glob(os.path.join(glob.escape(state.root()), "clusters", "*", "cluster.json")):
        r = state.read_json(p)
        if r:
            res.append(r)
    return res
