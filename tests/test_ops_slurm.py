"""Operating KSI on the real Slurm test bed (tests/slurm) with the tool emulator: the epilog
cleans a killed run's leftovers (and nothing of a running job or of another user), a
scancel'd job leaves nothing, `ksi submit`'s batch shell forwards TERM to the ksi step.

The bed's slurm.conf is shared by every test, so the epilog is not configured there: the
test invokes contrib/slurm/ksi-epilog.sh the way slurmd does — as root, inside the node's
namespaces (nsenter into that node's slurmd), after the job ended, with SLURM_JOB_ID,
SLURM_JOB_USER, SLURM_JOB_UID and SLURMD_NODENAME set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import EMU_BIN, ROOT, clean_environ, emu_containers, held_ports

pytestmark = pytest.mark.slurm

EPILOG = ROOT / "contrib" / "slurm" / "ksi-epilog.sh"
BLOCK = """echo "$$ $(hostname)" > "$PWD/marker-$SLURM_JOB_ID-$(hostname).tmp"
mv "$PWD/marker-$SLURM_JOB_ID-$(hostname).tmp" "$PWD/marker-$SLURM_JOB_ID-$(hostname)"
while [ ! -e "$PWD/release" ]; do sleep 0.1; done
"""


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


class Ops:
    def __init__(self, bed, name: str) -> None:
        self.bed = bed
        self.base = bed.shared_dir(name)
        for d in ("emu", "work", "state", "locks"):
            (self.base / d).mkdir()
        (self.base / "emu").chmod(0o1777)
        self.work = self.base / "work"
        (self.work / "w.sh").write_text(BLOCK)
        env = clean_environ()
        env.update({
            "PATH": f"{EMU_BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT / "src"),
            "KSI_EMU_STATE": str(self.base / "emu"),
            "KSI_STATE_DIR": str(self.base / "state"),
            "KSI_LOCK_DIR": str(self.base / "locks"),
            "KSI_SITE_CONFIG": str(self.base / "none.toml"),
            "KSI_USER_CONFIG": str(self.base / "none.toml"),
            "KSI_GC_ON_START": "false", "KSI_EMU_READY_AFTER": "0",
        })
        self.env = env

    def sbatch_run(self, nodelist: str) -> str:
        script = f"#!/bin/bash\nexec {sys.executable} -m ksi run w.sh\n"
        return self.bed.sbatch(script, cwd=self.work, env=self.env,
                               extra_args=["-w", nodelist, "-o", "job-%j.out"])

    def marker(self, job: str, node: str, timeout: float = 60) -> int:
        p = self.work / f"marker-{job}-{node}"

        def seen():
            if p.exists():
                return p
            st = self.bed.job_state(job)
            if st not in (None, "PENDING", "RUNNING", "CONFIGURING"):
                out = "".join(f.read_text() for f in self.work.glob(f"job-{job}*.out"))
                raise AssertionError(f"job {job} ended ({st}) before its workload ran:\n{out}")
            return None

        wait_for(seen, timeout, f"workload of job {job} on {node}")
        return int(p.read_text().split()[0])

    def records(self) -> dict[str, dict]:
        out = {}
        for p in (self.base / "state").glob("*/run.json"):
            rec = json.loads(p.read_text())
            out[rec["cluster"]] = rec
        return out

    def containers(self) -> list[str]:
        return sorted(c.get("name", "?") for c in emu_containers(self.env))

    def epilog(self, node: str, job: str, user: str = "root") -> subprocess.CompletedProcess:
        """Run the epilog as slurmd would: root, in the node's namespaces, job variables set."""
        pid = (self.bed.state / "run" / f"slurmd-{node}.pid").read_text().strip()
        envfile = self.base / "epilog.env"
        envfile.write_text("".join(f"{k}={self.env[k]}\n" for k in (
            "PATH", "PYTHONPATH", "KSI_EMU_STATE", "KSI_STATE_DIR", "KSI_LOCK_DIR",
            "KSI_SITE_CONFIG", "KSI_USER_CONFIG")))
        log = self.base / "epilog.log"
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_JOB_ID": job,
               "SLURM_JOB_USER": user, "SLURM_JOB_UID": str(0 if user == "root" else 1500),
               "SLURMD_NODENAME": node, "SLURM_CONF": str(self.bed.conf),
               "KSI_EPILOG_KSI": f"{sys.executable} -m ksi", "KSI_EPILOG_ENV": str(envfile),
               "KSI_EPILOG_LOG": str(log)}
        r = subprocess.run(["nsenter", "-t", pid, "-u", "-n", "-m", "--", "bash", str(EPILOG)],
                           env=env, capture_output=True, text=True, timeout=120)
        r.stdout += log.read_text() if log.exists() else ""
        return r


