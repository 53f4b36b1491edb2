"""Manifest runs with a fake kubectl and an injected clock (no cluster, no sleeps): the
Kubernetes semantics of done/failed/ready, timeouts and graces, SIGTERM ending a service
run, the log streams' no-loss/no-duplicate bookkeeping, the pre-apply checks."""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path
from typing import Any, Callable

import pytest

from ksi.errors import Exit, Interrupted, KsiError
from ksi.runner import Result, Runner
from ksi.workload import podstate as ps
from ksi.workload import precheck
from ksi.workload.manifests import serve
from ksi.workload.objects import Target, read_manifests
from ksi.workload.podlogs import PodLogs, Printer
from ksi.workload.watch import Watch


class FakeClock:
    def __init__(self, on_sleep: Callable[[float], None] | None = None) -> None:
        self.t = 1000.0
        self.on_sleep = on_sleep

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        if self.on_sleep:
            self.on_sleep(self.t)


class FakeKubectl:
    """Answers `get … -o json` from a list of successive cluster states; records calls."""

    def __init__(self, states: list[list[dict[str, Any]]] | None = None,
                 answers: dict[str, Result] | None = None) -> None:
        self.states = states or [[]]
        self.answers = answers or {}
        self.calls: list[tuple[str, ...]] = []
        self.runner = Runner()
        self.kubeconfig = Path("/nonexistent/kubeconfig")

    def argv(self, *args: str) -> list[str]:
        return ["kubectl", *args]

    def run(self, *args: str, **_kw: Any) -> Result:
        self.calls.append(args)
        for key, res in self.answers.items():
            if key in " ".join(args):
                return res
        if args[0] == "get":
            items = self.states[0] if len(self.states) == 1 else self.states.pop(0)
            return Result(list(args), 0, json.dumps({"kind": "List", "items": items}), "", 0)
        return Result(list(args), 0, "", "", 0)


class Guard:
    received: int | None = None


def pod(name: str, phase: str = "Running", statuses: list[dict[str, Any]] | None = None,
        owner: str = "", ns: str = "default", labels: dict[str, str] | None = None,
        ready: bool = False) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": ns, "uid": "u-" + name,
                          "labels": labels or {}}
    if owner:
        md["ownerReferences"] = [{"uid": owner}]
    return {"kind": "Pod", "metadata": md, "spec": {"nodeName": "n1"},
            "status": {"phase": phase, "containerStatuses": statuses or [],
                       "conditions": [{"type": "Ready",
                                       "status": "True" if ready else "False"}]}}


def waiting(reason: str, name: str = "c", restarts: int = 0,
            last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "restartCount": restarts, "state": {"waiting": {"reason": reason}},
            "lastState": last or {}}


def terminated(code: int, reason: str = "Error", name: str = "c",
               restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "restartCount": restarts,
            "state": {"terminated": {"exitCode": code, "reason": reason}}}


def job(name: str = "j", cond: str = "", reason: str = "") -> dict[str, Any]:
    st: dict[str, Any] = {"active": 1}
    if cond:
        st["conditions"] = [{"type": cond, "status": "True", "reason": reason,
                             "message": "Job has reached the specified backoff limit"}]
    return {"kind": "Job", "metadata": {"name": name, "namespace": "default", "uid": "J"},
            "status": st}


def watch_of(states, targets, clock=None, pull_timeout=300.0, mode="none"):
    k = FakeKubectl(states)
    return Watch(k, targets, PodLogs(k, mode), clock=clock or FakeClock(),
                 pull_timeout=pull_timeout)


# ------------------------------------------------------------------ judging pod states

