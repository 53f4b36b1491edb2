"""Running KSI (against the emulator) inside jobs of the Slurm test bed, as root or as a test
user. Users other than root cannot reach root's Python or the checkout, so the code, the
emulator and the dependencies are copied once into the bed's shared directory."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.slurm.harness import DEFAULT_PATH, Testbed

ROOT = Path(__file__).resolve().parents[2]
DEPS = ["click", "rich", "PyYAML", "python-hostlist"]
SYSTEM_PYTHON = "/usr/bin/python3"


def _python_for(user: str | None) -> str:
    return sys.executable if user in (None, "root") else SYSTEM_PYTHON


def shared_install(bed: Testbed) -> Path:
    """<shared>/ksi-install with src/, emulator/ and pylib/ (deps for the system Python),
    world-readable; rebuilt when the checkout's sources are newer."""
    base = bed.shared / "ksi-install"
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    with open(bed.shared / ".ksi-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = base / "stamp"
        newest = max(p.stat().st_mtime for p in (ROOT / "src").rglob("*.py"))
        newest = max(newest, *(p.stat().st_mtime for p in
                               (ROOT / "tests" / "emulator").rglob("*") if p.is_file()))
        if not stamp.exists() or float(stamp.read_text() or 0) < newest:
            for sub, src in (("src", ROOT / "src"), ("emulator", ROOT / "tests" / "emulator")):
                shutil.rmtree(base / sub, ignore_errors=True)
                shutil.copytree(src, base / sub,
                                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            shutil.copy2(ROOT / "run-workload.sh", base / "run-workload.sh")
            stamp.write_text(str(newest))
        pylib = base / "pylib"
        if not (pylib / ".done").exists() and Path(SYSTEM_PYTHON).exists():
            # same minor version as ours (3.11 on Debian 12), so our pip's picks fit it
            assert _system_python_version() == "{}.{}".format(*sys.version_info[:2])
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target",
                            str(pylib), *DEPS],
                           check=True, capture_output=True, text=True, timeout=300)
            (pylib / ".done").write_text("ok")
        subprocess.run(["chmod", "-R", "a+rX", str(base)], check=True)
    return base


def _system_python_version() -> str:
    out = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def ksi_env(bed: Testbed, install: Path, run_dir: Path, *, user: str | None = None,
            **extra: str) -> dict[str, str]:
    """Environment for `python -m ksi` in a job: emulator first on PATH, shared emulator
    state and lock directory under run_dir, private KSI state per user."""
    uid = 0 if user in (None, "root") else _uid(user)
    py = _python_for(user)
    pypath = [str(install / "src")]
    if py == SYSTEM_PYTHON:
        pypath.append(str(install / "pylib"))
    env = {
        "PATH": os.pathsep.join([str(install / "emulator" / "bin"), os.path.dirname(py),
                                 DEFAULT_PATH]),
        "PYTHONPATH": os.pathsep.join(pypath),
        "KSI_EMU_STATE": str(run_dir / "emu"),
        "KSI_LOCK_DIR": str(run_dir / "locks"),
        "KSI_STATE_DIR": str(run_dir / f"state-{uid}"),
        "KSI_SITE_CONFIG": "/nonexistent/site.toml",
        "KSI_USER_CONFIG": "/nonexistent/user.toml",
        "KSI_EMU_READY_AFTER": "0",
        "KSI_GC_ON_START": "false",
        "KSI_PYTHON": py,
    }
    env.update(extra)
    return env


def prepare_run_dir(bed: Testbed, name: str) -> Path:
    """A shared 1777 directory for one test: emulator state, locks, per-user state."""
    d = bed.shared_dir(name)
    os.chmod(d, 0o1777)
    (d / "emu").mkdir(mode=0o1777)
    os.chmod(d / "emu", 0o1777)
    return d


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def ksi_argv(user: str | None = None) -> list[str]:
    return [_python_for(user), "-m", "ksi"]


def leftovers(run_dir: Path) -> dict[str, list]:
    """Containers (every host), held port locks and KSI state left in run_dir."""
    from ksi.plan.ports import PortBook

    containers = [json.loads(p.read_text()).get("name", p.stem)
                  for p in (run_dir / "emu" / "hosts").glob("*/*/containers/*.json")]
    state = [str(p) for d in run_dir.glob("state-*") for p in d.iterdir()]
    return {"containers": containers, "ports": PortBook(run_dir / "locks").held_by_others(),
            "state": state}
