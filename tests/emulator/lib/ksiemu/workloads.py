"""Pods that run, crash, restart and log over time; Jobs that retry; Deployments' pods.

Used for a Pod or Job (template) annotated ``ksi-emu/attempts``, for pods with init
containers, and for every Deployment. Everything is derived from the creation time, so each
kubectl call computes the same history. Sources of the behaviour:

- kubernetes/kubernetes pkg/kubelet/kubelet_pods.go: ``getPhase`` (a pod whose container
  waits in CrashLoopBackOff is Running; Never + a failed container is Failed), the container
  status (``restartCount`` = index of the newest started instance; ``lastState`` = the
  previous one; waiting ``CrashLoopBackOff`` with the ended one as ``lastState``),
  ``validateContainerLogStatus`` (which instance ``kubectl logs`` / ``--previous`` serve,
  and the ``is waiting to start`` messages).
- pkg/controller/job/job_controller.go: a Never Job makes a new pod per failure until the
  failed pods exceed ``backoffLimit`` (default 6); an OnFailure Job fails when the restart
  counts of its running/pending pods reach ``backoffLimit`` (``pastBackoffLimitOnFailure``)
  and deletes its pods; conditions FailureTarget+Failed ``BackoffLimitExceeded`` / ``Job has
  reached the specified backoff limit``; SuccessCriteriaMet+Complete.
- pkg/kubelet/images: ErrImagePull then ImagePullBackOff; ErrImageNeverPull
  (``Container image "X" is not present with pull policy of Never``); InvalidImageName.

Deviation: the kubelet's crash-loop back-off (10 s doubling, cap 5 min) and the Job
controller's pod back-off (10 s doubling) are one constant ``KSI_EMU_BACKOFF`` (default
1 s: longer than a status poll plus a `kubectl logs -f` start, as the real 10 s are); each
container instance runs ``KSI_EMU_JOB_SECONDS``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from . import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    Run = Tuple[float, Optional[float], Optional[int]]   # start, end (None: forever), exit

WAITS = {
    "neverpull": ("ErrImageNeverPull",
                  'Container image "{image}" is not present with pull policy of Never'),
    "invalidimage": ("InvalidImageName",
                     'Failed to apply default image tag "{image}": couldn\'t parse image name '
                     '"{image}": invalid reference format'),
    "configerror": ("CreateContainerConfigError", 'configmap "missing" not found'),
    "pullfail": ("ErrImagePull", 'failed to pull and unpack image "{image}"'),
}


def _ann(o: Dict[str, Any]) -> Dict[str, str]:
    ann = dict((o.get("metadata") or {}).get("annotations") or {})
    tmpl = ((o.get("spec") or {}).get("template") or {}).get("metadata") or {}
    ann.update(tmpl.get("annotations") or {})
    return ann


def _pod_spec(o: Dict[str, Any]) -> Dict[str, Any]:
    spec = o.get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {} if o.get("kind") != "Pod" else spec


def attempts(o: Dict[str, Any]) -> List[str]:
    """``ksi-emu/attempts: fail,fail,ok`` or ``KSI_EMU_ATTEMPTS=NAMEPREFIX=fail,ok;…``."""
    text = _ann(o).get("ksi-emu/attempts", "")
    name = (o.get("metadata") or {}).get("name", "")
    for item in os.environ.get("KSI_EMU_ATTEMPTS", "").split(";"):
        if "=" in item and not text:
            prefix, val = item.split("=", 1)
            if prefix.strip() and name.startswith(prefix.strip()):
                text = val
    out = [a.strip() for a in text.split(",") if a.strip()]
    if out:
        return out
    return ["run"] if (_pod_spec(o).get("restartPolicy") or "Always") == "Always" \
        and o.get("kind") in ("Pod", "Deployment") else ["ok"]


def modelled(o: Dict[str, Any]) -> bool:
    if o.get("kind") == "Deployment":
        return True
    if o.get("kind") not in ("Pod", "Job"):
        return False
    return "ksi-emu/attempts" in _ann(o) or bool(_pod_spec(o).get("initContainers")) \
        or bool(o.get("_emu", {}).get("modelled")) or _env_match(o)


def _env_match(o: Dict[str, Any]) -> bool:
    name = (o.get("metadata") or {}).get("name", "")
    return any("=" in i and i.split("=", 1)[0].strip() and name.startswith(
        i.split("=", 1)[0].strip()) for i in os.environ.get("KSI_EMU_ATTEMPTS", "").split(";"))


def _d(o: Dict[str, Any]) -> float:
    return float(o.get("_emu", {}).get("job_seconds", 0.2))


def _b() -> float:
    return state.env_float("KSI_EMU_BACKOFF", 1.0)


def _code(oc: str) -> Optional[int]:
    if oc == "run":
        return None
    if oc.startswith("exit:"):
        return int(oc.split(":", 1)[1])
    return 0 if oc == "ok" else 1


def gate(name: str) -> Optional[float]:
    """``KSI_EMU_GATES=DIR`` (a test hook): the time DIR/name was made (its mtime), None
    while it does not exist; 0.0 without the knob (no gate)."""
    d = os.environ.get("KSI_EMU_GATES", "")
    if not d:
        return 0.0
    try:
        return os.stat(os.path.join(d, name)).st_mtime
    except OSError:
        return None


def _ends(start: float, d: float, name: str) -> Optional[float]:
    """An instance's end: its run time, and not before its gate ``name`` opened."""
    g = gate(name)
    return None if g is None else max(start + d, g)


