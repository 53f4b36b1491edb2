"""`ksi run manifest.yaml [...]` end to end against the emulator: Kubernetes' semantics
(retries, Job conditions, services), live logs, failures in one line (exit 92), bad input
refused before anything is applied, manifests before a script."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ksiemu.state import read_calls
from tests.conftest import NOTHING, leftovers, run_ksi

JOB = """apiVersion: batch/v1
kind: Job
metadata:
  name: hello
  namespace: {ns}
spec:
  template:
{ann}    spec:
      containers:
      - name: hello
        image: alpine
        command: ['echo', 'hello from the job']
      restartPolicy: Never
"""
POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
{ann}spec:
  containers:
  - name: main
    image: alpine
    command: ['echo', 'pod {name} says hi']
  restartPolicy: Never
"""
NS = """apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
"""
FLAKY = """apiVersion: batch/v1
kind: Job
metadata:
  name: flaky
spec:
  backoffLimit: {limit}
  template:
    metadata:
      annotations: {{ksi-emu/attempts: "{attempts}"}}
    spec:
      restartPolicy: {policy}
      initContainers:
      - {{name: setup, image: alpine, command: [echo, preparing]}}
      containers:
      - {{name: work, image: alpine, command: [echo, working]}}
"""
WEB = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - {name: nginx, image: nginx, command: [echo, serving]}
"""
WIDGET_CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions: [{name: v1, served: true, storage: true}]
"""


def ann(outcome: str) -> str:
    return f"  annotations:\n    ksi-emu/outcome: {outcome}\n" if outcome else ""


def attempts(value: str) -> str:
    return f"  annotations:\n    ksi-emu/attempts: '{value}'\n"


def tann(outcome: str) -> str:
    """Annotation on a Job's pod template (the emulator copies it to the pod)."""
    return f"    metadata:\n      annotations:\n        ksi-emu/outcome: {outcome}\n"


@pytest.fixture
def menv(emu_env):
    return dict(emu_env, KSI_POLL_INTERVAL="0.05", KSI_EMU_JOB_SECONDS="0.3")


def last_line(r: subprocess.CompletedProcess) -> str:
    return r.stderr.strip().splitlines()[-1]


def kubectl_calls(env: dict, sub: str) -> list[list[str]]:
    return [c["argv"] for c in read_calls(env["KSI_EMU_STATE"], "kubectl") if sub in c["argv"]]


def test_job_and_pod_complete_with_logs(menv, workdir):
    (workdir / "job.yaml").write_text(NS + JOB.format(ns="demo", ann=""))
    (workdir / "pod.yml").write_text(POD.format(name="p1", ann=""))
    r = run_ksi(["run", "job.yaml", "pod.yml"], menv, workdir)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "[default/p1/main] pod p1 says hi" in out
    assert [ln for ln in out if ln.startswith("[demo/hello-")] and \
        all(ln.endswith("] hello from the job") for ln in out if ln.startswith("[demo/hello-"))
    assert "job demo/hello complete" in r.stderr and "pod default/p1 succeeded" in r.stderr
    table = r.stderr[r.stderr.index("pods of the manifests:"):]
    assert "PHASE" in table and "RESTARTS" in table and "default/p1" in table
    assert leftovers(menv) == NOTHING