def test_judge_at_once_after_grace_and_after_pull_timeout():
    clock = FakeClock()
    j = ps.Judge(clock.now, pull_timeout=60, grace=30)
    assert "ErrImageNeverPull" in (j.hopeless(pod("a", statuses=[waiting(
        "ErrImageNeverPull")])) or "")
    cfg = pod("b", statuses=[waiting("CreateContainerConfigError")])
    assert j.hopeless(cfg) is None
    clock.t += 29
    assert j.hopeless(cfg) is None
    clock.t += 1
    assert "CreateContainerConfigError" in (j.hopeless(cfg) or "")
    pulling = pod("c", statuses=[waiting("ErrImagePull")])
    assert j.hopeless(pulling) is None
    clock.t += 40
    backoff = pod("c", statuses=[waiting("ImagePullBackOff")])  # same class: clock runs on
    assert j.hopeless(backoff) is None
    clock.t += 20
    assert "(failing for 60s, image_pull_timeout)" in (j.hopeless(backoff) or "")
    # leaving the state resets it
    j2 = ps.Judge(clock.now, pull_timeout=60)
    j2.hopeless(pulling)
    clock.t += 59
    j2.hopeless(pod("c", statuses=[waiting("ContainerCreating")]))
    clock.t += 59
    assert j2.hopeless(pulling) is None


@pytest.mark.parametrize("reason", ["BackOff", "CrashLoopBackOff", "ContainerCreating",
                                    "PodInitializing"])
def test_retried_states_are_never_fatal_by_themselves(reason):
    clock = FakeClock()
    j = ps.Judge(clock.now, pull_timeout=1, grace=1)
    p = pod("a", statuses=[waiting(reason, restarts=3)])
    for _ in range(5):
        clock.t += 1000
        assert j.hopeless(p) is None


def test_image_pull_timeout_on_the_injected_clock():
    states = [[pod("p", "Pending", [waiting("ImagePullBackOff")])]]
    clock = FakeClock()
    w = watch_of(states, [Target("Pod", "default", "p", batch=True)], clock, pull_timeout=60)
    with pytest.raises(KsiError) as ei:
        serve(w, Guard(), interval=10, script_follows=False)
    assert ei.value.code == Exit.MANIFEST_FAILED
    assert clock.t - 1000 == 60  # failed at the first poll at or after the timeout, no earlier
    assert "pod default/p failed: pod default/p container c: ImagePullBackOff" in \
        ei.value.cause


def test_job_with_crashloop_waits_for_the_job_condition():
    crashing = pod("j-1", statuses=[waiting("CrashLoopBackOff", "work", 2,
                                            {"terminated": {"exitCode": 3, "reason": "Error",
                                                            "finishedAt": "t2"}})], owner="J")
    states = [[job(), crashing]] * 5 + [[job(cond="Failed", reason="BackoffLimitExceeded")]]
    clock = FakeClock()
    w = watch_of(list(states), [Target("Job", "default", "j", batch=True)], clock)
    with pytest.raises(KsiError) as ei:
        serve(w, Guard(), interval=1, script_follows=False)
    # polled until the Job controller said Failed; the pod, deleted by then, still named
    assert clock.t - 1000 == 5
    assert ei.value.cause == ("job default/j failed: BackoffLimitExceeded (Job has reached the "
                              "specified backoff limit): pod default/j-1 container work: Error "
                              "exit 3")
    assert any("(deleted)" in row for row in w.table())


def test_job_complete_and_pod_phases():
    done = pod("j-2", "Succeeded", [terminated(0, "Completed", "work", 1)], owner="J")
    states = [[job(), pod("j-2", statuses=[], owner="J")],
              [dict(job(), status={"conditions": [{"type": "Complete", "status": "True"}]}),
               done]]
    w = watch_of(states, [Target("Job", "default", "j", batch=True)])
    assert serve(w, Guard(), interval=1, script_follows=False) == 0
    rows = w.table()
    assert rows[0].split() == ["POD", "OF", "PHASE", "RESTARTS", "EXIT", "NODE"]
    assert rows[1].split() == ["default/j-2", "job/j", "Succeeded", "1", "0", "n1"]
    failed = pod("p", "Failed", [terminated(137, "OOMKilled", "main")])
    w = watch_of([[failed]], [Target("Pod", "default", "p", batch=True)])
    with pytest.raises(KsiError, match="container main: OOMKilled exit 137"):
        serve(w, Guard(), interval=1, script_follows=False)
    evicted = pod("q", "Failed")
    evicted["status"].update(reason="Evicted", message="low on memory")
    assert ps.pod_failure(evicted) == "pod default/q: Evicted (low on memory)"


