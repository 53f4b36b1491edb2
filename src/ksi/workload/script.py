"""Run the workload script with bash as a child, in the working directory, with the
cluster's variables; its output streams through; its exit status is returned."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    import subprocess

    from ksi.runner import Runner
    from ksi.signals import Guard


def check_workload(path: str) -> Path:
    """The script must exist and be readable (bash runs it; it need not be executable)."""
    p = Path(path)
    if not p.exists():
        raise KsiError(f"workload script {path} does not exist",
                       "pass the path of your workload script (absolute, or relative to the "
                       "working directory)", code=Exit.WORKLOAD_MISSING)
    if p.is_dir():
        raise KsiError(f"workload {path} is a directory, not a script",
                       "pass the path of your workload script", code=Exit.WORKLOAD_UNREADABLE)
    if not os.access(p, os.R_OK):
        raise KsiError(f"workload script {path} is not readable",
                       f"chmod u+r {path}", code=Exit.WORKLOAD_UNREADABLE)
    return p.resolve()


def exit_status(returncode: int) -> int:
    """A negative Popen code (killed by signal N) becomes 128+N like a shell's."""
    return 128 - returncode if returncode < 0 else returncode


def run_script(runner: Runner, guard: Guard, script: Path, *, workdir: Path,
               variables: Mapping[str, str], shell: str = "bash") -> int:
    proc = runner.spawn([shell, str(script)], env=dict(variables), cwd=str(workdir))
    return wait_workload(guard, proc)


def wait_workload(guard: Guard, proc: subprocess.Popen) -> int:
    """Wait for the workload with signals forwarded to it; its exit status."""
    guard.workload = proc
    guard.mode = "workload"
    try:
        return exit_status(proc.wait())
    finally:
        guard.mode = "teardown"
        guard.workload = None
