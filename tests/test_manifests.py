"""`ksi run manifest.yaml [...]`: apply, wait for Jobs/Pods, logs, failures with the pod's
reason (exit 92), manifests before a script."""

from __future__ import annotations

import pytest
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


def ann(outcome: str) -> str:
    return f"  annotations:\n    ksi-emu/outcome: {outcome}\n" if outcome else ""


def tann(outcome: str) -> str:
    """Annotation on a Job's pod template (the emulator copies it to the pod)."""
    return f"    metadata:\n      annotations:\n        ksi-emu/outcome: {outcome}\n"


@pytest.fixture
def menv(emu_env):
    return dict(emu_env, KSI_POLL_INTERVAL="0.05", KSI_EMU_JOB_SECONDS="0.3")


def test_job_and_pod_complete_with_logs(menv, workdir):
    (workdir / "job.yaml").write_text(NS + JOB.format(ns="demo", ann=""))
    (workdir / "pod.yml").write_text(POD.format(name="p1", ann=""))
    r = run_ksi(["run", "job.yaml", "pod.yml"], menv, workdir)
    assert r.returncode == 0, r.stderr
    assert "hello from the job" in r.stdout and "pod p1 says hi" in r.stdout
    assert "job demo/hello complete" in r.stderr and "pod default/p1 succeeded" in r.stderr
    assert leftovers(menv) == NOTHING


def test_manifests_then_script(menv, workdir):
    (workdir / "pod.yaml").write_text(POD.format(name="first", ann=""))
    (workdir / "after.sh").write_text(
        'kubectl --context "$K8S_CLUSTER_NAME" get pod first -o name; exit 4\n')
    r = run_ksi(["run", "pod.yaml", "after.sh"], menv, workdir)
    assert r.returncode == 4, r.stderr
    assert r.stdout.index("pod first says hi") < r.stdout.index("pod/first")
    assert leftovers(menv) == NOTHING


@pytest.mark.parametrize("doc,words", [
    (POD.format(name="bad", ann=ann("imagepull")), "pod default/bad failed: ErrImagePull"),
    (POD.format(name="crash", ann=ann("fail")),
     "pod default/crash failed: container main Error (exit 1)"),
    (JOB.format(ns="default", ann=tann("fail")),
     "job default/hello failed: BackoffLimitExceeded: Job has reached the specified backoff "
     "limit; pod hello-"),
    (JOB.format(ns="default", ann=tann("imagepull")),
     "job default/hello failed: pod hello-"),
])
def test_failures_name_the_reason(menv, workdir, doc, words):
    (workdir / "m.yaml").write_text(doc)
    (workdir / "never.sh").write_text("touch ran\n")
    r = run_ksi(["run", "m.yaml", "never.sh"], menv, workdir)
    assert r.returncode == 92, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ksi: error: ") and words in last and " -- fix: " in last
    assert not (workdir / "ran").exists()  # the script does not run after a failure
    assert leftovers(menv) == NOTHING


def test_apply_error_is_reported(menv, workdir):
    (workdir / "m.yaml").write_text(JOB.format(ns="missing-ns", ann=""))
    r = run_ksi(["run", "m.yaml"], menv, workdir)
    assert r.returncode == 92
    last = r.stderr.strip().splitlines()[-1]
    assert "kubectl apply -f" in last and 'namespaces "missing-ns" not found' in last
    assert leftovers(menv) == NOTHING
