"""The plan of one run: everything decided before anything is changed (--dry-run prints it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ksi.errors import Exit, KsiError
from ksi.plan import kindconfig, names
from ksi.plan.paths import default_state_root
from ksi.plan.ports import parse_port

if TYPE_CHECKING:
    from ksi.jobenv import JobEnvironment
    from ksi.settings import Settings


@dataclass(frozen=True)
class Plan:
    """Decided once the placement is known, then never changed: what a run does (facts
    found while it runs, such as the ports it got, are in ksi.run.state.RunState)."""

    env: JobEnvironment
    settings: Settings
    workload: Optional[Path]
    shared_dir: Optional[Path]
    workdir: Path
    cluster: str
    provider: str
    image: str
    k8s_port: Optional[int]           # preset by the user (validated) or None: pick one
    api_address: str
    state_root: Path
    report_path: Path
    log_dir: Path
    mode: str = "single"              # single | each | federated
    pod_subnet: str = ""
    service_subnet: str = ""
    gateway_nodeport: Optional[int] = None

    @property
    def context(self) -> str:
        return names.context_name(self.cluster)

    @property
    def state_dir(self) -> Path:
        return self.state_root / self.cluster

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def kind_config_path(self) -> Path:
        return self.state_dir / "kind-config.yaml"

    def kind_config(self, k8s_port: Optional[int], api_port: int,
                    gateway_host_port: Optional[int] = None,
                    node_mounts: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
        """The kind config; node_mounts are added to every node (the job's GPUs)."""
        udp = ()
        if self.gateway_nodeport and gateway_host_port:
            udp = ((self.gateway_nodeport, gateway_host_port),)
        config = kindconfig.build(
            workdir=str(self.workdir), k8s_port=k8s_port, api_address=self.api_address,
            api_port=api_port, pod_subnet=self.pod_subnet, service_subnet=self.service_subnet,
            udp_ports=udp, mirrors=parse_mirrors(self.settings.registry_mirrors))
        if self.settings.kind_config:
            config = kindconfig.merge(config, kindconfig.load_fragment(self.settings.kind_config))
        if node_mounts:
            for node in config.get("nodes") or []:
                node.setdefault("extraMounts", []).extend(dict(m) for m in node_mounts)
        return config


def parse_mirrors(text: str) -> dict[str, str]:
    """'docker.io=https://mirror.example,ghcr.io=https://m2' -> mapping."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        registry, sep, url = item.partition("=")
        if not sep or not url:
            raise KsiError(f"registry_mirrors entry {item!r} is not REGISTRY=URL",
                           "write registry_mirrors as docker.io=https://mirror.site,...",
                           code=Exit.CONFIG_INVALID)
        out[registry.strip()] = url.strip()
    return out


def check_shared_dir(path: Optional[str]) -> Optional[Path]:
    if not path:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise KsiError(f"shared directory {path} is not a directory",
                       "pass a directory that every node of the job can see",
                       code=Exit.SHARED_DIR_UNUSABLE)
    if not p.is_dir():
        raise KsiError(f"shared directory {path} does not exist",
                       "pass a directory that every node of the job can see (e.g. on NFS), "
                       "or leave it out for a single-node run", code=Exit.SHARED_DIR_MISSING)
    if not os.access(p, os.W_OK | os.X_OK):
        raise KsiError(f"shared directory {path} is not writable for you",
                       "pick a directory you can write, or fix its permissions",
                       code=Exit.SHARED_DIR_UNUSABLE)
    return p.resolve()


def make_plan(env: JobEnvironment, settings: Settings, *, workload: Optional[Path],
              shared_dir: Optional[Path], environ: dict[str, str], mode: str = "single",
              workdir: Optional[Path] = None) -> Plan:
    """Decide names, ports (preset ones validated), addresses and paths. Changes nothing."""
    workdir = (workdir or Path.cwd()).resolve()
    if not os.access(workdir, os.R_OK | os.X_OK):
        raise KsiError(f"working directory {workdir} is not accessible",
                       "cd to a directory you can read", code=Exit.WORKDIR_UNUSABLE)
    lo, hi = settings.port_range()
    preset = environ.get("K8S_PORT", "").strip()
    k8s_port = parse_port(preset, lo, hi) if preset else None
    cluster = names.cluster_name(env)
    state_root = Path(settings.state_dir) if settings.state_dir else default_state_root(environ)
    stem = f"{env.job_id}-{env.step_id}-{env.node_id}" if env.is_slurm else cluster
    report = Path(settings.report) if settings.report else workdir / f"ksi-report-{stem}.json"
    log_dir = Path(settings.log_dir) if settings.log_dir else workdir / "ksi-logs"
    api_address = settings.api_address or "127.0.0.1"
    return Plan(env=env, settings=settings, workload=workload, shared_dir=shared_dir,
                workdir=workdir, cluster=cluster, provider=settings.provider,
                image=settings.image, k8s_port=k8s_port, api_address=api_address,
                state_root=state_root, report_path=report, log_dir=log_dir / cluster,
                mode=mode)
