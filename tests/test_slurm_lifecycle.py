"""KSI inside real Slurm jobs (the test bed) against the emulator: the seed's launch forms,
scancel at every phase, the time limit, per-task identity, and concurrent jobs and users."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from tests.slurm.ksienv import ksi_argv, ksi_env, leftovers, prepare_run_dir, shared_install

NOTHING = {"containers": [], "ports": [], "state": []}

DUMP = """#!/bin/bash
set -eu
{
  echo "HOST=$(hostname)"
  echo "JOB=$SLURM_JOB_ID"
  echo "NAME=$K8S_CLUSTER_NAME"
  echo "API=$K8S_CLUSTER_API"
  echo "TOKEN=${#K8S_CLUSTER_API_TOKEN}"
  echo "PORT=$K8S_PORT"
  echo "PWD=$PWD"
  echo "NODES=$(kubectl --context "$K8S_CLUSTER_NAME" get nodes -o name | wc -l)"
} > "${OUT:-env.out}"
exit "${EXIT_WITH:-0}"
"""


@pytest.fixture(scope="module")
def install(slurm_testbed):
    return shared_install(slurm_testbed)


@pytest.fixture
def run_dir(slurm_testbed, request):
    return prepare_run_dir(slurm_testbed, request.node.name[:40])


def parse(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def proc_with(*needles: str) -> bool:
    """Some process on this machine (every node shares the PID namespace) has all needles
    in its argv."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                continue
            if all(n in argv for n in needles):
                return True
    return False