def test_service_only_ends_with_0_on_sigterm_and_reraises_other_signals():
    web = [{"kind": "Deployment", "metadata": {"name": "web", "namespace": "default",
                                               "generation": 1},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                       "availableReplicas": 1}},
           pod("web-1", labels={"app": "web"}, ready=True)]
    for signum, expect in ((signal.SIGTERM, 0), (signal.SIGINT, None)):
        def cancel(t: float, signum: int = signum) -> None:
            if t > 1005:
                raise Interrupted(signum, signal.Signals(signum).name)
        guard = Guard()
        guard.received = signum
        t = Target("Deployment", "default", "web", batch=False, selector={"app": "web"})
        w = watch_of([web], [t], FakeClock(cancel))
        if expect is None:
            with pytest.raises(Interrupted):
                serve(w, guard, interval=1, script_follows=False)
            assert guard.received == signum
        else:
            assert serve(w, guard, interval=1, script_follows=False) == 0
            assert guard.received is None and t.ready
    # a script follows: return as soon as the services are ready
    t = Target("Deployment", "default", "web", batch=False, selector={"app": "web"})
    assert serve(watch_of([web], [t]), Guard(), interval=1, script_follows=True) == 0


def test_rollout_status_rules():
    assert ps.service_ready("StatefulSet", {"spec": {"replicas": 2}, "status": {
        "readyReplicas": 2, "updateRevision": "a", "currentRevision": "a"}})[0]
    assert not ps.service_ready("StatefulSet", {"spec": {"replicas": 2}, "status": {
        "readyReplicas": 2, "updateRevision": "b", "currentRevision": "a"}})[0]
    assert ps.service_ready("DaemonSet", {"status": {"desiredNumberScheduled": 3,
                                                     "updatedNumberScheduled": 3,
                                                     "numberAvailable": 3}})[0]
    assert not ps.service_ready("DaemonSet", {"status": {"desiredNumberScheduled": 3,
                                                         "updatedNumberScheduled": 3,
                                                         "numberAvailable": 2}})[0]
    stale = {"metadata": {"generation": 2}, "status": {"observedGeneration": 1}}
    assert ps.service_ready("Deployment", stale) == (False, None)
    stuck = {"status": {"conditions": [{"type": "Progressing",
                                        "reason": "ProgressDeadlineExceeded"}]}}
    assert "ProgressDeadlineExceeded" in (ps.service_ready("Deployment", stuck)[1] or "")


# ------------------------------------------------------------------ log bookkeeping

def run_status(r: int) -> dict[str, Any]:
    return {"name": "c", "restartCount": r, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1}} if r else {}}


def poll(logs: PodLogs, pods: list[dict[str, Any]]) -> None:
    """One status poll as Watch does it: mark, (read), update."""
    logs.mark()
    logs.update(pods)


def test_logs_end_mode_fetches_previous_then_current_once():
    k = FakeKubectl(answers={"logs": Result([], 0, "line\n", "", 0)})
    out = io.StringIO()
    logs = PodLogs(k, "end", Printer(out))
    p = pod("p", statuses=[run_status(2)])
    poll(logs, [p])
    assert not [c for c in k.calls if c[0] == "logs"]  # end: nothing before the end
    logs.finish([p])
    logs.finish([p])  # nothing twice
    fetched = [c for c in k.calls if c[0] == "logs"]
    assert fetched == [("logs", "-n", "default", "p", "-c", "c", "--previous"),
                       ("logs", "-n", "default", "p", "-c", "c")]
    assert out.getvalue() == "[default/p/c] line\n[default/p/c] line\n"


