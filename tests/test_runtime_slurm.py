"""The job-scoped runtime on the real Slurm test bed: a real root podman container, started
in the foreground of a job step, must end when the job is cancelled.

The bed (tests/slurm/testbed) tracks processes with proctrack/linuxproc (no cgroups here:
cgroup v1/hybrid). podman's conmon double-forks and is re-parented to PID 1, so Slurm loses
it: `test_control_plain_podman_survives_scancel` shows the container outliving the job.
With KSI's job-scoped runtime (`python -m ksi.runtime.jobruntime podman -- podman run …`,
the same JobRuntime `ksi run --runtime-mode job` uses: per-job CONTAINERS_CONF with the
site's fixes + cgroupfs, per-job storage under the job dir) scancel's SIGTERM reaches KSI,
which removes the private store's containers and the directory within KillWait.
See docs/runtime.md for what this proves and what a cgroup v2 site must still show.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.slurm.harness import Testbed, wait_for  # noqa: E402

pytest_plugins = ["tests.slurm.fixtures"]
pytestmark = pytest.mark.slurm

ROOT = Path(_ROOT)
LAB_CONF = Path("/work/shared/slurm-lab/containers.conf")  # ulimits + runc (CONTAINERS.md)


def _need(bed: Testbed) -> None:
    if os.getuid() != 0:
        pytest.skip("root podman on the bed needs root")
    for tool in ("podman", "runc", "conmon"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    if not Path("/bin/busybox").is_file():
        pytest.skip("/bin/busybox (busybox-static) is not installed")


@pytest.fixture
def bed(slurm_testbed: Testbed) -> Testbed:
    _need(slurm_testbed)
    return slurm_testbed


@pytest.fixture
def work(bed: Testbed, tmp_path: Path):
    """A shared job directory with a busybox image archive (from busybox-static)."""
    d = bed.shared_dir("rt")
    rootfs = tmp_path / "rootfs"
    for sub in ("bin", "etc", "tmp", "proc", "sys", "dev"):
        (rootfs / sub).mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep", "echo"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(d / "bb.tar"), "."], check=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _env(conf: Path) -> dict[str, str]:
    env = {}
    for line in conf.read_text().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            env[k] = v
    return env


def _script(d: Path, marker: str, holder: bool) -> str:
    fixes = f"export CONTAINERS_CONF={LAB_CONF}\n" if LAB_CONF.is_file() else ""
    run = (f"podman run --rm --name ksi-t-$SLURM_JOB_ID --network=none localhost/ksi-bb "
           f"sleep {marker}")
    if holder:
        run = f"exec python3 -m ksi.runtime.jobruntime --base {d} podman -- {run}"
    return f"""#!/bin/bash
{fixes}export PYTHONPATH={ROOT / 'src'}
eval "$(python3 -m ksi.runtime.jobruntime --base {d} podman)"
env | grep -E '^(CONTAINERS_|XDG_)' > {d}/env.txt
podman import {d}/bb.tar localhost/ksi-bb > {d}/import.log 2>&1 || exit 3
{run} > {d}/run.log 2>&1
"""


def _procs(marker: str) -> list[str]:
    r = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    return r.stdout.split()


def _podman_ps(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}} {{.Status}}"],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60)


def _start(bed: Testbed, work: Path, holder: bool) -> tuple[str, str, dict[str, str]]:
    marker = str(900000 + os.getpid() % 99999)
    job = bed.sbatch(_script(work, marker, holder), cwd=work)
    bed.wait_running(job, timeout=60)
    env_file = work / "env.txt"
    wait_for(lambda: env_file.is_file() and env_file.stat().st_size > 0, 60,
             what="the job's runtime environment")
    env = _env(env_file)

    def up() -> bool:
        return f"ksi-t-{job} Up" in _podman_ps(env).stdout

    try:
        wait_for(up, 60, 0.2, what="the container to run")
    except Exception:
        logs = "".join(p.read_text() for p in work.glob("*.log") if p.is_file())
        bed.scancel(job)
        raise AssertionError(f"container did not start:\n{logs}") from None
    assert _procs(marker), "the container's process is not visible on the host"
    return job, marker, env


def test_job_scoped_podman_container_ends_with_the_job(bed: Testbed, work: Path) -> None:
    job, marker, env = _start(bed, work, holder=True)
    t0 = time.monotonic()
    bed.scancel(job)

    def gone() -> bool:
        ps = _podman_ps(env)
        listed = f"ksi-t-{job}" in ps.stdout
        return not listed and not _procs(marker)

    wait_for(gone, 30, 0.2, what="the container to disappear after scancel")
    took = time.monotonic() - t0
    bed.wait_gone(job, timeout=60)
    left = work / f"ksi-{job}.batch"
    if left.exists():
        logs = [*work.glob("*.out"), *work.glob("*.log")]
        out = "".join(p.read_text(errors="replace") for p in logs)
        raise AssertionError("the job's runtime dir was not removed: "
                             f"{sorted(str(p) for p in left.rglob('*'))[:20]}\n{out}")
    assert took < 15, f"took {took:.1f}s"


def _stepds(job: str) -> list[str]:
    """Slurm's step daemons of the job (`slurmstepd: [JOB.batch]`, `[JOB.extern]`)."""
    r = subprocess.run(["pgrep", "-f", rf"slurmstepd: \[{job}\."], capture_output=True,
                       text=True)
    return r.stdout.split()


def test_control_plain_podman_survives_scancel(bed: Testbed, work: Path) -> None:
    """Without KSI's teardown the container outlives the job on this bed: the assertion
    above is not vacuous. Once Slurm's step daemons of the job have exited, Slurm has
    killed everything it tracks (proctrack); what still runs then is an orphan."""
    job, marker, env = _start(bed, work, holder=False)
    try:
        bed.scancel(job)
        bed.wait_gone(job, timeout=60)
        wait_for(lambda: not _stepds(job), 60, 0.2, what=f"job {job}'s slurmstepd to exit")
        listed = f"ksi-t-{job}" in _podman_ps(env).stdout
        assert listed and _procs(marker), (
            "without KSI's teardown the container did not outlive the job (listed "
            f"{listed}, processes {_procs(marker)}): this bed already stops orphaned "
            "containers, so test_job_scoped_podman_container_ends_with_the_job proves nothing")
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", f"ksi-t-{job}"],
                       env={**os.environ, **env}, capture_output=True, timeout=60)
        wait_for(lambda: not _procs(marker), 30, 0.2, what="control container removal")