def wait_until(pred, timeout: float = 60, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def workdir_in(run_dir: Path, user: str | None = None, tag: str = "") -> Path:
    import os
    import pwd

    w = run_dir / f"work-{user or 'root'}{tag}"
    w.mkdir()
    if user:
        pw = pwd.getpwnam(user)
        os.chown(w, pw.pw_uid, pw.pw_gid)
    return w


def test_srun_ksi_run_gives_the_contract_and_exit_code(slurm_testbed, install, run_dir):
    work = workdir_in(run_dir)
    (work / "wl.sh").write_text(DUMP)
    env = ksi_env(slurm_testbed, install, run_dir, EXIT_WITH="7")
    res = slurm_testbed.srun([*ksi_argv(), "run", "wl.sh"], env=env, cwd=work, timeout=120)
    assert res.returncode == 7, res.stderr
    got = parse(work / "env.out")
    assert got["HOST"].startswith("node")
    assert got["NAME"].startswith(f"kind-ksi-{got['JOB']}-0-0-")
    assert got["API"].startswith("https://") and int(got["TOKEN"]) > 20
    assert 30000 <= int(got["PORT"]) <= 32767 and got["NODES"] == "1"
    assert got["PWD"] == str(work)
    assert leftovers(run_dir) == NOTHING


def test_run_workload_sh_under_srun(slurm_testbed, install, run_dir):
    work = workdir_in(run_dir)
    (work / "wl.sh").write_text(DUMP)
    env = ksi_env(slurm_testbed, install, run_dir)
    res = slurm_testbed.srun(["/bin/bash", str(install / "run-workload.sh"), str(work / "wl.sh"),
                              str(run_dir)], env=env, cwd=work, timeout=120)
    assert res.returncode == 0, res.stderr
    assert parse(work / "env.out")["NAME"].startswith("kind-ksi-")
    assert leftovers(run_dir) == NOTHING


@pytest.mark.parametrize("user", [None, "ksitest"])
def test_seed_batch_script_fixed(slurm_testbed, install, run_dir, user):
    """The README's batch-ksi.sh with both arguments: job exit code = the workload's."""
    work = workdir_in(run_dir, user)
    (work / "wl.sh").write_text(DUMP)
    (work / "wl.sh").chmod(0o755)
    script = ("#!/bin/bash\n#SBATCH --nodes=1\n"
              f"srun -N1 /bin/bash {install / 'run-workload.sh'} $PWD/wl.sh $PWD\n")
    env = ksi_env(slurm_testbed, install, run_dir, user=user, EXIT_WITH="3")
    job = slurm_testbed.sbatch(script, user=user, cwd=work, env=env)
    state = slurm_testbed.wait_gone(job, timeout=120)
    info = slurm_testbed.job_info(job)
    out = next(work.glob("slurm-*.out")).read_text()
    assert state == "FAILED" and info["ExitCode"] == "3:0", out
    assert parse(work / "env.out")["JOB"] == job
    assert "phase teardown: ok" in out
    assert leftovers(run_dir) == NOTHING


@pytest.mark.parametrize(("phase", "extra", "started"), [
    ("create", {"KSI_EMU_DELAY": "kind:create=120"}, "create cluster --name"),
    ("access", {"KSI_EMU_DELAY": "kubectl:apply=120"}, "apply -f -"),
    ("workload", {}, None),
])
def test_scancel_tears_down_within_killwait(slurm_testbed, install, run_dir, phase, extra,
                                            started):
    work = workdir_in(run_dir)
    (work / "wl.sh").write_text("touch started\nwhile true; do sleep 0.05; done\n")
    env = ksi_env(slurm_testbed, install, run_dir, **extra)
    name = f"scancel-{phase}-{run_dir.name[-8:]}"  # unique: never another run's job
    argv, full_env = slurm_testbed.command(
        ["srun", "-N1", "-J", name, *ksi_argv(), "run", "wl.sh"], env=env)
    srun = subprocess.Popen(argv, env=full_env, cwd=work, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    job = ""
    try:
        if started:
            wait_until(lambda: proc_with(started, str(run_dir)), timeout=60)
        else:
            wait_until(lambda: (work / "started").exists(), timeout=60)
        job = _job_named(slurm_testbed, name)
        t0 = time.monotonic()
        assert slurm_testbed.scancel(job).returncode == 0
        out, err = srun.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if srun.poll() is None:
            if job:
                slurm_testbed.scancel(job)
            srun.kill()
    assert slurm_testbed.wait_gone(job) == "CANCELLED"
    assert "phase teardown: ok" in err, err
    assert "interrupted by SIGTERM" in err
    assert took < 8, took  # well inside any KillWait (Slurm's default 30 s)
    report = json.loads(next(work.glob("ksi-report-*.json")).read_text())
    assert report["signal"] == 15 and report["exit_code"] == 143
    assert leftovers(run_dir) == NOTHING


def test_scancel_of_the_seed_batch_form(slurm_testbed, install, run_dir):
    """sbatch + srun (the seed's form): scancel's SIGTERM reaches ksi in the step; srun waits
    KillWait for it, so teardown completes."""
    work = workdir_in(run_dir)
    (work / "wl.sh").write_text("touch started\nwhile true; do sleep 0.05; done\n")
    env = ksi_env(slurm_testbed, install, run_dir)
    job = slurm_testbed.sbatch(f"#!/bin/bash\nsrun {' '.join(ksi_argv())} run wl.sh\n",
                               cwd=work, env=env)
    wait_until((work / "started").exists, timeout=60)
    slurm_testbed.scancel(job)
    assert slurm_testbed.wait_gone(job) == "CANCELLED"
    out = next(work.glob("slurm-*.out")).read_text()
    assert "phase teardown: ok" in out and "interrupted by SIGTERM" in out, out
    assert not (work / "ksi-logs").exists()  # a cancel is not a failure: no log export
    assert leftovers(run_dir) == NOTHING


def _job_named(bed, name: str) -> str:
    def find():
        r = bed.run(["squeue", "-h", "-n", name, "-o", "%i"])
        return r.stdout.strip().splitlines()[0] if r.stdout.strip() else ""
    wait_until(lambda: bool(find()), timeout=30)
    return find()


def test_time_limit_tears_down_before_slurm_kills(slurm_testbed, install, run_dir):
    """-t 1 (60 s) with a 45 s margin: KSI stops the workload at ~15 s and exits 86 before
    Slurm's limit; the token lifetime follows the remaining time."""
    work = workdir_in(run_dir)
    (work / "wl.sh").write_text("touch started\nwhile true; do sleep 0.05; done\n")
    env = ksi_env(slurm_testbed, install, run_dir, KSI_TEARDOWN_MARGIN="45",
                  KSI_TOKEN_MARGIN="600")
    res = slurm_testbed.srun([*ksi_argv(), "run", "wl.sh"], env=env, cwd=work, timeout=120,
                             extra_args=["-t", "1"])
    assert res.returncode == 86, res.stderr
    ksi_lines = [ln for ln in res.stderr.splitlines() if ln.startswith("ksi: ")]
    assert "time limit" in ksi_lines[-1]
    report = json.loads(next(work.glob("ksi-report-*.json")).read_text())
    left = report["time_left_at_start"]
    assert 0 < left <= 60
    assert report["token_seconds"] == int(left) + 600
    assert leftovers(run_dir) == NOTHING


def test_job_environment_per_task_in_srun_n3(slurm_testbed, install, run_dir):
    code = ("import json; from ksi.jobenv import detect; e = detect(); "
            "print(json.dumps(e.as_dict()))")
    env = ksi_env(slurm_testbed, install, run_dir)
    res = slurm_testbed.srun([ksi_argv()[0], "-c", code], nodes=3, env=env, timeout=60,
                             extra_args=["--ntasks-per-node=1"])
    assert res.returncode == 0, res.stderr
    rows = sorted((json.loads(x) for x in res.stdout.splitlines()), key=lambda r: r["node_id"])
    assert [r["node_id"] for r in rows] == [0, 1, 2]
    assert [r["proc_id"] for r in rows] == [0, 1, 2]
    assert [r["hostname"] for r in rows] == ["node1", "node2", "node3"]
    assert {r["job_id"] for r in rows} == {rows[0]["job_id"]}
    assert all(r["num_nodes"] == 3 and r["nodes"] == ["node1", "node2", "node3"] for r in rows)
    assert all(r["step_id"].isdigit() for r in rows)


def test_concurrent_jobs_of_one_and_two_users(slurm_testbed, install, run_dir):
    """Two jobs of root and one of ksitest on node1 at once: distinct clusters and ports;
    each cleans up only its own (the first to finish leaves the others running)."""
    gate = run_dir / "gate"
    wl = ('echo "NAME=$K8S_CLUSTER_NAME" > env.out; echo "PORT=$K8S_PORT" >> env.out\n'
          f'touch started\nwhile [ ! -e {gate}.$TAG ]; do sleep 0.05; done\n'
          'kubectl --context "$K8S_CLUSTER_NAME" get nodes >/dev/null\n')
    jobs = []
    for i, user in enumerate([None, None, "ksitest"]):
        work = workdir_in(run_dir, user, str(i))
        (work / "wl.sh").write_text(wl)
        env = ksi_env(slurm_testbed, install, run_dir, user=user, TAG=str(i))
        script = f"#!/bin/bash\nsrun {' '.join(ksi_argv(user))} run wl.sh\n"
        jobs.append((work, slurm_testbed.sbatch(script, user=user, cwd=work, env=env,
                                                extra_args=["-w", "node1", "-n1"])))
    try:
        for work, _ in jobs:
            wait_until((work / "started").exists, timeout=90)
    except AssertionError as exc:
        outs = [p.read_text()[-1500:] for w, _ in jobs for p in w.glob("slurm-*.out")]
        raise AssertionError("a job did not start its workload:\n"
                             + "\n---\n".join(outs)) from exc
    got = [parse(w / "env.out") for w, _ in jobs]
    assert len({g["NAME"] for g in got}) == 3 and len({g["PORT"] for g in got}) == 3
    (run_dir / "gate.0").touch()  # the first root job ends; the others must be untouched
    assert slurm_testbed.wait_gone(jobs[0][1], timeout=60) == "COMPLETED"
    running = leftovers(run_dir)["containers"]
    assert sorted(running) == sorted(f"{g['NAME'][5:]}-control-plane" for g in got[1:])
    (run_dir / "gate.1").touch()
    (run_dir / "gate.2").touch()
    for _, job in jobs[1:]:
        assert slurm_testbed.wait_gone(job, timeout=60) == "COMPLETED"
    assert leftovers(run_dir) == NOTHING