def test_epilog_cleans_a_killed_run_only(slurm_testbed):
    ops = Ops(slurm_testbed, "epilog")
    victim = ops.sbatch_run("node1")
    keeper = ops.sbatch_run("node1")
    wl_victim = ops.marker(victim, "node1")
    ops.marker(keeper, "node1")
    recs = ops.records()
    by_job = {r["job"]["job_id"]: r for r in recs.values()}
    assert set(by_job) == {victim, keeper} and by_job[victim]["host"] == "node1"
    # another user's leftovers on the same node: a kind node container of ksitest's runtime
    other = f"ksi-{victim}-0-0-beef"
    subprocess.run(["runuser", "-u", "ksitest", "--", "env", f"PATH={EMU_BIN}:/usr/bin:/bin",
                    f"KSI_EMU_STATE={ops.env['KSI_EMU_STATE']}", "KSI_EMU_HOSTNAME=node1",
                    "nerdctl", "run", "-d", "--name", f"{other}-control-plane", "--label",
                    f"io.x-k8s.kind.cluster={other}", "kindest/node:v1.34.0"],
                   check=True, capture_output=True, timeout=60)
    before = ops.containers()
    assert f"{other}-control-plane" in before and len(before) == 3
    # kill -9 the victim's ksi and workload: its batch script ends, the job ends
    os.kill(int(by_job[victim]["pid"]), signal.SIGKILL)
    os.kill(wl_victim, signal.SIGKILL)
    slurm_testbed.wait_gone(victim, timeout=60)
    assert len(ops.containers()) == 3  # the kill left the cluster behind
    r = ops.epilog("node1", victim)
    assert r.returncode == 0, r.stderr
    assert f"job {victim} user root: ksi gc exit 0" in r.stdout, r.stdout + r.stderr
    assert f"removed {by_job[victim]['cluster']}" in r.stdout
    left = ops.containers()
    assert f"{by_job[victim]['cluster']}-control-plane" not in left
    assert f"{by_job[keeper]['cluster']}-control-plane" in left  # running job untouched
    assert f"{other}-control-plane" in left  # another user's untouched
    assert set(ops.records()) == {by_job[keeper]["cluster"]}
    # the epilog of the running job (as if called early) keeps it: its ksi still runs
    r = ops.epilog("node1", keeper)
    assert f"kept {by_job[keeper]['cluster']}" in r.stdout
    (ops.work / "release").write_text("")
    assert slurm_testbed.wait_gone(keeper, timeout=60) == "COMPLETED"
    assert ops.containers() == [f"{other}-control-plane"]
    assert ops.records() == {} and held_ports(ops.env) == []


