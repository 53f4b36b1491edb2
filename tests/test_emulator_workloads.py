"""The emulator's modelled pods (tests/emulator/lib/ksiemu/workloads.py) against what the
kubelet and the Job controller do: restarts, back-off, Job retries and backoffLimit, init
containers, `kubectl logs -f/--previous`, Deployments' pods, discovery, unknown kinds."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from tests.test_emulator import Emu
from tests.test_manifests import WIDGET_CRD

FLAKY = """apiVersion: batch/v1
kind: Job
metadata: {{name: flaky}}
spec:
  backoffLimit: {limit}
  template:
    metadata: {{annotations: {{ksi-emu/attempts: "{attempts}"}}}}
    spec:
      restartPolicy: {policy}
      initContainers: [{{name: setup, image: alpine, command: [echo, preparing]}}]
      containers: [{{name: work, image: alpine, command: [echo, working]}}]
"""


@pytest.fixture
def k8s(tmp_path):
    e = Emu(tmp_path)
    r = e.create("k", None, None, KSI_EMU_READY_AFTER="0")
    assert r.returncode == 0, r.stderr
    e.env.update(KUBECONFIG=str(e.tmp / "k.kubeconfig"), KSI_EMU_JOB_SECONDS="0.4",
                 KSI_EMU_BACKOFF="0.4")
    return e


def get(e: Emu, *what: str) -> dict:
    r = e.run("kubectl", "get", *what, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_for(pred, timeout: float = 30.0):
    """Poll the emulator (bounded) until pred() returns a true value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def job_at(e: Emu, condition: str) -> dict:
    """The Job flaky once it has the condition (polled, bounded), else {}."""
    return wait_for(lambda: condition in [c["type"] for c in get(e, "job", "flaky")["status"]
                                          .get("conditions", [])] and get(e, "job", "flaky"))


def open_gate(e: Emu, name: str) -> None:
    """KSI_EMU_GATES: the instance waiting for `name` may now end/start."""
    (e.tmp / "gates" / name).touch()


