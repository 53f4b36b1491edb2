"""Reading Kubernetes' status as Kubernetes means it (pure functions over `-o json` objects).

- A Job is done when the Job controller says so: its `Complete` or `Failed` condition
  (kubernetes/kubernetes pkg/controller/job/job_controller.go: `Failed` with reason
  BackoffLimitExceeded once the failed pods exceed `backoffLimit`, or for restartPolicy
  OnFailure once the pods' restartCounts reach it, `pastBackoffLimitOnFailure`).
- A batch Pod is done at phase Succeeded or Failed (pkg/kubelet/kubelet_pods.go getPhase).
- A service is ready as `kubectl rollout status` says (k8s.io/kubectl
  pkg/polymorphichelpers/rollout_status.go), a Pod when its Ready condition is True.
- Container states that the kubelet retries (BackOff, CrashLoopBackOff, pulls in progress)
  are not failures by themselves; those it can never get past are (`Judge`).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

AT_ONCE = frozenset({"ErrImageNeverPull", "InvalidImageName"})
AFTER_GRACE = frozenset({"CreateContainerConfigError", "CreateContainerError"})
PULL_FAILING = frozenset({"ErrImagePull", "ImagePullBackOff"})
CONFIG_GRACE = 30.0  # seconds: a ConfigMap/Secret the pod needs may still be on its way


def meta(o: dict[str, Any]) -> dict[str, Any]:
    return o.get("metadata") or {}


def pod_ref(pod: dict[str, Any]) -> str:
    m = meta(pod)
    return f"{m.get('namespace', 'default')}/{m.get('name', '')}"


def container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Init containers first (they run first), then the app containers."""
    st = pod.get("status") or {}
    return list(st.get("initContainerStatuses") or []) + list(st.get("containerStatuses") or [])


def phase(pod: dict[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def conditions(o: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The conditions whose status is True, by type."""
    return {c.get("type", ""): c for c in (o.get("status") or {}).get("conditions") or []
            if c.get("status") == "True"}


def _last_terminated(cs: dict[str, Any]) -> dict[str, Any]:
    return ((cs.get("state") or {}).get("terminated")
            or (cs.get("lastState") or {}).get("terminated") or {})


def failed_container(pod: dict[str, Any]) -> Optional[str]:
    """`pod NS/P container C: REASON exit N` of the (most recently) failed container."""
    best: Optional[tuple[str, str]] = None
    for cs in container_statuses(pod):
        t = _last_terminated(cs)
        if t and t.get("exitCode"):
            key = t.get("finishedAt") or ""
            line = (f"pod {pod_ref(pod)} container {cs.get('name')}: "
                    f"{t.get('reason') or 'Error'} exit {t.get('exitCode')}")
            if best is None or key > best[0]:
                best = (key, line)
    return best[1] if best else None


def pod_failure(pod: dict[str, Any]) -> str:
    """Why a pod is phase Failed: its failed container, else the pod's own reason."""
    st = pod.get("status") or {}
    return failed_container(pod) or (f"pod {pod_ref(pod)}: {st.get('reason') or 'Failed'}"
                                     + (f" ({st['message']})" if st.get("message") else ""))


def exit_codes(pod: dict[str, Any]) -> str:
    """The app containers' exit codes (the latest run of each), '-' while none ended."""
    codes = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        t = _last_terminated(cs)
        if "exitCode" in t:
            codes.append(str(t["exitCode"]))
    return ",".join(codes) or "-"


def restarts(pod: dict[str, Any]) -> int:
    return sum(int(cs.get("restartCount") or 0) for cs in container_statuses(pod))


class Judge:
    """Decides when a waiting container has become hopeless; remembers since when each
    (pod, container, reason class) has been seen, on an injectable clock."""

    def __init__(self, now: Callable[[], float], pull_timeout: float,
                 grace: float = CONFIG_GRACE) -> None:
        self.now = now
        self.pull_timeout = pull_timeout
        self.grace = grace
        self.since: dict[tuple[str, str, str], float] = {}

    def _held(self, key: tuple[str, str, str], limit: float) -> Optional[float]:
        first = self.since.setdefault(key, self.now())
        held = self.now() - first
        return held if held >= limit else None

    def hopeless(self, pod: dict[str, Any]) -> Optional[str]:
        """`pod NS/P container C: REASON (not started): message` or None."""
        uid = meta(pod).get("uid") or pod_ref(pod)
        for cs in container_statuses(pod):
            w = (cs.get("state") or {}).get("waiting") or {}
            reason, name = w.get("reason") or "", cs.get("name", "")
            cls = "pull" if reason in PULL_FAILING else reason
            for k in [k for k in self.since if k[:2] == (uid, name) and k[2] != cls]:
                del self.since[k]  # it left that state: its clock starts again next time
            line = (f"pod {pod_ref(pod)} container {name}: {reason} (not started)"
                    + (f": {w['message']}" if w.get("message") else ""))
            if reason in AT_ONCE:
                return line
            if reason in AFTER_GRACE and self._held((uid, name, cls), self.grace) is not None:
                return line
            if reason in PULL_FAILING:
                held = self._held((uid, name, cls), self.pull_timeout)
                if held is not None:
                    return f"{line} (failing for {held:.0f}s, image_pull_timeout)"
        return None


def job_outcome(job: dict[str, Any]) -> tuple[Optional[bool], str]:
    """(True: Complete, False: Failed, None: running) and the Failed condition's reason."""
    conds = conditions(job)
    if "Failed" in conds:
        c = conds["Failed"]
        return False, (c.get("reason") or "Failed") + (
            f" ({c['message']})" if c.get("message") else "")
    if "Complete" in conds:
        return True, ""
    return None, ""


def service_ready(kind: str, o: dict[str, Any]) -> tuple[bool, Optional[str]]:
    """(ready, failure) as `kubectl rollout status` decides (rollout_status.go)."""
    spec, st = o.get("spec") or {}, o.get("status") or {}
    m = meta(o)
    if kind == "Pod":
        return "Ready" in conditions(o), None
    if int(m.get("generation") or 0) > int(st.get("observedGeneration") or 0):
        return False, None
    if kind == "Deployment":
        for c in st.get("conditions") or []:
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                return False, f"ProgressDeadlineExceeded ({c.get('message', '')})"
        want = int(spec.get("replicas", 1))
        updated = int(st.get("updatedReplicas") or 0)
        return (updated >= want and int(st.get("replicas") or 0) <= updated
                and int(st.get("availableReplicas") or 0) >= updated), None
    if kind == "StatefulSet":
        want = int(spec.get("replicas", 1))
        rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") \
            == "RollingUpdate"
        same = not rolling or st.get("updateRevision") == st.get("currentRevision")
        return int(st.get("readyReplicas") or 0) >= want and same, None
    if kind == "DaemonSet":
        want = int(st.get("desiredNumberScheduled") or 0)
        return (int(st.get("updatedNumberScheduled") or 0) >= want
                and int(st.get("numberAvailable") or 0) >= want), None
    return True, None


def selects(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    labels = meta(pod).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def owned_by(pod: dict[str, Any], uid: str) -> bool:
    return any(r.get("uid") == uid for r in meta(pod).get("ownerReferences") or [])