def run_gated(env: dict, workdir: Path, args: list[str], gates: list[tuple[str, str]],
              opened: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ksi with the KSI_EMU_GATES gates `opened` open; open each of `gates` once its
    stdout shows the marker before it (the emulated kubelet then goes on: the test orders
    the events, not the clock)."""
    gdir = workdir / "gates"
    gdir.mkdir()
    for gate in opened:
        (gdir / gate).touch()
    err, out = workdir / "stderr.txt", workdir / "stdout.txt"
    with open(err, "w") as fe, open(out, "w") as fo:
        proc = subprocess.Popen([sys.executable, "-m", "ksi", *args], cwd=workdir,
                                env=dict(env, KSI_EMU_GATES=str(gdir)), stdout=fo, stderr=fe)
    deadline = time.monotonic() + timeout
    for marker, gate in gates:
        while marker not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)  # polling for the marker (bounded), not synchronisation
        (gdir / gate).touch()
    proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    return subprocess.CompletedProcess(args, proc.returncode, out.read_text(), err.read_text())


def test_onfailure_job_crashing_twice_then_succeeding(menv, workdir):
    """Kubernetes restarts the container (backoffLimit 6): both crashes' output, then the
    success, streamed in order, each once; init container first; exit 0. Each restart
    waits (KSI_EMU_GATES) until KSI has shown the run before it."""
    (workdir / "job.yaml").write_text(FLAKY.format(limit=6, attempts="fail,fail,ok",
                                                   policy="OnFailure"))
    env = dict(menv, KSI_EMU_JOB_SECONDS="0.5", KSI_EMU_BACKOFF="0.2")
    r = run_gated(env, workdir, ["run", "job.yaml"],
                  [("run 0 of container work exited 1", "start-1"),
                   ("run 1 of container work exited 1", "start-2")],
                  opened=("init-end-0", "end-0", "end-1", "end-2"))
    assert r.returncode == 0, r.stderr
    lines = [ln.split("] ", 1)[1] for ln in r.stdout.splitlines() if ln.startswith("[default/")]
    assert lines == ["preparing", "working", "emulated run 0 of container work exited 1",
                     "working", "emulated run 1 of container work exited 1",
                     "working", "emulated run 2 of container work exited 0"], r.stdout
    assert "job default/flaky complete" in r.stderr and "gone" not in r.stderr
    row = [ln for ln in r.stderr.splitlines() if "job/flaky" in ln][-1].split()
    assert row[3:6] == ["Succeeded", "2", "0"]
    assert kubectl_calls(env, "-f") and leftovers(env) == NOTHING


def test_restarts_racing_slow_log_requests_never_mislabel_or_double(menv, workdir):
    """Every `kubectl logs` reaches the (emulated) kubelet 1.5 s late, after the restart
    that KSI's last status read did not show yet: what is printed is still each run once,
    in order, and each run not printed is said to be gone."""
    (workdir / "job.yaml").write_text(FLAKY.format(limit=6, attempts="fail,fail,fail,ok",
                                                   policy="OnFailure"))
    env = dict(menv, KSI_EMU_JOB_SECONDS="0.5", KSI_EMU_BACKOFF="0.5",
               KSI_EMU_DELAY="kubectl:logs=1.5")
    r = run_ksi(["run", "job.yaml"], env, workdir)
    assert r.returncode == 0, r.stderr
    work = [ln.split("] ", 1)[1] for ln in r.stdout.splitlines() if "/work] " in ln]
    ends = [int(ln.split()[2]) for ln in work if ln.startswith("emulated run ")]
    assert ends == sorted(set(ends)), r.stdout          # in order, each once
    assert work == [x for n in ends for x in ("working", f"emulated run {n} of container "
                                             f"work exited {0 if n == 3 else 1}")], r.stdout
    gone = sum(int(ln.split("the output of ")[1].split()[0])
               for ln in r.stderr.splitlines() if "earlier run(s) is gone" in ln)
    assert len(ends) + gone == 4, (r.stdout, r.stderr)


def test_backoff_limit_exhausted_fails_with_one_line(menv, workdir):
    (workdir / "job.yaml").write_text(FLAKY.format(limit=1, attempts="fail", policy="Never"))
    (workdir / "never.sh").write_text("touch ran\n")
    env = dict(menv, KSI_EMU_BACKOFF="0.3")
    r = run_ksi(["run", "job.yaml", "never.sh"], env, workdir)
    assert r.returncode == 92, r.stderr
    last = last_line(r)
    assert last.startswith("ksi: error: job default/flaky failed: BackoffLimitExceeded (Job has "
                           "reached the specified backoff limit): pod default/flaky-"), last
    assert " container work: Error exit 1 -- fix: " in last
    # two pods (the retry made by the Job controller), each one's logs
    pods = {ln.split("/")[1] for ln in r.stdout.splitlines() if ln.startswith("[default/flaky-")}
    assert len(pods) == 2, r.stdout
    assert not (workdir / "ran").exists()
    assert leftovers(env) == NOTHING


@pytest.mark.parametrize("doc,words", [
    (POD.format(name="np", ann=attempts("neverpull")),
     "pod default/np failed: pod default/np container main: ErrImageNeverPull (not started): "
     'Container image "alpine" is not present with pull policy of Never'),
    (POD.format(name="bad", ann=attempts("invalidimage")),
     "pod default/bad failed: pod default/bad container main: InvalidImageName"),
    (POD.format(name="crash", ann=ann("fail")),
     "pod default/crash failed: pod default/crash container main: Error exit 1"),
    (JOB.format(ns="default", ann=tann("fail")),
     "job default/hello failed: BackoffLimitExceeded (Job has reached the specified backoff "
     "limit): pod default/hello-"),
])
def test_fatal_states_name_object_pod_container_reason(menv, workdir, doc, words):
    (workdir / "m.yaml").write_text(doc)
    r = run_ksi(["run", "m.yaml"], menv, workdir)
    assert r.returncode == 92, r.stderr
    last = last_line(r)
    assert last.startswith("ksi: error: ") and words in last and " -- fix: " in last
    assert leftovers(menv) == NOTHING


def test_image_pull_failure_is_fatal_after_image_pull_timeout(menv, workdir):
    (workdir / "m.yaml").write_text(POD.format(name="pull", ann=attempts("pullfail")))
    r = run_ksi(["run", "m.yaml"], dict(menv, KSI_IMAGE_PULL_TIMEOUT="1.5"), workdir)
    assert r.returncode == 92, r.stderr
    assert "container main: ImagePullBackOff (not started)" in last_line(r)
    assert "image_pull_timeout" in last_line(r)
    # retried, not fatal at once: more than one status poll happened first
    assert len(kubectl_calls(menv, "pods")) > 3


def serve_until(env: dict, workdir, args: list[str], marker: str, out_marker: str,
                count: int, timeout: float = 90) -> subprocess.CompletedProcess:
    """Run ksi; SIGTERM it once stderr shows marker and stdout out_marker count times."""
    err, out = workdir / "stderr.txt", workdir / "stdout.txt"
    with open(err, "w") as fe, open(out, "w") as fo:
        proc = subprocess.Popen([sys.executable, "-m", "ksi", *args], env=env, cwd=workdir,
                                stdout=fo, stderr=fe, text=True)
    deadline = time.monotonic() + timeout
    while marker not in err.read_text() or out.read_text().count(out_marker) < count:
        assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
        time.sleep(0.1)  # polling for the markers (bounded), not synchronisation by sleep
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    return subprocess.CompletedProcess(args, proc.returncode, out.read_text(), err.read_text())


def test_service_only_serves_until_sigterm_then_exit_0(menv, workdir):
    (workdir / "web.yaml").write_text(WEB)
    r = serve_until(menv, workdir, ["run", "web.yaml"], "serving until scancel", "] serving", 2)
    assert r.returncode == 0, r.stderr
    assert "deployment default/web ready" in r.stderr
    assert "served until SIGTERM" in r.stderr and "interrupted" not in r.stderr
    pods = {ln.split("]")[0] for ln in r.stdout.splitlines() if ln.startswith("[default/web-")}
    assert len(pods) == 2 and all(p.endswith("/nginx") for p in pods), r.stdout
    assert r.stderr.count("default/web-") >= 2  # the table
    assert leftovers(menv) == NOTHING


def test_service_and_batch_end_with_the_batch(menv, workdir):
    (workdir / "web.yaml").write_text(WEB)
    (workdir / "job.yaml").write_text(JOB.format(ns="default", ann=""))
    r = run_ksi(["run", "web.yaml", "job.yaml"], dict(menv, KSI_EMU_JOB_SECONDS="1"), workdir)
    assert r.returncode == 0, r.stderr
    assert "deployment default/web ready" in r.stderr
    assert "job default/hello complete" in r.stderr
    assert any(ln.endswith("] hello from the job") for ln in r.stdout.splitlines())
    assert leftovers(menv) == NOTHING


@pytest.mark.parametrize("doc,words", [
    ("apiVersion: batch/v1\nkind: Jobb\nmetadata: {name: x}\n",
     "manifest m.yaml: the cluster does not serve kind Jobb in batch/v1"),
    ("apiVersion: batch/v9\nkind: Job\nmetadata: {name: x}\n",
     "manifest m.yaml: the cluster does not serve apiVersion batch/v9"),
    ("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
     "manifest m.yaml: kind Widget (example.com/v1) is not known to the cluster: its "
     "CustomResourceDefinition is missing"),
    (JOB.format(ns="missing-ns", ann=""),
     "manifest m.yaml: namespace 'missing-ns' does not exist"),
])
def test_bad_input_refused_before_apply(menv, workdir, doc, words):
    (workdir / "m.yaml").write_text(doc)
    r = run_ksi(["run", "m.yaml"], menv, workdir)
    assert r.returncode == 92, r.stderr
    assert words in last_line(r), last_line(r)
    assert not [c for c in kubectl_calls(menv, "apply") if "m.yaml" in c]
    assert leftovers(menv) == NOTHING


def test_namespace_and_crd_defined_in_the_manifests_are_accepted(menv, workdir):
    (workdir / "crd.yaml").write_text(WIDGET_CRD)
    (workdir / "m.yaml").write_text(NS + "apiVersion: example.com/v1\nkind: Widget\n"
                                    "metadata: {name: w, namespace: demo}\n")
    r = run_ksi(["run", "crd.yaml", "m.yaml"], menv, workdir)
    assert r.returncode == 0, r.stderr
    assert "widget.example.com/w created" in r.stderr


def test_api_error_is_one_line(menv, workdir):
    """What only the API server knows comes from `kubectl apply`, in one line."""
    (workdir / "m.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: ''}\n")
    r = run_ksi(["run", "m.yaml"], menv, workdir)
    assert r.returncode == 92, r.stderr
    assert "kubectl apply -f m.yaml failed: error: resource name may not be empty" \
        in last_line(r)


@pytest.mark.parametrize("mode", ["end", "none"])
def test_logs_end_and_none(menv, workdir, mode):
    (workdir / "job.yaml").write_text(JOB.format(ns="default", ann=""))
    r = run_ksi(["run", "--logs", mode, "job.yaml"], menv, workdir)
    assert r.returncode == 0, r.stderr
    assert not [c for c in kubectl_calls(menv, "logs") if "-f" in c]  # nothing followed
    shown = [ln for ln in r.stdout.splitlines() if ln.endswith("] hello from the job")]
    assert len(shown) == (1 if mode == "end" else 0), r.stdout
    assert "pods of the manifests:" in r.stderr


def test_manifests_then_script(menv, workdir):
    (workdir / "pod.yaml").write_text(POD.format(name="first", ann=""))
    (workdir / "after.sh").write_text(
        'kubectl --context "$K8S_CLUSTER_NAME" get pod first -o name; exit 4\n')
    r = run_ksi(["run", "pod.yaml", "after.sh"], menv, workdir)
    assert r.returncode == 4, r.stderr
    assert r.stdout.index("pod first says hi") < r.stdout.index("pod/first")
    assert leftovers(menv) == NOTHING


def test_scancel_stops_the_log_streams_and_tears_down_quickly(menv, workdir):
    """A batch run cancelled while its logs are followed: 143, the `kubectl logs -f`
    streams gone, teardown well within KillWait, nothing left."""
    (workdir / "job.yaml").write_text(FLAKY.format(limit=6, attempts="ok", policy="Never"))
    env = dict(menv, KSI_EMU_JOB_SECONDS="600")
    t0 = time.monotonic()
    r = serve_until(env, workdir, ["run", "job.yaml"], "waiting for job", "] preparing", 1)
    stopped = time.monotonic() - t0
    assert r.returncode == 143, r.stderr
    assert "phase teardown: ok" in r.stderr
    assert "] preparing" in r.stdout  # it was following the init container
    assert not processes_naming(env["KSI_STATE_DIR"])  # no `kubectl logs -f` outlives ksi
    assert stopped < 60 and leftovers(env) == NOTHING


def processes_naming(text: str) -> list[str]:
    found = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd:
            found.append(cmd)
    return found