def test_logs_ended_instances_fetched_exactly_once_in_order():
    k = FakeKubectl(answers={"logs": Result([], 0, "x\n", "", 0)})
    out = io.StringIO()
    logs = PodLogs(k, "follow", Printer(out))
    backoff = waiting("CrashLoopBackOff", restarts=0, last={"terminated": {"exitCode": 1}})
    poll(logs, [pod("p", statuses=[backoff])])          # instance 0 ended unseen: fetched
    assert out.getvalue() == ""                         # ... printed once proven
    poll(logs, [pod("p", statuses=[backoff])])          # proven (restartCount still 0)
    poll(logs, [pod("p", statuses=[backoff])])          # ... not again
    assert out.getvalue() == "[default/p/c] x\n"
    done = terminated(0, "Completed", restarts=1)
    poll(logs, [pod("p", statuses=[done])])             # instance 1 ended unseen
    logs.finish([pod("p", statuses=[done])])
    fetched = [c[-1] for c in k.calls if c[0] == "logs"]
    assert fetched == ["--previous", "c"]
    assert out.getvalue() == "[default/p/c] x\n[default/p/c] x\n"


def fake_follow(tmp_path: Path, k: FakeKubectl, text: str, block: bool) -> None:
    """`kubectl logs -f` answering text, then ending (or, block: still following)."""
    script = tmp_path / "fake-kubectl"
    script.write_text(f"#!/bin/sh\nprintf '{text}'\n" + ("exec sleep 120\n" if block else ""))
    script.chmod(0o755)
    k.argv = lambda *a: [str(script), *a]  # type: ignore[method-assign]


def answered(logs: PodLogs) -> Any:
    """The follower of default/p/c once it has answered (bounded wait on a condition)."""
    f = logs.containers[("default", "p", "c")].follower
    assert f is not None
    for _ in range(1000):
        if f.answered:
            return f
        f.thread.join(0.01)
    raise AssertionError("the fake kubectl logs -f never answered")


def test_logs_follow_streams_a_live_instance_then_counts_it_shown(tmp_path):
    k = FakeKubectl()
    fake_follow(tmp_path, k, "one\\ntwo\\npartial", block=False)
    out = io.StringIO()
    logs = PodLogs(k, "follow", Printer(out))
    poll(logs, [pod("p", statuses=[run_status(0)])])
    follower = answered(logs)
    assert follower.proc in k.runner._live
    follower.thread.join(10)
    assert out.getvalue() == ""  # held until a later status read proves the instance
    logs.finish([pod("p", "Succeeded", [terminated(0, "Completed")])])
    assert out.getvalue() == "[default/p/c] one\n[default/p/c] two\n[default/p/c] partial\n"
    assert not [c for c in k.calls if c[0] == "logs"]  # followed: not fetched again
    assert follower.proc not in k.runner._live


def test_logs_follower_that_ended_before_the_restart_is_proven(tmp_path):
    """The stream ended (its run ended) and the next read shows run 1 running: it was run
    0's; run 1 is followed next, nothing fetched."""
    k = FakeKubectl()
    fake_follow(tmp_path, k, "zero\\n", block=False)
    out = io.StringIO()
    logs = PodLogs(k, "follow", Printer(out))
    poll(logs, [pod("p", statuses=[run_status(0)])])
    answered(logs).thread.join(10)
    poll(logs, [pod("p", statuses=[run_status(1)])])
    assert out.getvalue() == "[default/p/c] zero\n"
    c = logs.containers[("default", "p", "c")]
    assert c.shown == 1 and c.follower is not None and c.follower.instance == 1
    assert not [a for a in k.calls if a[0] == "logs"]
    logs.stop()