def init_runs(pod: Dict[str, Any], j: int, now: float) -> List[Run]:
    """Init container j's one run (they run one after the other, and succeed)."""
    t: Optional[float] = pod.get("_emu", {}).get("created", now)
    run: List[Run] = []
    for k in range(j + 1):
        if t is None or t > now:
            return []
        end = _ends(t, _d(pod), f"init-end-{k}")
        run = [(t, end, 0)]
        t = end
    return run


def _main_start(pod: Dict[str, Any], now: float) -> Optional[float]:
    """When the app containers start: after the last init container's end (None: not yet)."""
    n = len(_pod_spec(pod).get("initContainers") or [])
    if not n:
        return pod.get("_emu", {}).get("created", now)
    last = init_runs(pod, n - 1, now)
    return last[0][1] if last else None


def main_runs(pod: Dict[str, Any], now: float) -> Tuple[List[Run], Optional[str], bool]:
    """The app container's instances started by now, the waiting outcome that keeps it
    from starting (or None), and whether a restart is pending (back-off). With
    ``KSI_EMU_GATES``, instance i ends once ``end-i`` exists and restart i (i >= 1)
    begins once ``start-i`` exists."""
    spec = _pod_spec(pod)
    policy = spec.get("restartPolicy") or "Always"
    att, k = attempts(pod), int(pod.get("_emu", {}).get("attempt", 0))
    d = _d(pod)
    t = _main_start(pod, now)
    runs: List[Run] = []
    i = 0
    while t is not None and i < 10000:
        if i:
            g = gate(f"start-{i}")
            if g is None:
                break
            t = max(t, g)
        if t > now:
            break
        oc = att[min(k + i, len(att) - 1)]
        if oc in WAITS:
            return runs, oc, False
        code = _code(oc)
        end = None if code is None else _ends(t, d, f"end-{i}")
        runs.append((t, end, code))
        if end is None or now < end:
            return runs, None, False
        if not (policy == "Always" or (policy == "OnFailure" and code != 0)):
            return runs, None, False
        t, i = end + _b(), i + 1
    return runs, None, bool(runs)


def _cid(pod: Dict[str, Any], name: str, i: int) -> str:
    uid = (pod.get("metadata") or {}).get("uid", "")
    return "containerd://" + hashlib.sha256(f"{uid}/{name}/{i}".encode()).hexdigest()


def _term(pod: Dict[str, Any], name: str, i: int, run: Run) -> Dict[str, Any]:
    return {"terminated": {"exitCode": run[2], "reason": "Completed" if run[2] == 0 else "Error",
                           "startedAt": state.rfc3339(run[0]),
                           "finishedAt": state.rfc3339(run[1] or run[0]),
                           "containerID": _cid(pod, name, i)}}


