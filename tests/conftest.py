"""Shared fixtures: the contract emulator on PATH, private state, and leftover checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EMU_BIN = ROOT / "tests" / "emulator" / "bin"
sys.path.insert(0, str(ROOT / "tests" / "emulator" / "lib"))
sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.slurm.fixtures"]


def clean_environ() -> dict[str, str]:
    """The test process environment without Slurm or KSI variables."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "KSI_", "K8S_", "KIND_", "SBATCH_", "SRUN_"))
            and k != "KUBECONFIG"}


@pytest.fixture
def emu_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running ksi against the emulator with private state."""
    return make_emu_env(tmp_path)


def make_emu_env(tmp_path: Path) -> dict[str, str]:
    """emu_env's environment, for a test that needs several in one directory each."""
    env = clean_environ()
    env.update({
        # the interpreter's own directory next: emulator start-up without pyenv's shims
        "PATH": os.pathsep.join([str(EMU_BIN), os.path.dirname(sys.executable),
                                 env.get("PATH", "")]),
        "KSI_EMU_STATE": str(tmp_path / "emu"),
        "KSI_STATE_DIR": str(tmp_path / "state"),
        "KSI_LOCK_DIR": str(tmp_path / "locks"),
        "KSI_SITE_CONFIG": str(tmp_path / "none-site.toml"),
        "KSI_USER_CONFIG": str(tmp_path / "none-user.toml"),
        "KSI_EMU_READY_AFTER": "0",
        "KSI_GC_ON_START": "false",
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(ROOT / "src"),
    })
    (tmp_path / "emu").mkdir()
    (tmp_path / "home").mkdir()
    return env


def run_ksi(args: list[str], env: dict[str, str], cwd: Path | str,
            timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run `python -m ksi ARGS` and capture its output."""
    return subprocess.run([sys.executable, "-m", "ksi", *args], env=env, cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout, **kw)


def emu_containers(env: dict[str, str]) -> list[dict]:
    """Every emulated container on every host, of every runtime and user."""
    root = Path(env["KSI_EMU_STATE"]) / "hosts"
    return [json.loads(p.read_text()) for p in root.glob("*/*/containers/*.json")]


def held_ports(env: dict[str, str]) -> list[int]:
    from ksi.plan.ports import PortBook

    return PortBook(Path(env["KSI_LOCK_DIR"])).held_by_others()


def leftovers(env: dict[str, str]) -> dict[str, list]:
    """What a finished run left behind: containers, held port locks, state directories."""
    state = Path(env["KSI_STATE_DIR"])
    return {
        "containers": [c.get("name", c.get("Name", "?")) for c in emu_containers(env)],
        "ports": held_ports(env),
        "state": sorted(str(p) for p in state.iterdir()) if state.is_dir() else [],
    }


NOTHING = {"containers": [], "ports": [], "state": []}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


def foreign_file_in_sticky_dir(d: Path, name: str) -> Path:
    """A file of another user (uid 1501) in the sticky, world-writable dir d; skips unless
    the kernel then refuses O_CREAT on it (fs.protected_regular >= 1, systemd's default)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    f = d / name
    f.write_text("")
    os.chmod(f, 0o644)
    os.chown(f, 1501, 1501)
    try:
        os.close(os.open(f, os.O_RDWR | os.O_CREAT))
    except PermissionError:
        return f
    pytest.skip("fs.protected_regular is 0 here: O_CREAT on another user's file is allowed")
