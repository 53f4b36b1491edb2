"""Packaging files (contrib/packaging): the zipapp's version check, the Lmod modulefile and the
easyconfig match the package. The installs themselves are checked by
contrib/packaging/ci-check.sh (network: PyPI), which CI runs."""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import ROOT

from ksi import __version__

PKG = ROOT / "contrib" / "packaging"
MAIN = PKG / "zipapp_main.py"


def _zipapp_main():
    spec = importlib.util.spec_from_file_location("ksi_zipapp_main", MAIN)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("info", [(3, 8, 18, "final", 0), (3, 6, 15), (2, 7, 18)])
def test_zipapp_refuses_old_python_in_one_line(info: tuple) -> None:
    msg = _zipapp_main().too_old(info)
    assert msg is not None and "\n" not in msg
    assert msg.startswith("ksi: needs Python 3.9 or later, this is Python "
                          f"{info[0]}.{info[1]}")


@pytest.mark.parametrize("info", [(3, 9, 0), (3, 11, 7, "final", 0), (4, 0)])
def test_zipapp_accepts_39_and_later(info: tuple) -> None:
    assert _zipapp_main().too_old(info) is None


def _old_pythons() -> list[str]:
    """Interpreters older than 3.9 that run here (pyenv's versions, if any)."""
    found = []
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for exe in sorted(glob.glob(f"{root}/versions/[23].*/bin/python")):
        res = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] < (3, 9))"],
                             capture_output=True, text=True)
        if res.stdout.strip() == "True":
            found.append(exe)
    return found


def test_zipapp_main_runs_on_old_pythons(tmp_path: Path) -> None:
    """The real old interpreters (3.8, 2.7, ...) print the one line and exit 75, no traceback."""
    olds = _old_pythons()
    if not olds:
        pytest.skip("no Python older than 3.9 here (pyenv versions): too_old() is tested above")
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(MAIN, app / "__main__.py")
    for exe in olds:
        res = subprocess.run([exe, str(app), "--version"], capture_output=True, text=True)
        assert res.returncode == 75, (exe, res.stderr)
        assert res.stdout == ""
        assert len(res.stderr.splitlines()) == 1, res.stderr
        assert res.stderr.startswith("ksi: needs Python 3.9 or later"), res.stderr


def test_zipapp_main_starts_ksi(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(MAIN, app / "__main__.py")
    res = subprocess.run([sys.executable, str(app), "--version"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert res.returncode == 0, res.stderr
    assert __version__ in res.stdout


def test_modulefile_and_easyconfig_for_this_version() -> None:
    assert (PKG / "lmod" / "ksi" / f"{__version__}.lua").is_file()
    (ec,) = (PKG / "easybuild").glob(f"ksi-{__version__}-*.eb")
    text = ec.read_text()
    assert re.search(rf"^version = '{re.escape(__version__)}'$", text, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{__version__}"' in pyproject
    # every runtime dependency of pyproject.toml is a dependency or an extension
    deps = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.S | re.M)
    assert deps
    for req in re.findall(r'"([^"]+)"', deps.group(1)):
        if "python_version <" in req:   # e.g. tomli: not needed by the easyconfig's Python 3.12
            continue
        name = re.split(r"[<>=;! ]", req, maxsplit=1)[0].lower()
        assert f"('{name}'" in text.lower(), f"{name} missing from {ec.name}"


def test_modulefile_checks_python_on_load() -> None:
    lua = (PKG / "lmod" / "ksi" / f"{__version__}.lua").read_text()
    assert 'mode() == "load"' in lua
    assert "needs Python 3.9 or later" in lua
    assert "KSI_INSTALL_PREFIX" in lua
