"""Watching a manifest run: one `kubectl get … -A -o json` per poll, the targets judged as
Kubernetes judges them (ksi.workload.podstate), the logs driven from the same poll."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Optional

from ksi.errors import Exit, KsiError
from ksi.workload import podstate as ps
from ksi.workload.objects import PLURALS

if TYPE_CHECKING:
    from ksi.access.kubectl import Kubectl
    from ksi.workload.objects import Target
    from ksi.workload.podlogs import PodLogs

log = logging.getLogger("ksi.manifests")


NO_FAILED_CONTAINER = "no failed container seen"


class Clock:
    """Monotonic time and sleep; tests pass one whose sleep only advances its time."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Watch:
    """The run's view of the cluster: targets' objects and pods, as of the last poll."""

    def __init__(self, kubectl: Kubectl, targets: list[Target], logs: PodLogs, *,
                 clock: Clock, pull_timeout: float) -> None:
        self.kubectl = kubectl
        self.targets = targets
        self.logs = logs
        self.clock = clock
        self.judge = ps.Judge(clock.now, pull_timeout)
        self.seen: dict[str, dict[str, Any]] = {}      # pod ns/name -> last seen, by target
        self.owner: dict[str, Target] = {}              # pod ns/name -> its target
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.current: list[dict[str, Any]] = []         # the targets' pods now
        self.mine: dict[str, list[dict[str, Any]]] = {}  # target ref -> its pods now
        kinds = ["pods"] + sorted({PLURALS[t.kind] for t in targets if t.kind != "Pod"})
        self.resources = ",".join(kinds)

    def _get(self) -> list[dict[str, Any]]:
        res = self.kubectl.run("get", self.resources, "-A", "-o", "json", timeout=60,
                               what=f"kubectl get {self.resources}", code=Exit.MANIFEST_FAILED,
                               fix="check the cluster from a 'ksi shell'")
        try:
            return (json.loads(res.stdout or "{}") or {}).get("items") or []
        except ValueError:
            return []

    def _pods_of(self, t: Target, obj: Optional[dict[str, Any]],
                 pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if obj is None:
            return []
        if t.kind == "Pod":
            return [obj]
        same_ns = [p for p in pods if ps.meta(p).get("namespace", "default") == t.namespace]
        if t.kind == "Job":
            uid = ps.meta(obj).get("uid", "")
            return [p for p in same_ns if ps.owned_by(p, uid)
                    or (not uid and (ps.meta(p).get("labels") or {}).get("job-name") == t.name)]
        return [p for p in same_ns if ps.selects(t.selector, p)]

    def look(self) -> list[dict[str, Any]]:
        """Read the targets' objects and pods once (the logs told first: their proof needs
        a read that began after them); returns the targets' pods."""
        self.logs.mark()
        items = self._get()
        pods = [i for i in items if i.get("kind", "Pod") == "Pod"]
        self.objects = {(i.get("kind", "Pod"), ps.meta(i).get("namespace", "default"),
                         ps.meta(i).get("name", "")): i for i in items}
        self.mine = {}
        current: list[dict[str, Any]] = []
        for t in self.targets:
            mine = self.mine[t.ref] = self._pods_of(
                t, self.objects.get((t.kind, t.namespace, t.name)), pods)
            for p in mine:
                self.seen[ps.pod_ref(p)] = p
                self.owner[ps.pod_ref(p)] = t
            current += mine
        self.current = current
        return current

    def poll(self) -> None:
        """Look once; raise KsiError(MANIFEST_FAILED) when a target has failed."""
        self.look()
        failure: Optional[KsiError] = None
        for t in self.targets:
            if failure is None and not t.done:
                obj = self.objects.get((t.kind, t.namespace, t.name))
                failure = self._judge(t, obj, self.mine[t.ref])
        self.logs.update(self.current)
        if failure is not None:
            raise failure

    def _judge(self, t: Target, obj: Optional[dict[str, Any]],
               mine: list[dict[str, Any]]) -> Optional[KsiError]:
        if obj is None:
            return None  # not visible yet (or deleted: a Job's pods vanish after it fails)
        if t.kind == "Job":
            outcome, why = ps.job_outcome(obj)
            if outcome is False:
                detail = self._job_detail(t)
                if detail == NO_FAILED_CONTAINER:  # the pods' status was read a moment
                    # before the Job's: look once more at the pods that are still there
                    for p in self._pods_of(t, obj, [i for i in self._get()
                                                    if i.get("kind", "Pod") == "Pod"]):
                        self.seen[ps.pod_ref(p)] = p
                        self.owner[ps.pod_ref(p)] = t
                    detail = self._job_detail(t)
                return self.fail(t, f"{why}: {detail}")
            if outcome:
                t.done = True
                log.info("%s complete", t.ref)
                return None
        elif t.batch:
            phase = ps.phase(obj)
            if phase == "Failed":
                return self.fail(t, ps.pod_failure(obj))
            if phase == "Succeeded":
                t.done = True
                log.info("%s succeeded", t.ref)
                return None
        else:
            ready, why = ps.service_ready(t.kind, obj)
            if why:
                return self.fail(t, why)
            if ready and not t.ready:
                log.info("%s ready", t.ref)
            t.ready = ready
        for p in mine:
            why = self.judge.hopeless(p)
            if why:
                return self.fail(t, why)
        return None

    def _job_detail(self, t: Target) -> str:
        """The Job's last failed container, from every pod of it seen during the run (the
        controller deletes an OnFailure Job's pod when it fails the Job)."""
        lines = sorted(((ps.meta(p).get("creationTimestamp") or "", ps.failed_container(p))
                        for ref, p in self.seen.items() if self.owner.get(ref) is t),
                       key=lambda x: x[0])
        found = [line for _, line in lines if line]
        return found[-1] if found else NO_FAILED_CONTAINER

    def fail(self, t: Target, detail: str) -> KsiError:
        return KsiError(f"{t.ref} failed: {detail}",
                        f"fix the manifest or image ({t.source}); inspect with 'kubectl "
                        f"describe {t.kind.lower()} -n {t.namespace} {t.name}' in a "
                        "'ksi shell'", code=Exit.MANIFEST_FAILED)

    def table(self) -> list[str]:
        """The targets' pods as last seen: phase, restarts, exit code(s), node."""
        rows = [["POD", "OF", "PHASE", "RESTARTS", "EXIT", "NODE"]]
        for ref, p in sorted(self.seen.items()):
            t = self.owner[ref]
            gone = ref not in {ps.pod_ref(c) for c in self.current}
            rows.append([ref, f"{t.kind.lower()}/{t.name}",
                         ps.phase(p) + (" (deleted)" if gone and t.kind == "Job" and
                                        ps.phase(p) not in ("Succeeded", "Failed") else ""),
                         str(ps.restarts(p)), ps.exit_codes(p),
                         (p.get("spec") or {}).get("nodeName") or "-"])
        if len(rows) == 1:
            return []
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