def container_status(pod: Dict[str, Any], c: Dict[str, Any], runs: List[Run],
                     waiting: Optional[str], pending: bool, now: float) -> Dict[str, Any]:
    name, image = c.get("name", "main"), c.get("image", "")
    st: Dict[str, Any] = {"name": name, "image": image, "ready": False, "restartCount": 0,
                          "state": {}, "lastState": {}}
    if waiting and not runs:
        reason, msg = WAITS[waiting]
        if waiting == "pullfail" and now >= pod["_emu"]["created"] + _d(pod):
            reason = "ImagePullBackOff"
            msg = f'Back-off pulling image "{image}"'
        st["state"] = {"waiting": {"reason": reason, "message": msg.format(image=image)}}
        return st
    if not runs:
        st["state"] = {"waiting": {"reason": "PodInitializing"}}
        return st
    r = len(runs) - 1
    st["restartCount"] = r
    start, end, _code_ = runs[-1]
    if end is None or now < end:
        st["state"] = {"running": {"startedAt": state.rfc3339(start)}}
        st["ready"] = True
        if r:
            st["lastState"] = _term(pod, name, r - 1, runs[-2])
    elif pending or waiting:
        st["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": (
            f"back-off 10s restarting failed container={name} "
            f"pod={pod['metadata']['name']}_{pod['metadata'].get('namespace', 'default')}")}}
        st["lastState"] = _term(pod, name, r, runs[-1])
    else:
        st["state"] = _term(pod, name, r, runs[-1])
        if r:
            st["lastState"] = _term(pod, name, r - 1, runs[-2])
    return st


def pod_status(pod: Dict[str, Any], now: float) -> Dict[str, Any]:
    spec = _pod_spec(pod)
    inits = spec.get("initContainers") or []
    init_st = [container_status(pod, c, init_runs(pod, j, now), None, False, now)
               for j, c in enumerate(inits)]
    for s in init_st:
        s["ready"] = "terminated" in s["state"]
    runs, waiting, pending = main_runs(pod, now)
    mains = spec.get("containers") or [{"name": "main"}]
    main_st = [container_status(pod, c, runs, waiting, pending, now) for c in mains]
    policy = spec.get("restartPolicy") or "Always"
    last = runs[-1] if runs else None
    if not runs:
        phase = "Pending"
    elif last and last[1] is not None and now >= last[1] and not pending and not waiting:
        phase = "Succeeded" if last[2] == 0 else ("Failed" if policy == "Never" else "Running")
    else:
        phase = "Running"
    ready = all(s["ready"] for s in main_st) and phase == "Running"
    out: Dict[str, Any] = {
        "phase": phase, "containerStatuses": main_st,
        "startTime": state.rfc3339(pod.get("_emu", {}).get("created", now)),
        "conditions": [{"type": "Initialized", "status": str(all(
                            s["ready"] for s in init_st)).capitalize() if init_st else "True"},
                       {"type": "Ready", "status": "True" if ready else "False"},
                       {"type": "PodScheduled", "status": "True"}]}
    if init_st:
        out["initContainerStatuses"] = init_st
    return out