def test_scancel_and_submit_forwarding_leave_nothing(slurm_testbed):
    ops = Ops(slurm_testbed, "submit")
    # 1 node: `ksi submit` execs ksi in the batch shell; plain scancel
    r = slurm_testbed.run([sys.executable, "-m", "ksi", "submit", "-w", "node2", "-o",
                           "job-%j.out", "w.sh"], env=ops.env, cwd=ops.work)
    assert r.returncode == 0, r.stderr
    one = r.stdout.strip()
    assert one.isdigit()
    # 2 nodes: srun step; TERM to the batch shell only (what --signal=B:TERM@m does) must
    # be forwarded to the ksi step by the script
    r = slurm_testbed.run([sys.executable, "-m", "ksi", "submit", "--each", "-N", "2", "-w",
                           "node2,node3", "-o", "job-%j.out", "w.sh"], env=ops.env, cwd=ops.work)
    assert r.returncode == 0, r.stderr
    two = r.stdout.strip()
    ops.marker(one, "node2")
    ops.marker(two, "node2")
    ops.marker(two, "node3")
    assert len(ops.containers()) == 3
    slurm_testbed.scancel(one)
    slurm_testbed.scancel(two, signal="TERM", extra_args=["--batch"])
    slurm_testbed.wait_gone(one, timeout=60)
    slurm_testbed.wait_gone(two, timeout=60)
    out_two = (ops.work / f"job-{two}.out").read_text()
    assert "forwarding it to the ksi step" in out_two
    assert "interrupted by SIGTERM" in out_two
    assert ops.containers() == [] and ops.records() == {}
    assert held_ports(ops.env) == []


def test_gc_all_users_cleans_each_users_dead_runs(slurm_testbed):
    """Root's `ksi gc --all-users` finds every user's KSI state on the node (here ksitest's
    default /tmp/ksi-1500) and runs the gc as that user (runuser: a rootless runtime is only
    reachable as its user): a kill -9'ed run of ksitest is removed, nothing of it is left."""
    import pwd
    import shutil

    from tests.slurm.ksienv import SYSTEM_PYTHON, ksi_env, prepare_run_dir, shared_install

    pw = pwd.getpwnam("ksitest")
    default_root = Path(f"/tmp/ksi-{pw.pw_uid}")
    if default_root.exists() and any(default_root.iterdir()):
        pytest.skip(f"{default_root} holds another run's state: not ours to remove")
    install = shared_install(slurm_testbed)
    run_dir = prepare_run_dir(slurm_testbed, "gc-all-users")
    work = run_dir / "work"
    work.mkdir()
    os.chown(work, pw.pw_uid, pw.pw_gid)
    (work / "w.sh").write_text(BLOCK)
    env = ksi_env(slurm_testbed, install, run_dir, user="ksitest", HOME=pw.pw_dir)
    del env["KSI_STATE_DIR"]  # the default state root: what --all-users looks for
    (run_dir / "locks").mkdir(mode=0o1777)
    os.chmod(run_dir / "locks", 0o1777)
    try:
        proc = subprocess.Popen(
            ["runuser", "-u", "ksitest", "--", "env", *[f"{k}={v}" for k, v in env.items()],
             SYSTEM_PYTHON, "-m", "ksi", "run", "w.sh"],
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, cwd=str(work),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        marker = wait_for(lambda: next((p for p in work.glob("marker-*")
                                        if not p.name.endswith(".tmp")), None), 60,
                          "ksitest's workload")
        records = list(default_root.glob("*/run.json"))
        assert len(records) == 1 and records[0].stat().st_uid == pw.pw_uid
        cluster = json.loads(records[0].read_text())["cluster"]
        # kill -9 ksi (found by its run record's pid) and the workload: leftovers remain
        os.kill(json.loads(records[0].read_text())["pid"], signal.SIGKILL)
        os.kill(int(marker.read_text().split()[0]), signal.SIGKILL)
        proc.communicate(timeout=30)
        leftover = [p for p in (run_dir / "emu" / "hosts").glob("*/*/containers/*.json")]
        assert len(leftover) == 1
        # root, with the same site view (emulator, lock dir), no state dir of its own
        root_env = {k: v for k, v in env.items() if k != "HOME"}
        r = subprocess.run([SYSTEM_PYTHON, "-m", "ksi", "gc", "--all-users"],
                           env=dict(root_env, HOME="/root"), cwd=str(work),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        section = r.stdout.split("# user ksitest", 1)[1].split("# user ", 1)[0]
        assert f"removed {cluster}" in section, r.stdout + r.stderr
        assert list((run_dir / "emu" / "hosts").glob("*/*/containers/*.json")) == []
        assert list(default_root.glob("*")) == []
    finally:
        for p in default_root.glob("ksi-*"):
            shutil.rmtree(p, ignore_errors=True)
