"""`ksi gc`, `ksi ls` and the quick pass of `ksi run`, through the emulator: a `kill -9`ed run
is recoverable, running runs are never touched, orphan containers are judged by squeue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import NOTHING, leftovers, run_ksi

BLOCKING = """echo "$$" > "$PWD/marker.tmp" && mv "$PWD/marker.tmp" "$PWD/marker"
read -r _ < "$PWD/release"
"""


def wait_file(path: Path, timeout: float = 30) -> str:
    """Poll for a file the workload writes (the run reached its workload)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text().strip()
        time.sleep(0.02)
    raise TimeoutError(f"{path} did not appear")


class BlockedRun:
    """A `ksi run` whose workload blocks on a fifo the test controls."""

    def __init__(self, env: dict[str, str], workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        (workdir / "w.sh").write_text(BLOCKING)
        os.mkfifo(workdir / "release")
        self.proc = subprocess.Popen([sys.executable, "-m", "ksi", "run", *extra, "w.sh"],
                                     env=env, cwd=str(workdir), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        try:
            self.workload_pid = int(wait_file(workdir / "marker"))
        except TimeoutError:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"workload never started: {err}") from None

    def release(self) -> subprocess.CompletedProcess:
        with open(self.workdir / "release", "w") as fh:
            fh.write("go\n")
        out, err = self.proc.communicate(timeout=60)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        os.kill(self.workload_pid, signal.SIGKILL)


def ls_json(env, workdir, *args):
    r = run_ksi(["ls", "--json", *args], env, workdir)
    assert r.returncode == 0, r.stderr
    return {i["cluster"]: i for i in json.loads(r.stdout)}


def test_gc_after_kill9_leaves_nothing(emu_env, workdir):
    run = BlockedRun(emu_env, workdir)
    items = ls_json(emu_env, workdir)
    assert [i["status"] for i in items.values()] == ["running"]
    (name, item), = items.items()
    assert item["job"] == "local" and item["ports"]["k8s"] and item["containers"]
    # a running run is kept, even by gc
    r = run_ksi(["gc"], emu_env, workdir)
    assert r.returncode == 0 and f"kept {name}" in r.stdout
    run.kill9()
    assert leftovers(emu_env)["containers"]  # the kill left the cluster behind
    assert ls_json(emu_env, workdir)[name]["status"] == "gone"
    dry = run_ksi(["gc", "--dry-run"], emu_env, workdir)
    assert f"would remove {name}" in dry.stdout
    assert leftovers(emu_env)["containers"]
    r = run_ksi(["gc"], emu_env, workdir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"removed {name}" in r.stdout
    assert leftovers(emu_env) == NOTHING
    assert list(Path(emu_env["KSI_LOCK_DIR"]).glob("port-*.lock")) == []  # stale files too
    assert ls_json(emu_env, workdir) == {}


def test_quick_pass_on_start_removes_a_killed_run(emu_env, workdir):
    run = BlockedRun(emu_env, workdir)
    run.kill9()
    (workdir / "ok.sh").write_text("exit 0\n")
    env = dict(emu_env, KSI_GC_ON_START="true")
    r = run_ksi(["run", "ok.sh"], env, workdir)
    assert r.returncode == 0, r.stderr
    assert "gc removed 1 leftover(s): ksi-local-" in r.stderr
    assert leftovers(emu_env) == NOTHING


FAKE_SQUEUE = """#!/bin/bash
# fake squeue: jobs listed in $FAKE_SQUEUE_ALIVE are RUNNING, others unknown
fmt=""; jobs=""
while [ $# -gt 0 ]; do case "$1" in -o) fmt=$2; shift;; -j) jobs=$2; shift;; esac; shift; done
[ "$fmt" = "%L" ] && { echo UNLIMITED; exit 0; }
found=0
for j in ${jobs//,/ }; do
  if grep -qx "$j" "$FAKE_SQUEUE_ALIVE" 2>/dev/null; then echo "$j RUNNING"; found=1; fi
done
[ $found = 1 ] || { echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; }
"""


@pytest.fixture
def slurm_env(emu_env, tmp_path):
    b = tmp_path / "fakebin"
    b.mkdir()
    (b / "squeue").write_text(FAKE_SQUEUE)
    (b / "squeue").chmod(0o755)
    alive = tmp_path / "alive"
    alive.write_text("4242\n")
    env = dict(emu_env, PATH=f"{b}{os.pathsep}{emu_env['PATH']}", FAKE_SQUEUE_ALIVE=str(alive),
               SLURM_JOB_ID="4242", SLURM_STEP_ID="0", SLURM_PROCID="0", SLURM_NODEID="0",
               SLURM_LOCALID="0", SLURM_NNODES="1", SLURM_JOB_NODELIST="n1")
    return env, alive


def test_gc_orphan_container_judged_by_squeue(slurm_env, workdir):
    env, alive = slurm_env
    run = BlockedRun(env, workdir)
    run.kill9()
    # lose the record: only the node container remains, its name carries job 4242
    import shutil

    for d in Path(env["KSI_STATE_DIR"]).iterdir():
        shutil.rmtree(d)
    outside = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    items = ls_json(outside, workdir)
    (name, item), = items.items()
    assert name.startswith("ksi-4242-0-0-") and item["job_state"] == "RUNNING"
    r = run_ksi(["gc"], outside, workdir)
    assert f"kept {name} (job 4242: job 4242 RUNNING)" in r.stdout
    assert leftovers(env)["containers"]
    alive.write_text("")
    r = run_ksi(["gc", "--job", "999"], outside, workdir)
    assert "nothing to clean up for job 999" in r.stdout
    assert leftovers(env)["containers"]
    r = run_ksi(["gc", "--job", "4242", "--json"], outside, workdir)
    acts = json.loads(r.stdout)["actions"]
    assert [a["cluster"] for a in acts if not a["kept"]] == [name]
    assert leftovers(env) == NOTHING


def test_gc_user_must_be_you(emu_env, workdir):
    r = run_ksi(["gc", "--user", "no-such-user-x"], emu_env, workdir)
    assert r.returncode == 64
    assert "runuser -u no-such-user-x -- ksi gc" in r.stderr


def test_ls_all_nodes_through_the_registry(emu_env, workdir, tmp_path):
    reg = tmp_path / "registry"
    env = dict(emu_env, KSI_REGISTRY_DIR=str(reg))
    r = run_ksi(["ls", "--all-nodes"], emu_env, workdir)
    assert r.returncode == 64 and "set registry_dir" in r.stderr
    run = BlockedRun(env, workdir)
    (entry,) = reg.glob("*.json")
    rec = json.loads(entry.read_text())
    assert "token" not in json.dumps(rec).lower()
    rec.update(cluster="ksi-777-0-0-abcd", host="othernode", pid=1)
    (reg / "ksi-777-0-0-abcd.json").write_text(json.dumps(rec))
    items = ls_json(env, workdir, "--all-nodes")
    assert items["ksi-777-0-0-abcd"]["node"] == "othernode"
    assert items[entry.stem]["status"] == "running"
    table = run_ksi(["ls", "--all-nodes"], env, workdir).stdout
    assert table.splitlines()[0].split()[:2] == ["CLUSTER", "JOB"]
    assert "othernode" in table
    assert run.release().returncode == 0
    assert not entry.exists()  # teardown unregisters
    assert leftovers(env) == NOTHING