def test_logs_restart_racing_the_follow_request_is_not_mislabelled(tmp_path):
    """Run 0 was seen running, but the kubelet restarted the container before `kubectl
    logs -f` reached it: the stream is run 1's. It is dropped unprinted, run 0 is fetched
    with --previous (proven by the next read), then run 1 followed: each once, in order."""
    k = FakeKubectl(answers={"--previous": Result([], 0, "run 0\n", "", 0)})
    fake_follow(tmp_path, k, "run 1\\n", block=True)
    out = io.StringIO()
    logs = PodLogs(k, "follow", Printer(out))
    poll(logs, [pod("p", statuses=[run_status(0)])])
    first = answered(logs)          # it answered with run 1's line, held
    poll(logs, [pod("p", statuses=[run_status(1)])])  # the read shows the restart
    assert out.getvalue() == "" and not first.alive()
    assert [a[-1] for a in k.calls if a[0] == "logs"] == ["--previous"]
    poll(logs, [pod("p", statuses=[run_status(1)])])  # --previous proven: run 0; follow 1
    assert out.getvalue() == "[default/p/c] run 0\n"
    answered(logs)
    poll(logs, [pod("p", statuses=[run_status(1)])])  # the new stream proven: run 1
    logs.stop()
    assert out.getvalue() == "[default/p/c] run 0\n[default/p/c] run 1\n"


def test_logs_first_restart_at_once_both_runs_fetched_none_gone(tmp_path, caplog):
    """Kubernetes restarts a crashed container at once the first time: the stream asked for
    run 0 got run 1, which ended too. Nothing is lost: the terminated current run and its
    lastState are both kept by the kubelet; run 0 (--previous) then run 1, each once."""
    k = FakeKubectl(answers={"--previous": Result([], 0, "first-try-fails\n", "", 0),
                             "logs": Result([], 0, "second-try-ok\n", "", 0)})
    fake_follow(tmp_path, k, "second-try-ok\\n", block=False)
    out = io.StringIO()
    logs = PodLogs(k, "follow", Printer(out))
    poll(logs, [pod("p", statuses=[run_status(0)])])
    answered(logs).thread.join(10)
    done = dict(terminated(0, "Completed", restarts=1),
                lastState={"terminated": {"exitCode": 3}})
    for _ in range(4):
        poll(logs, [pod("p", "Succeeded", [done])])
    assert out.getvalue() == "[default/p/c] first-try-fails\n[default/p/c] second-try-ok\n"
    assert [a[-1] for a in k.calls if a[0] == "logs"] == ["--previous", "c"]
    assert "gone" not in caplog.text


def test_logs_restart_racing_a_previous_fetch_refetches_and_says_what_is_gone(caplog):
    """--previous asked for run 0 but the read after it shows two restarts: its answer may
    be run 1's, so it is dropped; run 0 is gone (said so), run 1 fetched and proven."""
    k = FakeKubectl(answers={"--previous": Result([], 0, "a previous run\n", "", 0)})
    out = io.StringIO()
    logs = PodLogs(k, "end", Printer(out))
    logs.mark()
    logs.update([pod("p", statuses=[run_status(1)])], final=True)  # --previous at 1
    logs.mark()
    logs.update([pod("p", statuses=[run_status(2)])], final=True)  # not proven: again
    assert out.getvalue() == ""
    assert "the output of 1 earlier run(s) is gone" in caplog.text
    logs.mark()
    logs.update([pod("p", statuses=[run_status(2)])], final=True)  # proven: run 1
    assert out.getvalue() == "[default/p/c] a previous run\n"
    assert [a[-1] for a in k.calls if a[0] == "logs"] == ["--previous", "--previous", "c"]


def test_logs_a_removed_container_is_said_gone_not_printed(caplog):
    """Once a newer run ended too, the kubelet removes the older container and answers
    --previous with one in-band line, exit 0: said on stderr, never printed as output."""
    k = FakeKubectl(answers={"--previous": Result(
        [], 0, "unable to retrieve container logs for containerd://abc\n", "", 0),
        "logs": Result([], 0, "second-try-ok\n", "", 0)})
    out = io.StringIO()
    logs = PodLogs(k, "follow", Printer(out))
    done = dict(terminated(0, "Completed", restarts=1),
                lastState={"terminated": {"exitCode": 3}})
    for _ in range(3):
        poll(logs, [pod("p", "Succeeded", [done])])
    assert out.getvalue() == "[default/p/c] second-try-ok\n"
    assert "run 0: unable to retrieve container logs for containerd://abc" in caplog.text


