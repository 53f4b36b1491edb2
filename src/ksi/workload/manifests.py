"""`ksi run manifest.yaml [...]`: apply the manifests, wait until their Jobs complete and Pods
succeed (fail fast on Failed / image pull errors / crash loops, naming the pod's reason),
print the pods' logs when they finish."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.cluster import NodeCluster
    from ksi.signals import Guard

log = logging.getLogger("ksi.manifests")

BAD_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                         "CrashLoopBackOff", "CreateContainerConfigError",
                         "CreateContainerError", "BackOff", "ErrImageNeverPull"})


@dataclass
class Target:
    kind: str          # Job | Pod
    namespace: str
    name: str
    done: bool = False
    logged: set[str] = field(default_factory=set)

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()} {self.namespace}/{self.name}"


def read_targets(paths: list[Path]) -> list[Target]:
    """Jobs and Pods the manifests define (what we wait for). Bad files fail here, before
    anything is applied."""
    import yaml

    out: list[Target] = []
    for p in paths:
        if not p.is_file():
            raise KsiError(f"manifest {p} does not exist", "pass existing manifest files",
                           code=Exit.WORKLOAD_MISSING)
        try:
            docs = list(yaml.safe_load_all(p.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise KsiError(f"manifest {p} cannot be read: {first}", f"correct {p}",
                           code=Exit.MANIFEST_FAILED) from None
        items: list[Any] = []
        for d in docs:
            if isinstance(d, dict) and d.get("kind") == "List":
                items += d.get("items") or []
            elif d:
                items.append(d)
        for d in items:
            if not isinstance(d, dict):
                continue
            kind = d.get("kind")
            meta = d.get("metadata") or {}
            if kind in ("Job", "Pod") and meta.get("name"):
                out.append(Target(kind, meta.get("namespace") or "default", meta["name"]))
    return out


def _waiting_reason(pod: dict[str, Any]) -> Optional[str]:
    st = pod.get("status") or {}
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        w = (cs.get("state") or {}).get("waiting") or {}
        if w.get("reason") in BAD_WAITING:
            msg = w.get("message", "")
            return f"{w['reason']}" + (f" ({msg})" if msg else "")
    return None


def _failed_reason(pod: dict[str, Any]) -> str:
    st = pod.get("status") or {}
    for cs in st.get("containerStatuses") or []:
        t = (cs.get("state") or {}).get("terminated") or {}
        if t and t.get("exitCode"):
            return f"container {cs.get('name')} {t.get('reason', 'terminated')} " \
                   f"(exit {t.get('exitCode')})"
    return st.get("reason") or st.get("message") or "phase Failed"


def _ns_name(o: dict[str, Any]) -> tuple[str, str]:
    m = o.get("metadata") or {}
    return m.get("namespace") or "default", m.get("name", "")


class Watcher:
    def __init__(self, cluster: NodeCluster, targets: list[Target]) -> None:
        self.cluster = cluster
        self.kubectl = cluster.kubectl
        self.targets = targets

    def _get(self, resource: str) -> list[dict[str, Any]]:
        res = self.kubectl.run("get", resource, "-A", "-o", "json", timeout=60,
                               what=f"kubectl get {resource}", code=Exit.MANIFEST_FAILED)
        try:
            return (json.loads(res.stdout or "{}") or {}).get("items") or []
        except ValueError:
            return []

    def logs(self, pod: dict[str, Any], target: Target) -> None:
        ns, name = _ns_name(pod)
        if name in target.logged:
            return
        target.logged.add(name)
        res = self.kubectl.run("logs", "-n", ns, name, "--all-containers", timeout=120,
                               check=False)
        print(f"ksi: logs of pod {ns}/{name} ({target.ref}):", file=sys.stderr, flush=True)
        if res.stdout:
            sys.stdout.write(res.stdout if res.stdout.endswith("\n") else res.stdout + "\n")
            sys.stdout.flush()

    def poll(self) -> bool:
        """One look at the cluster; True when every target finished. Raises on failure."""
        # jobs before pods: a Job seen Failed/Complete has its pods' final state in `pods`
        jobs = {_ns_name(j): j for j in self._get("jobs")} \
            if any(t.kind == "Job" for t in self.targets) else {}
        pods = self._get("pods")
        for t in self.targets:
            if t.done:
                continue
            if t.kind == "Pod":
                pod = next((p for p in pods if _ns_name(p) == (t.namespace, t.name)), None)
                if pod is None:
                    continue
                self._check_pod(t, pod, [pod])
                continue
            mine = [p for p in pods if _ns_name(p)[0] == t.namespace and
                    ((p.get("metadata") or {}).get("labels") or {}).get("job-name") == t.name]
            job = jobs.get((t.namespace, t.name))
            if job is None:
                continue
            conds = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []
                     if c.get("status") == "True"}
            for p in mine:
                why = _waiting_reason(p)
                if why:
                    raise self._fail(t, f"pod {_ns_name(p)[1]}: {why}")
            if "Failed" in conds:
                c = conds["Failed"]
                failed = [p for p in mine if (p.get("status") or {}).get("phase") == "Failed"]
                for p in mine:
                    if (p.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                        self.logs(p, t)
                detail = f"{c.get('reason', 'Failed')}"
                if c.get("message"):
                    detail += f": {c['message']}"
                if failed:
                    detail += f"; pod {_ns_name(failed[0])[1]}: {_failed_reason(failed[0])}"
                raise self._fail(t, detail)
            if "Complete" in conds:
                for p in mine:
                    if (p.get("status") or {}).get("phase") == "Succeeded":
                        self.logs(p, t)
                t.done = True
                log.info("%s complete", t.ref)
        return all(t.done for t in self.targets)

    def _check_pod(self, t: Target, pod: dict[str, Any], _all: list[dict[str, Any]]) -> None:
        why = _waiting_reason(pod)
        if why:
            raise self._fail(t, why)
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Failed":
            self.logs(pod, t)
            raise self._fail(t, _failed_reason(pod))
        if phase == "Succeeded":
            self.logs(pod, t)
            t.done = True
            log.info("%s succeeded", t.ref)

    def _fail(self, t: Target, detail: str) -> KsiError:
        return KsiError(f"{t.ref} failed: {detail}",
                        "fix the manifest or image; inspect with 'kubectl describe "
                        f"{t.kind.lower()} -n {t.namespace} {t.name}' from a 'ksi shell'",
                        code=Exit.MANIFEST_FAILED)


def run_manifests(cluster: NodeCluster, guard: Guard, paths: list[Path]) -> int:
    """Apply, wait, print logs. Returns 0; a failure raises KsiError(MANIFEST_FAILED)."""
    targets = read_targets(paths)
    for p in paths:
        res = cluster.kubectl.run("apply", "-f", str(p), timeout=300,
                                  what=f"kubectl apply -f {p}", code=Exit.MANIFEST_FAILED,
                                  fix=f"correct {p} (kubectl's message above)")
        for line in res.stdout.splitlines():
            log.info("%s", line)
    if not targets:
        return 0
    interval = max(0.01, float(cluster.plan.settings.poll_interval))
    watcher = Watcher(cluster, targets)
    log.info("waiting for %s", ", ".join(t.ref for t in targets))
    while not watcher.poll():
        time.sleep(interval)
    return 0
