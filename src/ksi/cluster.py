"""This node's cluster through its phases: reserve -> provision -> access -> teardown.

Holds everything teardown needs, so that teardown works after any failure or signal."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ksi.access import admin
from ksi.access.kubectl import Kubectl, api_server
from ksi.errors import KsiError
from ksi.plan import kindconfig
from ksi.plan.paths import ensure_private_dir, write_json, write_private
from ksi.plan.ports import PortBook, Reservation
from ksi.provision import providers
from ksi.provision.kind import Kind

if TYPE_CHECKING:
    from ksi.plan.plan import Plan
    from ksi.runner import Runner

log = logging.getLogger("ksi.cluster")
RUN_RECORD = "run.json"


@dataclass
class NodeCluster:
    plan: Plan
    runner: Runner
    reservations: list[Reservation] = field(default_factory=list)
    k8s_port: Optional[int] = None
    api_port: Optional[int] = None
    gateway_host_port: Optional[int] = None
    created: bool = False          # kind create was started: the cluster may exist
    token: str = ""
    api_url: str = ""
    create_attempts: int = 0
    state_made: bool = False
    extra_variables: dict[str, str] = field(default_factory=dict)  # e.g. multi-node ones

    def __post_init__(self) -> None:
        self.provider = providers.get(self.plan.provider, self.runner)
        self.kind = Kind(self.runner, self.provider,
                         systemd_scope=self.plan.settings.systemd_scope)
        self.kubectl = Kubectl(self.runner, self.plan.kubeconfig, self.plan.context)
        from ksi.runtime.setup import RuntimeSetup  # issue 6: job runtime, images, bypass4netns

        self.rt = RuntimeSetup(self.plan, self.runner, self.provider, self.kind)

    # ---------------------------------------------------------------- checks
    def check_tools(self) -> None:
        """Cheap preflight (ksi.ops.doctor.cheap_checks): the provider's binary, kind (new
        enough) and kubectl are on PATH; fails with the first problem, in doctor's words."""
        from ksi.ops.doctor import cheap_checks, raise_first_failure

        raise_first_failure(cheap_checks(self.runner, self.provider.name))
        self.rt.preflight()  # runtime_mode=job: refuse unless the task cgroup is delegated

    # ---------------------------------------------------------------- reserve
    def reserve(self) -> None:
        """Private state directory, host-wide port reservations, the kind config on disk."""
        p, s = self.plan, self.plan.settings
        ensure_private_dir(p.state_root)
        ensure_private_dir(p.state_dir)
        self.state_made = True
        book = PortBook(Path(s.lock_dir), {"cluster": p.cluster, "job": p.env.job_id,
                                             "user": p.env.user})
        lo, hi = s.port_range()
        if p.k8s_port is not None:
            r = book.reserve(p.k8s_port, "K8S_PORT")
        else:
            r = book.reserve_any(lo, hi, "K8S_PORT", exclude=[p.gateway_nodeport or 0])
        self.reservations.append(r)
        self.k8s_port = r.port
        if p.gateway_nodeport is not None:
            g = book.reserve_any(lo, hi, "Liqo gateway port",
                                 exclude=[self.k8s_port, p.gateway_nodeport])
            self.reservations.append(g)
            self.gateway_host_port = g.port
        alo, ahi = s.api_port_range()
        a = book.reserve_any(alo, ahi, "API server port")
        self.reservations.append(a)
        self.api_port = a.port
        self.write_record()
        config = p.kind_config(self.k8s_port, self.api_port, self.gateway_host_port)
        write_private(p.kind_config_path, kindconfig.dump(config))

    def record(self) -> dict[str, Any]:
        p = self.plan
        return {
            "cluster": p.cluster, "context": p.context, "provider": p.provider,
            "job": p.env.as_dict(), "pid": os.getpid(), "host": p.env.hostname,
            "created": time.time(), "state_dir": str(p.state_dir),
            "kubeconfig": str(p.kubeconfig), "report": str(p.report_path),
            "ports": {"k8s": self.k8s_port, "api": self.api_port,
                      "gateway": self.gateway_host_port,
                      "gateway_nodeport": p.gateway_nodeport},
            "lock_dir": str(p.settings.lock_dir), "systemd_scope": p.settings.systemd_scope,
            "mode": p.mode,
        }

    def write_record(self) -> None:
        write_json(self.plan.state_dir / RUN_RECORD, self.record())
        if self.plan.settings.registry_dir:  # shared copy for 'ksi ls --all-nodes'
            from ksi.ops.registry import register

            register(self.plan.settings.registry_dir, self.record())

    # ---------------------------------------------------------------- provision
    def provision(self) -> None:
        p, s = self.plan, self.plan.settings
        self.rt.before_create()  # job-scoped runtime, bypass4netns shim (runner.extra_env)
        self.provider.check_daemon()
        self.rt.node_image()
        self.created = True
        self.create_attempts = self.kind.create(
            p.cluster, p.kind_config_path, p.kubeconfig, image=p.image,
            timeout=s.create_timeout, retries=s.create_retries)
        if p.kubeconfig.exists():
            os.chmod(p.kubeconfig, 0o600)
        self.rt.after_create(p.cluster)  # --preload archives; node containers' cgroups

    def wait_ready(self) -> None:
        """Nodes Ready, and the default service account made (pods created before the
        controller-manager makes it are rejected: seen with real kind right after create)."""
        timeout = self.plan.settings.ready_timeout
        self.kubectl.wait_nodes_ready(timeout)
        self.kubectl.wait_exists("serviceaccount", "default", "default", timeout)

    # ---------------------------------------------------------------- access
    def access(self, token_seconds: int) -> None:
        admin.ensure_admin(self.kubectl)
        self.token = admin.create_token(self.kubectl, token_seconds)
        self.api_url = api_server(self.plan.kubeconfig, self.plan.context)

    def variables(self) -> dict[str, str]:
        """What the workload sees (the original's contract plus KUBECONFIG)."""
        return {
            "K8S_CLUSTER_NAME": self.plan.context,
            "K8S_CLUSTER_API": self.api_url,
            "K8S_CLUSTER_API_TOKEN": self.token,
            "K8S_PORT": str(self.k8s_port),
            "KUBECONFIG": str(self.plan.kubeconfig),
            "KSI_CLUSTER": self.plan.cluster,
            "KSI_NODE_COUNT": "1",
            **self.extra_variables,
        }

    # ---------------------------------------------------------------- teardown
    def node_names(self) -> list[str]:
        """kind's node container names for the config's nodes (control-plane, worker, worker2…;
        kind pkg/cluster/internal/providers/common MakeNodeNamer)."""
        import yaml

        try:
            nodes = yaml.safe_load(self.plan.kind_config_path.read_text()).get("nodes") or [{}]
        except (OSError, AttributeError, yaml.YAMLError):
            nodes = [{}]
        counts: dict[str, int] = {}
        names = []
        for node in nodes:
            role = node.get("role", "control-plane")
            counts[role] = counts.get(role, 0) + 1
            suffix = "" if counts[role] == 1 else str(counts[role])
            names.append(f"{self.plan.cluster}-{role}{suffix}")
        return names

    def _kind_delete(self, attempts: int = 2) -> list[str]:
        """kind delete; after a failure (seen: podman/runc "cleaning up container" errors
        under load) force-remove the nodes and try once more."""
        p = self.plan
        for attempt in range(1, attempts + 1):
            try:
                self.kind.delete(p.cluster, p.kubeconfig)
                return []
            except KsiError as exc:
                log.info("kind delete failed (attempt %d/%d): %s", attempt, attempts, exc.cause)
                last = exc.cause
                try:
                    self.provider.remove(self.provider.node_containers(p.cluster))
                except KsiError as rm_exc:
                    log.info("force removal failed too: %s", rm_exc.cause)
        return [last]

    def teardown(self, *, failed: bool) -> list[str]:
        """Delete the cluster (exporting logs first after a failure), release the ports,
        remove the state. Idempotent; returns the problems it could not fix."""
        problems: list[str] = []
        p = self.plan
        if self.created:
            if failed:
                try:
                    self.kind.export_logs(p.cluster, p.log_dir)
                    log.info("cluster logs exported to %s", p.log_dir)
                except KsiError as exc:
                    log.info("could not export cluster logs: %s", exc.cause)
            # The cluster is discarded: kill its nodes at once instead of kind's graceful
            # stop (~10 s per node with podman, measured), so teardown fits in Slurm's
            # KillWait; kind delete then removes the stopped nodes, their volumes and the
            # kubeconfig entries as usual.
            try:
                self.provider.kill(self.provider.node_containers(p.cluster))
            except KsiError as exc:
                log.info("could not kill the node containers first: %s", exc.cause)
            problems += self._kind_delete()
            try:
                left = self.provider.node_containers(p.cluster)
                if left:
                    self.provider.remove(left)
                self.provider.remove_volumes(self.provider.node_volumes(self.node_names()))
            except KsiError as exc:
                problems.append(f"leftover node containers or volumes: {exc.cause}")
            else:
                self.created = False
        problems += self.rt.teardown()  # stop the job-scoped runtime (no-op in user mode)
        for r in self.reservations:
            r.release()
        self.reservations.clear()
        if p.settings.registry_dir and not problems:
            from ksi.ops.registry import unregister

            unregister(p.settings.registry_dir, p.cluster)
        if self.state_made and not problems:
            shutil.rmtree(p.state_dir, ignore_errors=True)
            self.state_made = p.state_dir.exists()
            if self.state_made:
                problems.append(f"could not remove {p.state_dir}")
        return problems
