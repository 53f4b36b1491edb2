"""liqoctl v1.0 for one cluster (its private kubeconfig): install, peer, info, unpeer.

The flags follow /work/shared/notes/liqo-peering.md (read from liqotech/liqo v1.0.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.runner import Runner

HEALTHY = "Healthy"
STATUS_KEYS = ("networkingStatus", "authenticationStatus", "offloadingStatus")
VIRTUAL_NODE_LABEL = "liqo.io/type=virtual-node"
REMOTE_ID_LABEL = "liqo.io/remote-cluster-id"
INSTALL_TIMEOUT = 600.0
PEER_TIMEOUT = 600.0


class Liqo:
    def __init__(self, runner: Runner, kubeconfig: Path, binary: str = "liqoctl") -> None:
        self.runner = runner
        self.kubeconfig = Path(kubeconfig)
        self.binary = binary

    def check_installed(self) -> None:
        if not self.runner.which(self.binary):
            raise KsiError("'liqoctl' is not on PATH (needed to join the nodes' clusters)",
                           "install liqoctl v1.0 on every node, or run each node alone with "
                           "--each", code=Exit.TOOL_MISSING)

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, *args, "--kubeconfig", str(self.kubeconfig)]

    def install_argv(self, cluster_id: str, api_url: str, reserved: Sequence[str],
                     host: str, timeout: float = INSTALL_TIMEOUT) -> list[str]:
        argv = self._argv("install", "kind", "--cluster-id", cluster_id, "--disable-telemetry",
                          "--set", f"apiServer.address={api_url}",
                          "--cluster-labels", f"slurm-host={host}",
                          "--timeout", f"{int(timeout)}s")
        if reserved:
            argv += ["--reserved-subnets", ",".join(reserved)]
        return argv

    def install(self, cluster_id: str, api_url: str, reserved: Sequence[str], host: str,
                timeout: float = INSTALL_TIMEOUT) -> None:
        self.runner.run(self.install_argv(cluster_id, api_url, reserved, host, timeout),
                        timeout=timeout + 60, what="liqoctl install kind",
                        code=Exit.FEDERATION_FAILED,
                        fix="see the cluster logs KSI exported; 'liqoctl install' needs the "
                            "Liqo images (ghcr.io/liqotech) and kernel >= 5.10")

    def peer_argv(self, remote_kubeconfig: Path, nodeport: int, client_address: str,
                  client_port: int, timeout: float = PEER_TIMEOUT) -> list[str]:
        return self._argv("peer", "--remote-kubeconfig", str(remote_kubeconfig),
                          "--gw-server-service-type", "NodePort",
                          "--gw-server-service-nodeport", str(nodeport),
                          "--gw-client-address", client_address,
                          "--gw-client-port", str(client_port),
                          "--timeout", f"{int(timeout)}s")

    def peer(self, remote_kubeconfig: Path, nodeport: int, client_address: str,
             client_port: int, *, what: str, timeout: float = PEER_TIMEOUT) -> None:
        self.runner.run(self.peer_argv(remote_kubeconfig, nodeport, client_address,
                                       client_port, timeout),
                        timeout=timeout + 60, what=what, code=Exit.PEER_FAILED,
                        fix=f"check that UDP port {client_port} and the API port of that node "
                            "are reachable from the head node (firewall)")

    def info(self) -> dict[str, Any]:
        res = self.runner.run(self._argv("info", "-o", "json"), timeout=60,
                              what="liqoctl info", code=Exit.PEER_FAILED)
        try:
            data = json.loads(res.stdout)
        except ValueError:
            raise KsiError("liqoctl info -o json printed no JSON", "report this",
                           code=Exit.PEER_FAILED) from None
        return data if isinstance(data, dict) else {}

    def unpeer(self, remote_kubeconfig: Path, timeout: float = 120) -> None:
        self.runner.run(self._argv("unpeer", "--remote-kubeconfig", str(remote_kubeconfig),
                                   "--skip-confirm"),
                        timeout=timeout + 30, what="liqoctl unpeer", code=Exit.PEER_FAILED)


def peer_health(info: dict[str, Any]) -> dict[str, dict[str, str]]:
    """{cluster id: {status key: value}} from `liqoctl info -o json`."""
    peers = ((info.get("peerings") or {}).get("peers")) or []
    out: dict[str, dict[str, str]] = {}
    for p in peers:
        if not isinstance(p, dict):
            continue
        cid = p.get("clusterID") or p.get("clusterId") or p.get("id") or ""
        out[str(cid)] = {k: str(p.get(k, "")) for k in STATUS_KEYS}
    return out


def unhealthy(info: dict[str, Any], cluster_ids: Sequence[str]) -> dict[str, str]:
    """Cluster ids that are not Healthy yet, with what is wrong."""
    health = peer_health(info)
    bad = {}
    for cid in cluster_ids:
        st = health.get(cid)
        if st is None:
            bad[cid] = "no peering"
            continue
        wrong = [f"{k}={v or '?'}" for k, v in st.items() if v != HEALTHY]
        if wrong:
            bad[cid] = ", ".join(wrong)
    return bad
