"""Checks of the Slurm test bed itself (tests/slurm/testbed): real Slurm jobs on 3 nodes.

Run as root on Linux: ``python3 -m pytest tests/test_testbed.py -q``. Skipped elsewhere.
No fixed sleeps: every wait polls a file or the queue with a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# `tests.slurm` must be importable also under plain `pytest` (which, for a tests/ dir
# without __init__.py, puts only tests/ on sys.path). No-op under `python3 -m pytest`.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.slurm.harness import (  # noqa: E402
    OTHER_USER,
    TEST_USER,
    TESTBED_SCRIPT,
    Testbed,
    live_sessions,
    wait_for,
)

pytest_plugins = ["tests.slurm.fixtures"]
pytestmark = pytest.mark.slurm

N = 3


@pytest.fixture
def bed(slurm_testbed: Testbed) -> Testbed:
    if len(slurm_testbed.nodes()) < N:
        pytest.skip(f"needs at least {N} nodes (KSI_TESTBED_NODES)")
    return slurm_testbed


def _files(directory: Path, pattern: str, count: int, timeout: float = 30) -> list[Path]:
    """Wait until ``count`` files match ``pattern`` in ``directory``; return them sorted."""

    def found() -> list[Path]:
        files = sorted(directory.glob(pattern))
        return files if len(files) >= count else []

    return wait_for(found, timeout, what=f"{count} x {directory}/{pattern}")


def test_testbed_cli_env_and_status(bed: Testbed) -> None:
    env = dict(os.environ, KSI_TESTBED_STATE=str(bed.state))
    out = subprocess.run(
        [str(TESTBED_SCRIPT), "env"], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"export SLURM_CONF={bed.conf}"
    st = subprocess.run(
        [str(TESTBED_SCRIPT), "status"], check=False, env=env, capture_output=True, text=True
    )
    assert st.returncode == 0, st.stdout + st.stderr
    assert "status: up" in st.stdout


def test_srun_three_distinct_hostnames(bed: Testbed) -> None:
    r = bed.srun(["hostname"], nodes=N)
    assert r.returncode == 0, r.stderr
    names = r.stdout.split()
    assert len(names) == N
    assert sorted(names) == [f"node{i}" for i in range(1, N + 1)]


def test_srun_slurm_env_per_task(bed: Testbed) -> None:
    fmt = (
        'echo "$(hostname) $SLURM_JOB_ID $SLURM_NODEID $SLURM_PROCID $SLURM_NNODES '
        '$SLURM_JOB_NODELIST $SLURM_STEP_ID $SLURM_JOBID"'
    )
    r = bed.srun(["bash", "-c", fmt], nodes=N, user=TEST_USER)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert len(rows) == N, r.stdout
    assert all(len(row) == 8 for row in rows), r.stdout
    job_ids = {row[1] for row in rows}
    assert len(job_ids) == 1 and job_ids.pop().isdigit()
    assert all(row[7] == row[1] for row in rows)  # SLURM_JOBID alias
    assert sorted(row[2] for row in rows) == [str(i) for i in range(N)]  # SLURM_NODEID
    assert sorted(row[3] for row in rows) == [str(i) for i in range(N)]  # SLURM_PROCID
    for host, _job, nodeid, _procid, nnodes, nodelist, step, _ in rows:
        assert host == f"node{int(nodeid) + 1}"  # node ids follow the sorted node list
        assert nnodes == str(N)
        assert nodelist == f"node[1-{N}]"
        assert step == "0"  # first (only) step of the srun-created job


def test_sbatch_as_test_user_shared_filesystem(bed: Testbed) -> None:
    work = bed.shared_dir("sbatch", user=TEST_USER)
    script = 'srun bash -c \'echo "$(id -u) $HOME $SLURM_JOB_ID" > "$PWD/out-$(hostname)"\'\n'
    job = bed.sbatch(script, user=TEST_USER, nodes=N, cwd=work, extra_args=["-o", "job.out"])
    assert bed.wait_gone(job, timeout=60) == "COMPLETED", (work / "job.out").read_text()
    outs = sorted(work.glob("out-node*"))
    assert [p.name for p in outs] == [f"out-node{i}" for i in range(1, N + 1)]
    for p in outs:
        assert p.stat().st_uid == 1500
        assert p.read_text().split() == ["1500", "/home/ksitest", job]


TRAP_SCRIPT = """#!/bin/bash
d=$1; h=$(hostname)
trap 'echo "TERM $SLURM_PROCID" > "$d/term-$h"; exit 0' TERM
echo ready > "$d/ready-$h"
while :; do sleep 0.2 & wait $!; done
"""


def test_scancel_delivers_sigterm_to_all_tasks(bed: Testbed) -> None:
    work = bed.shared_dir("trap", user=TEST_USER)
    trap = work / "trap.sh"
    trap.write_text(TRAP_SCRIPT)
    trap.chmod(0o755)
    job = bed.sbatch(
        f"srun {trap} {work}\n", user=TEST_USER, nodes=N, cwd=work, extra_args=["-o", "job.out"]
    )
    _files(work, "ready-node*", N)
    r = bed.scancel(job, user=TEST_USER)
    assert r.returncode == 0, r.stderr
    terms = _files(work, "term-node*", N, timeout=20)
    assert [p.name for p in terms] == [f"term-node{i}" for i in range(1, N + 1)]
    assert sorted(p.read_text().split()[1] for p in terms) == [str(i) for i in range(N)]
    assert bed.wait_gone(job, timeout=30) == "CANCELLED"


# A job that records where it runs, then waits for a release file (no fixed sleeps).
HOLD_SCRIPT = """#!/bin/bash
echo "$(hostname) $(id -un)" > "$PWD/started-$SLURM_JOB_ID"
for _ in $(seq 1200); do [ -e "$PWD/release" ] && exit 0; sleep 0.05; done
exit 1
"""


def _both_running(bed: Testbed, jobs: list[str], dirs: list[Path]) -> list[list[str]]:
    for job, d in zip(jobs, dirs):
        _files(d, f"started-{job}", 1)
    states = [bed.job_state(j) for j in jobs]
    assert states == ["RUNNING"] * len(jobs), states
    return [(d / f"started-{j}").read_text().split() for j, d in zip(jobs, dirs)]


def test_two_jobs_of_one_user_share_a_node(bed: Testbed) -> None:
    work = bed.shared_dir("share", user=TEST_USER)
    args = ["-w", "node1", "-n1", "-c1", "-o", "job-%j.out"]
    jobs = [bed.sbatch(HOLD_SCRIPT, user=TEST_USER, cwd=work, extra_args=args) for _ in range(2)]
    try:
        started = _both_running(bed, jobs, [work, work])
        assert started == [["node1", TEST_USER], ["node1", TEST_USER]]
    finally:
        (work / "release").touch()
    assert [bed.wait_gone(j, timeout=30) for j in jobs] == ["COMPLETED", "COMPLETED"]


def test_jobs_of_two_users_at_once(bed: Testbed) -> None:
    users = [TEST_USER, OTHER_USER]
    dirs = [bed.shared_dir("users", user=u) for u in users]
    jobs = [
        bed.sbatch(HOLD_SCRIPT, user=u, cwd=d, extra_args=["-n1", "-o", "job-%j.out"])
        for u, d in zip(users, dirs)
    ]
    try:
        started = _both_running(bed, jobs, dirs)
        assert [row[1] for row in started] == users
        # a user cannot cancel another user's job
        denied = bed.scancel(jobs[0], user=OTHER_USER)
        assert denied.returncode != 0
        assert bed.job_state(jobs[0]) == "RUNNING"
    finally:
        for d in dirs:
            (d / "release").touch()
    assert [bed.wait_gone(j, timeout=30) for j in jobs] == ["COMPLETED", "COMPLETED"]


def test_resize_to_five_nodes_and_back(bed: Testbed) -> None:
    """`testbed up 5` then `testbed up 3`. Restarts the daemons (kills running jobs),
    so it is skipped while another pytest session uses the bed. Takes ~6 s."""
    others = live_sessions(bed)
    if others:
        pytest.skip(f"other pytest sessions use the bed: {others}")
    try:
        bed.up(5)
        r = bed.srun(["hostname"], nodes=5)
        assert r.returncode == 0, r.stderr
        assert sorted(r.stdout.split()) == [f"node{i}" for i in range(1, 6)]
    finally:
        bed.up(N)
    assert bed.nodes() == [f"node{i}" for i in range(1, N + 1)]
    r = bed.srun(["hostname"], nodes=N)
    assert r.returncode == 0, r.stderr
    assert len(set(r.stdout.split())) == N
