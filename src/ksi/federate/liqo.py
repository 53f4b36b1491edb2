"""liqoctl v1.0 for one cluster (its private kubeconfig): install, peer, info.

The flags follow /work/shared/notes/liqo-peering.md (read from liqotech/liqo v1.0.1)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.runner import Runner
    from ksi.settings import Settings

HEALTHY = "Healthy"
DISABLED = "Disabled"   # liqoctl info: a module that is not used (pkg/liqoctl/info/common)
# What "peered" means to KSI: authentication and networking Healthy. The offloading status is
# NOT waited for: it mirrors the virtual node, which KSI waits for itself (Ready), and real
# Liqo 1.0.1 refreshes it late - seen here: one of two concurrent peerings stayed
# "OffloadingVirtualNodeStatus: NotReady" for ~60 s after its virtual node was Ready.
REQUIRED = ("networkingStatus", "authenticationStatus")
STATUS_KEYS = ("networkingStatus", "authenticationStatus", "offloadingStatus")
VIRTUAL_NODE_LABEL = "liqo.io/type=virtual-node"
REMOTE_ID_LABEL = "liqo.io/remote-cluster-id"
INSTALL_TIMEOUT = 600.0
PEER_TIMEOUT = 600.0


@dataclass(frozen=True)
class LiqoOptions:
    """What every node installs alike: the release, the chart, the networking module."""

    version: str = ""           # empty: liqoctl's own version (its --version default)
    chart: str = ""             # local chart directory (--local-chart-path)
    networking: bool = True     # off: --set networking.enabled=false, peer --networking-disabled
    values: tuple[str, ...] = ()  # extra --set KEY=VALUE

    @classmethod
    def from_settings(cls, s: Settings) -> LiqoOptions:
        values = tuple(v.strip() for v in str(s.liqo_set).split(",") if v.strip())
        bad = [v for v in values if "=" not in v or v.startswith("=")]
        if bad:
            raise KsiError(f"liqo_set entry {bad[0]!r} is not KEY=VALUE",
                           "write liqo_set as key=value,key2=value2 (Liqo chart values)",
                           code=Exit.CONFIG_INVALID)
        chart = str(s.liqo_chart)
        if chart and not (Path(chart) / "Chart.yaml").is_file():
            raise KsiError(f"liqo_chart {chart} is not a Helm chart directory (no Chart.yaml)",
                           "point liqo_chart at Liqo's chart (deployments/liqo of the "
                           "release), or unset it to let liqoctl fetch the chart",
                           code=Exit.CONFIG_INVALID)
        return cls(version=str(s.liqo_version), chart=chart,
                   networking=bool(s.liqo_networking), values=values)

    def components(self) -> tuple[str, ...]:
        """The Liqo components this installation runs (whose images a cluster needs)."""
        from ksi.images import liqo_running

        return liqo_running(self.networking, self.values)


class Liqo:
    def __init__(self, runner: Runner, kubeconfig: Path, binary: str = "liqoctl",
                 options: LiqoOptions | None = None) -> None:
        self.runner = runner
        self.kubeconfig = Path(kubeconfig)
        self.binary = binary
        self.options = options or LiqoOptions()

    def client_version(self) -> str:
        """`liqoctl version --client`: 'v1.0.1' ('' if it does not say)."""
        res = self.runner.run([self.binary, "version", "--client"], timeout=30, check=False,
                              what="liqoctl version")
        m = re.search(r"v?\d+\.\d+\.\d+\S*", res.stdout)
        return ("" if m is None else m.group(0) if m.group(0).startswith("v")
                else "v" + m.group(0))

    def check_installed(self) -> None:
        if not self.runner.which(self.binary):
            raise KsiError("'liqoctl' is not on PATH (needed to join the nodes' clusters)",
                           "install liqoctl v1.0 on every node, or run each node alone with "
                           "--each", code=Exit.TOOL_MISSING)

    def _argv(self, *args: str) -> list[str]:
        return [self.binary, *args, "--kubeconfig", str(self.kubeconfig)]

    def install_argv(self, cluster_id: str, api_url: str, reserved: Sequence[str],
                     host: str, timeout: float = INSTALL_TIMEOUT) -> list[str]:
        o = self.options
        argv = self._argv("install", "kind", "--cluster-id", cluster_id, "--disable-telemetry",
                          "--set", f"apiServer.address={api_url}",
                          "--cluster-labels", f"slurm-host={host}",
                          "--timeout", f"{int(timeout)}s")
        if o.version:
            argv += ["--version", o.version]
        if o.chart:
            argv += ["--local-chart-path", o.chart]
        if not o.networking:
            argv += ["--set", "networking.enabled=false"]
        for value in o.values:
            argv += ["--set", value]
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

    def peer_argv(self, remote_kubeconfig: Path, nodeport: int | None, client_address: str,
                  client_port: int | str | None, timeout: float = PEER_TIMEOUT,
                  resource_slice: bool = True) -> list[str]:
        argv = self._argv("peer", "--remote-kubeconfig", str(remote_kubeconfig))
        if not resource_slice:  # the ResourceSlice comes next (create_resource_slice)
            argv.append("--create-resource-slice=false")
        if not self.options.networking:
            argv.append("--networking-disabled")
        else:
            argv += ["--gw-server-service-type", "NodePort",
                     "--gw-server-service-nodeport", str(nodeport),
                     "--gw-client-address", client_address,
                     "--gw-client-port", str(client_port)]
        return argv + ["--timeout", f"{int(timeout)}s"]

    def peer(self, remote_kubeconfig: Path, nodeport: int | None, client_address: str,
             client_port: int | None, *, what: str, timeout: float = PEER_TIMEOUT,
             resource_slice: bool = True) -> None:
        fix = ("check that the API port of that node is reachable from the head node "
               "(firewall)")
        if self.options.networking:
            fix = (f"check that UDP port {client_port} and the API port of that node are "
                   "reachable from the head node (firewall)")
        self.runner.run(self.peer_argv(remote_kubeconfig, nodeport, client_address,
                                       client_port, timeout, resource_slice),
                        timeout=timeout + 60, what=what, code=Exit.PEER_FAILED, fix=fix)

    def resource_slice_argv(self, remote_id: str) -> list[str]:
        """The ResourceSlice `liqoctl peer` would create (named after the provider, so the
        virtual node is too), printed as JSON instead of applied."""
        return self._argv("create", "resourceslice", remote_id, "--remote-cluster-id",
                          remote_id, "-o", "json")

    def resource_slice(self, remote_id: str, resources: dict[str, str]) -> str:
        """That ResourceSlice with extra resources in spec.resources (Liqo 1.0.1's route for
        GPUs: docs/usage/peer.md, "Defining custom resources"; the default class accepts
        spec.resources as they are and keeps the defaults of the others), as JSON for
        `kubectl apply -f -`."""
        res = self.runner.run(self.resource_slice_argv(remote_id), timeout=60,
                              what="liqoctl create resourceslice", code=Exit.PEER_FAILED)
        try:
            obj = json.loads(res.stdout)
            obj.setdefault("spec", {}).setdefault("resources", {}).update(resources)
        except (ValueError, AttributeError) as exc:
            raise KsiError("liqoctl create resourceslice -o json printed no ResourceSlice",
                           "report this", code=Exit.PEER_FAILED) from exc
        return json.dumps(obj)

    def info(self) -> dict[str, Any]:
        res = self.runner.run(self._argv("info", "-o", "json"), timeout=60,
                              what="liqoctl info", code=Exit.PEER_FAILED)
        try:
            data = json.loads(res.stdout)
        except ValueError as exc:
            raise KsiError("liqoctl info -o json printed no JSON", "report this",
                           code=Exit.PEER_FAILED) from exc
        return data if isinstance(data, dict) else {}


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


def unhealthy(info: dict[str, Any], cluster_ids: Sequence[str],
              networking: bool = True) -> dict[str, str]:
    """Cluster ids that are not Healthy yet, with what is wrong. Without the networking
    module its status must be Disabled instead."""
    health = peer_health(info)
    bad = {}
    for cid in cluster_ids:
        st = health.get(cid)
        if st is None:
            bad[cid] = "no peering"
            continue
        want = {k: HEALTHY for k in REQUIRED}
        if not networking:
            want["networkingStatus"] = DISABLED
        wrong = [f"{k}={st.get(k) or '?'}" for k in REQUIRED if st.get(k) != want[k]]
        if wrong:
            bad[cid] = ", ".join(wrong)
    return bad