def test_onfailure_job_restarts_in_one_pod_then_completes(k8s):
    """Each step held by a gate (KSI_EMU_GATES), so every state is looked at while it
    lasts, however slow the machine."""
    e = k8s
    (e.tmp / "gates").mkdir()
    e.env.update(KSI_EMU_GATES=str(e.tmp / "gates"))
    r = e.run("kubectl", "apply", "-f", "-",
              input=FLAKY.format(limit=6, attempts="fail,fail,ok", policy="OnFailure"))
    assert r.returncode == 0, r.stderr
    pods = get(e, "pods", "-l", "job-name=flaky")["items"]
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Pending"  # init container
    assert pods[0]["status"]["initContainerStatuses"][0]["state"].get("running") is not None
    name = pods[0]["metadata"]["name"]
    r = e.run("kubectl", "logs", name, "-c", "work")
    assert 'is waiting to start: PodInitializing' in r.stderr
    open_gate(e, "init-end-0")
    wait_for(lambda: "running" in get(e, "pod", name)["status"]["containerStatuses"][0]["state"])
    open_gate(e, "end-0")
    seen = wait_for(lambda: [cs for cs in get(e, "pod", name)["status"]["containerStatuses"]
                             if "waiting" in cs["state"] and cs["restartCount"] == 0
                             and cs["lastState"]])
    assert seen and seen[0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert seen[0]["lastState"]["terminated"]["exitCode"] == 1
    assert get(e, "pod", name)["status"]["phase"] == "Running"  # getPhase: restarting
    assert e.run("kubectl", "logs", name, "-c", "work").stdout == \
        "working\nemulated run 0 of container work exited 1\n"  # back-off: lastState
    open_gate(e, "start-1")
    cs = wait_for(lambda: [cs for cs in get(e, "pod", name)["status"]["containerStatuses"]
                           if "running" in cs["state"]])
    assert cs and cs[0]["restartCount"] == 1 and cs[0]["lastState"]["terminated"]
    r = e.run("kubectl", "logs", "-p", name, "-c", "work")
    assert r.stdout == "working\nemulated run 0 of container work exited 1\n", r.stderr
    for gate in ("end-1", "start-2", "end-2"):
        open_gate(e, gate)
    job = wait_for(lambda: "Complete" in [c["type"] for c in get(e, "job", "flaky")["status"]
                                          .get("conditions", [])] and get(e, "job", "flaky"))
    assert job and job["status"]["succeeded"] == 1
    cs = get(e, "pod", name)["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 2 and cs["state"]["terminated"]["exitCode"] == 0
    assert e.run("kubectl", "logs", "-p", name, "-c", "work").stdout == \
        "working\nemulated run 1 of container work exited 1\n"
    assert e.run("kubectl", "logs", name, "-c", "setup").stdout == "preparing\n"


def test_never_job_retries_pods_until_backoff_limit(k8s):
    e = k8s
    e.run("kubectl", "apply", "-f", "-", input=FLAKY.format(limit=1, attempts="fail",
                                                           policy="Never"))
    job = job_at(e, "Failed")
    assert job, get(e, "job", "flaky")
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert job["status"]["failed"] == 2  # failed > backoffLimit
    pods = get(e, "pods", "-l", "job-name=flaky")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    assert len({p["metadata"]["name"] for p in pods}) == 2


def test_onfailure_backoff_limit_counts_restarts_and_deletes_the_pod(k8s):
    e = k8s
    e.run("kubectl", "apply", "-f", "-", input=FLAKY.format(limit=1, attempts="fail",
                                                           policy="OnFailure"))
    job = job_at(e, "Failed")
    assert job
    assert get(e, "pods", "-l", "job-name=flaky")["items"] == []


def test_logs_follow_ends_with_the_instance(k8s):
    e = k8s
    (e.tmp / "gates").mkdir()
    e.env["KSI_EMU_GATES"] = str(e.tmp / "gates")
    e.run("kubectl", "apply", "-f", "-", input="""apiVersion: v1
kind: Pod
metadata: {name: p, annotations: {ksi-emu/attempts: ok}}
spec:
  restartPolicy: Never
  containers: [{name: main, image: alpine, command: [echo, hi]}]
""")
    follow = subprocess.Popen(["kubectl", "logs", "-f", "p", "-c", "main"], env=e.env,
                              cwd=str(e.tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    assert follow.stdout.readline() == "hi\n"
    assert follow.poll() is None  # it follows the running instance ...
    open_gate(e, "end-0")
    out, err = follow.communicate(timeout=60)  # ... to its end
    assert follow.returncode == 0 and out == "emulated run 0 of container main exited 0\n", err
    r = e.run("kubectl", "logs", "-p", "p")
    assert r.returncode == 1 and r.stderr.strip() == (
        'Error from server (BadRequest): previous terminated container "main" in pod "p" '
        "not found")


@pytest.mark.parametrize("outcome,reason,logs_msg", [
    ("neverpull", "ErrImageNeverPull", "ErrImageNeverPull"),
    ("pullfail", "ErrImagePull", "image can't be pulled"),
    ("configerror", "CreateContainerConfigError", "CreateContainerConfigError"),
])
def test_waiting_reasons(k8s, outcome, reason, logs_msg):
    e = k8s
    e.env["KSI_EMU_JOB_SECONDS"] = "30"
    e.run("kubectl", "apply", "-f", "-", input=f"""apiVersion: v1
kind: Pod
metadata: {{name: w, annotations: {{ksi-emu/attempts: {outcome}}}}}
spec:
  restartPolicy: Never
  containers: [{{name: main, image: "alpine:1"}}]
""")
    st = get(e, "pod", "w")["status"]
    assert st["phase"] == "Pending"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == reason
    r = e.run("kubectl", "logs", "w")
    assert r.stderr.strip() == ('Error from server (BadRequest): container "main" in pod "w" '
                                f"is waiting to start: {logs_msg}")


def test_deployment_pods_and_status(k8s):
    e = k8s
    e.run("kubectl", "apply", "-f", "-", input="""apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: nginx, image: nginx}]}
""")
    pods = get(e, "pods", "-l", "app=web")["items"]
    assert len(pods) == 2 and all("pod-template-hash" in p["metadata"]["labels"] for p in pods)
    st = get(e, "deployment", "web")["status"]
    assert st["observedGeneration"] == 1 and st["availableReplicas"] == 2


def test_discovery_and_unknown_kinds(k8s):
    e = k8s
    doc = json.loads(e.run("kubectl", "get", "--raw", "/apis/batch/v1").stdout)
    assert {"name": "jobs", "singularName": "job", "namespaced": True, "kind": "Job"} in \
        doc["resources"]
    r = e.run("kubectl", "get", "--raw", "/apis/example.com/v1")
    assert r.returncode == 1 and r.stderr.strip() == (
        "Error from server (NotFound): the server could not find the requested resource")
    r = e.run("kubectl", "apply", "-f", "-",
              input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    assert r.returncode == 1 and r.stderr.splitlines() == [
        'error: resource mapping not found for name: "w" namespace: "" from "STDIN": no matches '
        'for kind "Widget" in version "example.com/v1"', "ensure CRDs are installed first"]
    e.run("kubectl", "apply", "-f", "-", input=WIDGET_CRD)
    doc = json.loads(e.run("kubectl", "get", "--raw", "/apis/example.com/v1").stdout)
    assert doc["resources"][0]["kind"] == "Widget"
    r = e.run("kubectl", "apply", "-f", "-",
              input="apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    assert r.stdout.strip() == "widget.example.com/w created", r.stderr