def job_history(job: Dict[str, Any], now: float) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """The Job's pods (as stored objects, without status) and its status."""
    spec = job.get("spec") or {}
    limit = int(spec.get("backoffLimit", 6))
    tmpl = spec.get("template") or {}
    policy = (tmpl.get("spec") or {}).get("restartPolicy") or "Never"
    created = job.get("_emu", {}).get("created", now)
    st: Dict[str, Any] = {"startTime": state.rfc3339(created), "active": 0}
    pods: List[Dict[str, Any]] = []
    failed = succeeded = 0
    finished: Optional[Tuple[bool, float]] = None
    k, t = 0, created
    while t <= now and k < 1000:
        pod = make_pod(job, k, t)
        runs, _w, _p = main_runs(pod, now)
        if policy == "OnFailure":
            lim = max(limit, 1)
            ok = [r for r in runs if r[2] == 0 and r[1] is not None and now >= r[1]]
            if len(runs) > lim and not (ok and ok[0][1] <= runs[lim][0]):
                finished = (False, runs[lim][0])  # pastBackoffLimitOnFailure: pod deleted
            elif ok:
                finished, succeeded = (True, ok[0][1]), 1
                pods.append(pod)
            else:
                pods.append(pod)
                st["active"] = 1
            break
        pods.append(pod)
        last = runs[-1] if runs else None
        if last is None or last[1] is None or now < last[1]:
            st["active"] = 1
            break
        if last[2] == 0:
            finished, succeeded = (True, last[1]), 1
            break
        failed += 1
        if failed > limit:
            finished = (False, last[1])
            break
        k, t = k + 1, last[1] + _b()
        g = gate(f"start-{k}")  # a retry is the Job's restart
        if g is None:
            break
        t = max(t, g)
    if failed:
        st["failed"] = failed
    if succeeded:
        st["succeeded"] = succeeded
    if finished and finished[0]:
        st["completionTime"] = state.rfc3339(finished[1])
        st["conditions"] = [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods"},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods"}]
    elif finished:
        c = {"status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}
        st["conditions"] = [dict(c, type="FailureTarget"), dict(c, type="Failed")]
    return pods, st


def make_pod(owner: Dict[str, Any], k: int, t: float, rs: str = "") -> Dict[str, Any]:
    """Pod k of a Job (k > 0: a retry) or of a Deployment's ReplicaSet ``rs``."""
    md = owner["metadata"]
    name, ns, uid = md["name"], md.get("namespace", "default"), md.get("uid", "")
    tmpl = (owner.get("spec") or {}).get("template") or {}
    labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
    h = hashlib.md5(f"{uid}/{k}".encode()).hexdigest()
    suffix = "".join("bcdfghjklmnpqrstvwxz2456789"[int(h[i:i + 2], 16) % 27] for i in (0, 2, 4,
                                                                                     6, 8))
    if rs:
        pname = f"{name}-{rs}-{suffix}"
        labels["pod-template-hash"] = rs
        ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{name}-{rs}",
               "uid": hashlib.md5(f"{uid}/rs".encode()).hexdigest(), "controller": True}
    else:
        pname = f"{name}-{suffix}"
        labels.update({"job-name": name, "batch.kubernetes.io/job-name": name,
                       "controller-uid": uid})
        ref = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
               "controller": True}
    spec = json.loads(json.dumps(tmpl.get("spec") or {}))
    spec.setdefault("restartPolicy", "Never" if not rs else "Always")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pname, "namespace": ns, "labels": labels,
                         "annotations": dict((tmpl.get("metadata") or {}).get("annotations")
                                             or {}),
                         "ownerReferences": [ref], "creationTimestamp": state.rfc3339(t),
                         "uid": hashlib.md5(f"{uid}/pod/{k}".encode()).hexdigest()},
            "spec": spec,
            "_emu": dict(owner.get("_emu") or {}, created=t, attempt=k, modelled=True)}


def expand_pods(objs: Dict[str, Any], pods: List[Dict[str, Any]],
                now: float) -> List[Dict[str, Any]]:
    """The stored pods with modelled Jobs' pods replaced by their history, plus the pods of
    every Deployment."""
    jobs = {o["metadata"].get("uid"): o for k, o in objs.items()
            if k.startswith("Job/") and modelled(o)}
    out = [p for p in pods if not any(r.get("uid") in jobs for r in
                                      p["metadata"].get("ownerReferences") or [])]
    for job in jobs.values():
        out += job_history(job, now)[0]
    for k, o in objs.items():
        if k.startswith("Deployment/"):
            rs = hashlib.md5(o["metadata"].get("uid", "").encode()).hexdigest()[:10]
            created = o.get("_emu", {}).get("created", now)
            out += [make_pod(o, i, created, rs) for i in
                    range(int((o.get("spec") or {}).get("replicas", 1)))]
    return out


