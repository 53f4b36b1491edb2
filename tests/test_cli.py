"""The CLI package: click only in ksi.cli, --version with the tools on PATH, completion."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import EMU_BIN, ROOT, clean_environ, run_ksi

SRC = ROOT / "src" / "ksi"


def test_click_is_imported_only_in_the_cli_package() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom)}
        if "click" in names and SRC / "cli" not in path.parents:
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


def test_every_command_is_its_own_module() -> None:
    from ksi.cli import COMMANDS, cli

    for name, module in COMMANDS.items():
        assert (SRC / "cli" / f"{module}.py").is_file()
        assert cli.get_command(None, name).name == name  # type: ignore[arg-type,union-attr]


def _env(path: str, tmp_path: Path) -> dict[str, str]:
    env = clean_environ()
    env.update(PATH=path, PYTHONPATH=str(ROOT / "src"), KSI_EMU_STATE=str(tmp_path),
               KSI_SITE_CONFIG=str(tmp_path / "none"), KSI_USER_CONFIG=str(tmp_path / "none"))
    return env


def test_version_names_the_tools_on_path(tmp_path: Path) -> None:
    only_emu = tmp_path / "bin"   # the emulator's tools, nothing else of the host's PATH
    only_emu.mkdir()
    for tool in EMU_BIN.iterdir():
        (only_emu / tool.name).symlink_to(tool)
    res = run_ksi(["--version"], _env(f"{only_emu}{os.pathsep}/usr/bin:/bin", tmp_path),
                  tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("ksi, version ")
    by_tool = {ln.split()[0]: ln for ln in lines[1:] if not ln.startswith("missing")}
    assert by_tool["kind"].split()[1] == "v0.30.0"
    assert by_tool["kubectl"].split()[1].startswith("v1.")          # from -o json
    assert "(containerd v" in by_tool["nerdctl"]                    # --format json
    assert by_tool["podman"].split()[1].startswith("v5.")
    assert by_tool["liqoctl"].split()[1] == "v1.0.1"
    docker_missing = not any((Path(d) / "docker").exists() for d in ("/usr/bin", "/bin"))
    assert ("docker    not found on PATH" in res.stdout) is docker_missing


def test_version_with_an_empty_path(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "ksi", "--version"], env=_env("", tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == \
        "missing: kind, kubectl, nerdctl, podman, docker, liqoctl"
    assert res.stdout.count("not found on PATH") == 6


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_and_command_names(tmp_path: Path, shell: str) -> None:
    env = _env(os.environ.get("PATH", ""), tmp_path)
    script = run_ksi([], {**env, "_KSI_COMPLETE": f"{shell}_source"}, tmp_path)
    assert script.returncode == 0 and "_KSI_COMPLETE" in script.stdout
    assert ("complete -o nosort -F _ksi_completion ksi" in script.stdout) is (shell == "bash")
    got = run_ksi([], {**env, "_KSI_COMPLETE": f"{shell}_complete", "COMP_WORDS": "ksi r",
                       "COMP_CWORD": "1"}, tmp_path)
    assert got.returncode == 0
    words = got.stdout.split()
    assert ("plain,run" in words) if shell == "bash" else ("run" in words)


def test_bash_completes_ksi_r_to_run(tmp_path: Path) -> None:
    if not any((Path(d) / "bash").exists() for d in ("/bin", "/usr/bin")):
        pytest.skip("no bash")
    wrapper = tmp_path / "bin" / "ksi"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m ksi "$@"\n')
    wrapper.chmod(0o755)
    env = _env(f"{wrapper.parent}{os.pathsep}{os.environ.get('PATH', '')}", tmp_path)
    driver = ('eval "$(_KSI_COMPLETE=bash_source ksi)"; COMP_WORDS=(ksi r); COMP_CWORD=1; '
              '_ksi_completion ksi; printf "%s\\n" "${COMPREPLY[@]}"')
    res = subprocess.run(["bash", "-c", driver], env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["run"]


def test_run_lists_the_providers_the_registry_knows() -> None:
    """`ksi run --help` names the providers without importing them: the same list."""
    from ksi.cli.run import PROVIDERS
    from ksi.provision.providers import CHOICES

    assert PROVIDERS == CHOICES