def test_logs_new_pod_of_the_same_name_starts_over():
    """A StatefulSet's pod deleted and made again keeps its name; restartCount starts at 0
    again: a new uid is a new container record."""
    k = FakeKubectl(answers={"logs": Result([], 0, "x\n", "", 0)})
    out = io.StringIO()
    logs = PodLogs(k, "end", Printer(out))
    old = pod("p", "Succeeded", [terminated(0, "Completed")])
    logs.finish([old])
    new = pod("p", "Succeeded", [terminated(0, "Completed")])
    new["metadata"]["uid"] = "u-p-again"
    logs.finish([new])
    assert out.getvalue() == "[default/p/c] x\n[default/p/c] x\n"


# ------------------------------------------------------------------ before apply

def discovery(kinds: dict[str, bool]) -> Result:
    return Result([], 0, json.dumps({"resources": [{"name": k.lower() + "s", "kind": k,
                                                    "namespaced": v}
                                                   for k, v in kinds.items()]}), "", 0)


def manifests(tmp_path: Path, text: str):
    p = tmp_path / "m.yaml"
    p.write_text(text)
    return read_manifests([p])


def test_precheck_uses_discovery_and_namespaces(tmp_path):
    nf = Result([], 1, "", "Error from server (NotFound): the server could not find the "
                "requested resource", 0)
    k = FakeKubectl(answers={"/apis/batch/v1": discovery({"Job": True}),
                             "/apis/apiextensions.k8s.io/v1": discovery(
                                 {"CustomResourceDefinition": False}),
                             "/apis/example.com/v1": nf, "/api/v1": discovery(
                                 {"Namespace": False, "Pod": True})})
    k.states = [[{"metadata": {"name": "default"}}]]
    precheck.check(k, manifests(tmp_path, "apiVersion: batch/v1\nkind: Job\n"
                                "metadata: {name: j}\n"))
    with pytest.raises(KsiError, match="CustomResourceDefinition is missing"):
        precheck.check(k, manifests(tmp_path, "apiVersion: example.com/v1\nkind: W\n"
                                    "metadata: {name: w}\n"))
    with pytest.raises(KsiError, match="namespace 'ns2' does not exist"):
        precheck.check(k, manifests(tmp_path, "apiVersion: v1\nkind: Pod\n"
                                    "metadata: {name: p, namespace: ns2}\n"))
    # defined by the manifests themselves: fine
    precheck.check(k, manifests(tmp_path, """apiVersion: v1
kind: Namespace
metadata: {name: ns2}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ws.example.com}
spec: {group: example.com, names: {kind: W}, scope: Namespaced, versions: [{name: v1}]}
---
apiVersion: example.com/v1
kind: W
metadata: {name: w, namespace: ns2}
"""))
    assert precheck.api_line("I1 noise\nError from server (Forbidden): no\nmore") == \
        "Error from server (Forbidden): no"


def test_targets_follow_restart_policy(tmp_path):
    m = manifests(tmp_path, """apiVersion: v1
kind: Pod
metadata: {name: a}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec: {restartPolicy: OnFailure, containers: [{name: c, image: i}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: s, namespace: x}
spec: {selector: {matchLabels: {app: s}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
""")
    assert [(t.ref, t.batch, t.selector) for t in m.targets] == [
        ("pod default/a", False, {}), ("pod default/b", True, {}),
        ("statefulset x/s", False, {"app": "s"})]
    with pytest.raises(KsiError, match="without apiVersion and kind"):
        manifests(tmp_path, "kind: Pod\n")
