#!/usr/bin/env python3
"""Build ksi.pyz: one file with KSI and its pure-Python dependencies, for nodes where pip is
not allowed. Runs with Python 3.9 and later (`python3 ksi.pyz run WORKLOAD.sh`); an older
interpreter gets one line saying so.

    python3 contrib/packaging/build_zipapp.py [--out dist/ksi.pyz]

The dependencies are those of pyproject.toml, resolved from PyPI for Python 3.9 (so that the
archive keeps working there): wheels that are pure Python only (`--platform any --abi none`),
python-hostlist (published as an sdist only) built as pure Python, and PyYAML's pure-Python
part taken from its sdist (PyYAML works without its C extension). tomli is always included
(KSI uses it below 3.11). No bytecode is compiled into the archive (`--no-compile`); the
build fails if any compiled extension got in.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = Path(__file__).resolve().with_name("zipapp_main.py")
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
FOR_PY39 = ["--platform", "any", "--python-version", "3.9", "--implementation", "py",
            "--abi", "none", "--only-binary=:all:"]
SDIST_ONLY = {"python-hostlist"}   # no wheel on PyPI: built from the sdist (pure Python)
PURE_PART = {"pyyaml": "lib/yaml"}  # sdist member dir holding the pure-Python package
COMPILED = (".so", ".pyd", ".dylib", ".dll", ".pyc")


def requirements() -> list[str]:
    """pyproject.toml's dependencies, environment markers dropped (all go in the archive)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.S | re.M)
    if not block:
        raise SystemExit("build_zipapp: no [project] dependencies in pyproject.toml")
    reqs = re.findall(r'"([^"]+)"', block.group(1))
    return [r.split(";")[0].strip() for r in reqs]


def dist_name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower()


def add_pure_part(req: str, member: str, site: Path, tmp: Path) -> None:
    """Unpack the pure-Python package directory `member` of req's sdist into site."""
    dl = tmp / "sdist"
    # only this one from source: its build dependencies (for reading its metadata) come as
    # wheels, nothing is compiled
    subprocess.run([*PIP, "download", "--no-deps", f"--no-binary={dist_name(req)}",
                    "-d", str(dl), req], check=True)
    (sdist,) = dl.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        prefix = f"{top}/{member}/"
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and m.isfile()]
        if not members:
            raise SystemExit(f"build_zipapp: {sdist.name} has no {member}/")
        pkg = site / Path(member).name
        for m in members:
            out = pkg / m.name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            assert src is not None
            out.write_bytes(src.read())
    shutil.rmtree(dl)


def pip_target(reqs: list[str], opts: list[str], site: Path, target: Path) -> None:
    """pip install reqs into target, then merge it into site without console scripts."""
    if not reqs:
        return
    subprocess.run([*PIP, "install", "--no-compile", "--target", str(target), *opts, *reqs],
                   check=True)
    for extra in ("bin", "share"):  # console scripts, man pages: of no use inside
        shutil.rmtree(target / extra, ignore_errors=True)
    shutil.copytree(target, site, dirs_exist_ok=True)


def build(out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="ksi-zipapp-") as t:
        tmp = Path(t)
        site = tmp / "site"
        reqs = requirements()
        wheels = [r for r in reqs if dist_name(r) not in SDIST_ONLY | set(PURE_PART)]
        pip_target(wheels, FOR_PY39, site, tmp / "wheels")
        pip_target([r for r in reqs if dist_name(r) in SDIST_ONLY], ["--no-deps"], site,
                   tmp / "sdists")
        for r in reqs:
            if dist_name(r) in PURE_PART:
                add_pure_part(r, PURE_PART[dist_name(r)], site, tmp)
        shutil.copytree(ROOT / "src" / "ksi", site / "ksi",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        compiled = [str(p.relative_to(site)) for p in site.rglob("*") if p.suffix in COMPILED]
        if compiled:
            raise SystemExit(f"build_zipapp: not pure Python: {', '.join(compiled)}")
        shutil.copy(MAIN, site / "__main__.py")
        out.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(site, out, interpreter="/usr/bin/env python3", compressed=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "dist" / "ksi.pyz")
    out = build(ap.parse_args().out)
    print(f"{out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