def status(o: Dict[str, Any], objs_now: float) -> Dict[str, Any]:
    now = objs_now
    if o["kind"] == "Job":
        return job_history(o, now)[1]
    if o["kind"] == "Pod":
        return pod_status(o, now)
    n = int((o.get("spec") or {}).get("replicas", 1))
    o["metadata"].setdefault("generation", 1)
    rs = hashlib.md5(o["metadata"].get("uid", "").encode()).hexdigest()[:10]
    pods = [make_pod(o, i, o.get("_emu", {}).get("created", now), rs) for i in range(n)]
    ready = sum(1 for p in pods if pod_status(p, now)["phase"] == "Running"
                and all(c["ready"] for c in pod_status(p, now)["containerStatuses"]))
    return {"observedGeneration": o["metadata"]["generation"], "replicas": n,
            "updatedReplicas": n, "readyReplicas": ready, "availableReplicas": ready,
            "conditions": [{"type": "Available", "status": "True" if ready >= n else "False"},
                           {"type": "Progressing", "status": "True",
                            "reason": "NewReplicaSetAvailable"}]}


def _text(pod: Dict[str, Any], c: Dict[str, Any]) -> str:
    cmd = [str(x) for x in list(c.get("command") or []) + list(c.get("args") or [])]
    if cmd and os.path.basename(cmd[0]) == "echo":
        return " ".join(cmd[1:])
    if len(cmd) >= 3 and cmd[1] == "-c" and cmd[2].strip().startswith("echo "):
        return cmd[2].strip()[5:].strip().strip("'\"")
    return "emulated log of pod {} container {}".format(pod["metadata"]["name"], c.get("name"))


def _lines(pod: Dict[str, Any], c: Dict[str, Any], i: int, run: Run,
           init: bool) -> List[Tuple[float, str]]:
    out = [(run[0], _text(pod, c))]
    if not init and run[1] is not None:
        out.append((run[1], f"emulated run {i} of container {c.get('name')} exited {run[2]}"))
    return out


def logs(pod: Dict[str, Any], cname: str, previous: bool, follow: bool) -> List[str]:
    """Print the served instance's lines (following a live one until it ends); raises
    ValueError with the kubelet's message when there is nothing to serve."""
    now = time.time()
    spec = _pod_spec(pod)
    inits = spec.get("initContainers") or []
    pname = pod["metadata"]["name"]

    def runs_now(t: float) -> List[Run]:
        return init_runs(pod, j, t) if init else main_runs(pod, t)[0]

    names = [x.get("name") for x in inits]
    init = cname in names
    j = names.index(cname) if init else -1
    if init:
        c = inits[j]
        runs = runs_now(now)
        cs = container_status(pod, c, runs, None, False, now)
    else:
        c = next((x for x in spec.get("containers") or [] if x.get("name") == cname), None)
        if c is None:
            raise ValueError(f"container {cname} is not valid for pod {pname}")
        runs, waiting, pending = main_runs(pod, now)
        cs = container_status(pod, c, runs, waiting, pending, now)
    st, last, r = cs["state"], cs["lastState"], cs["restartCount"]
    if previous:
        if "terminated" not in last:
            raise ValueError(f'previous terminated container "{cname}" in pod "{pname}" '
                             "not found")
        i = r - 1 if "running" in st or "terminated" in st else r
    elif "running" in st or "terminated" in st or "terminated" in last:
        i = r
    else:
        reason = (st.get("waiting") or {}).get("reason", "")
        why = {"ErrImagePull": "image can't be pulled",
               "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
        raise ValueError(f'container "{cname}" in pod "{pname}" is waiting to start: {why}')
    done = 0
    while True:  # the instance's end is looked up again each time (a gate may open)
        now = time.time()
        run = runs_now(now)[i]
        todo = _lines(pod, c, i, run, init)
        while done < len(todo) and todo[done][0] <= now:
            state.out(todo[done][1])
            done += 1
        sys_flush()
        if not follow or (run[1] is not None and now >= run[1] and done == len(todo)):
            return []
        time.sleep(0.02)


def sys_flush() -> None:
    import sys

    sys.stdout.flush()
