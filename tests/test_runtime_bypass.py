"""bypass4netns without the admin wrapper (issue 6, part 3), against the contract emulator."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from tests.conftest import EMU_BIN, NOTHING, leftovers, run_ksi

from ksi.runtime import bypass

ANN = "nerdctl/bypass4netns=true"


def calls(env: dict, tool: str) -> list[list[str]]:
    p = Path(env["KSI_EMU_STATE"]) / "calls.jsonl"
    recs = [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []
    return [r["argv"] for r in recs if r["tool"] == tool]


@pytest.fixture
def xdg(emu_env: dict):
    """A short private XDG_RUNTIME_DIR (socket paths must stay under 108 bytes)."""
    d = tempfile.mkdtemp(prefix="ksi-b4n-")
    emu_env["XDG_RUNTIME_DIR"] = d
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(xdg: Path):
    """A listening socket where nerdctl expects bypass4netnsd's."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(xdg / bypass.SOCKET))
    s.listen(1)
    yield xdg / bypass.SOCKET
    s.close()


SNAPSHOT = """#!/bin/bash
mkdir -p {out}
cp "$KSI_EMU_STATE"/hosts/*/nerdctl-*/containers/*.json {out}/
"""


# ------------------------------------------------------------------ the shim itself
def test_shim_adds_the_annotation_to_run_only(emu_env: dict, tmp_path: Path) -> None:
    real = str(EMU_BIN / "nerdctl")
    shim = bypass.write_shim(tmp_path / "shim", real)
    assert oct(shim.stat().st_mode & 0o777) == "0o700"
    cases = [
        ["info", "--format", "{{json .}}"],
        ["ps", "-a", "--filter", "label=io.x-k8s.kind.cluster", "--format",
         '{{.Names}}\t{{.Label "io.x-k8s.kind.cluster"}}'],
        ["rm", "-f", "-v", "nosuch"],
        ["image", "inspect", "busybox"],
        ["--namespace", "default", "ps"],
        ["run", "-d", "--name", "c1", "--label", "a=b c", "busybox", "sh", "-c", "echo 'x y'"],
        ["container", "run", "-d", "--name", "c2", "busybox"],
    ]
    for argv in cases:
        subprocess.run([str(shim), *argv], env=emu_env, capture_output=True, timeout=30)
    got = calls(emu_env, "nerdctl")
    assert got[:5] == cases[:5]                       # passed through byte for byte
    assert got[5] == ["run", "--annotation", ANN, *cases[5][1:]]
    assert got[6] == ["container", "run", "--annotation", ANN, *cases[6][2:]]
    rec = json.loads(next(Path(emu_env["KSI_EMU_STATE"]).glob(
        "hosts/*/nerdctl-*/containers/c1.json")).read_text())
    assert rec["annotations"] == {"nerdctl/bypass4netns": "true"}
    assert rec["labels"] == {"a": "b c"} and rec["cmd"] == ["sh", "-c", "echo 'x y'"]


@pytest.mark.parametrize(("version", "flag"), [
    ("v1.7.7", "--label"), ("1.7.7", "--label"), ("v0.23.0", "--label"),
    ("v2.0.0-beta.2", "--label"), ("v2.0.0-beta.3", "--annotation"),
    ("v2.0.0", "--annotation"), ("v2.1.3", "--annotation"), ("3.0.0", "--annotation"),
    ("", "--label"), ("unknown", "--label"),
])
def test_run_flag_follows_the_nerdctl_version(version: str, flag: str) -> None:
    assert bypass.run_flag(version) == flag


def test_shim_for_nerdctl_1_passes_the_label(emu_env: dict, tmp_path: Path) -> None:
    """nerdctl 1.7.7 rejects --annotation (the VM's finding); the label is what it reads."""
    emu_env["KSI_EMU_VERSION_NERDCTL"] = "1.7.7"
    real = str(EMU_BIN / "nerdctl")
    old = bypass.write_shim(tmp_path / "old", real, "--annotation")
    res = subprocess.run([str(old), "run", "-d", "--name", "c0", "busybox"], env=emu_env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "unknown flag: --annotation" in res.stderr
    shim = bypass.write_shim(tmp_path / "shim", real, "--label")
    res = subprocess.run([str(shim), "container", "run", "-d", "--name", "c1", "--label", "a=b",
                          "busybox"], env=emu_env, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert calls(emu_env, "nerdctl")[-1] == ["container", "run", "--label", ANN, "-d", "--name",
                                             "c1", "--label", "a=b", "busybox"]
    rec = json.loads(next(Path(emu_env["KSI_EMU_STATE"]).glob(
        "hosts/*/nerdctl-*/containers/c1.json")).read_text())
    assert rec["labels"] == {"nerdctl/bypass4netns": "true", "a": "b"}


def test_nerdctl_2_only_warns_about_the_label(emu_env: dict, tmp_path: Path) -> None:
    shim = bypass.write_shim(tmp_path / "shim", str(EMU_BIN / "nerdctl"), "--label")
    res = subprocess.run([str(shim), "run", "-d", "--name", "c1", "busybox"], env=emu_env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and "is deprecated, use an annotation instead" in res.stderr
    with pytest.raises(Exception, match="neither --annotation nor --label"):
        bypass.write_shim(tmp_path / "x", str(EMU_BIN / "nerdctl"), "--env")


def test_shim_refuses_a_relative_real_path(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not absolute"):
        bypass.write_shim(tmp_path, "nerdctl")


def test_decide() -> None:
    none = {"XDG_RUNTIME_DIR": "/nonexistent"}
    assert not bypass.decide("auto", "podman", none).use
    assert not bypass.decide("off", "nerdctl", none).use
    assert bypass.decide("on", "nerdctl", none).use
    d = bypass.decide("auto", "nerdctl", none, proc_root="/nonexistent")
    assert not d.use and d.reason == "bypass4netnsd not running"


def test_daemon_found_by_process_name(tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "comm").write_text("bypass4netnsd\n")
    assert bypass.daemon_running({}, proc_root=str(tmp_path)) == "process 4242"
    assert bypass.daemon_running({}, proc_root=str(tmp_path), uid=os.getuid() + 1) == ""


# ------------------------------------------------------------------ through ksi run
def test_run_with_bypass4netnsd_annotates_the_node(emu_env: dict, workdir: Path,
                                                   tmp_path: Path, daemon: Path) -> None:
    out = tmp_path / "snap"
    (workdir / "wl.sh").write_text(SNAPSHOT.format(out=out))
    res = run_ksi(["run", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    assert "slirp4netns" not in res.stderr
    [node] = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert node["annotations"].get("nerdctl/bypass4netns") == "true"
    nerdctl = calls(emu_env, "nerdctl")
    runs = [a for a in nerdctl if a[:1] == ["run"]]
    assert len(runs) == 1 and runs[0][1:3] == ["--annotation", ANN]
    others = [a for a in nerdctl if a[:1] != ["run"]]
    assert others and all(ANN not in a for a in others)
    assert {"info", "ps", "rm"} <= {a[0] for a in others}
    report = json.loads(next(workdir.glob("ksi-report-*.json")).read_text())
    assert report["runtime"]["bypass4netns"]["used"] is True
    assert report["runtime"]["bypass4netns"]["flag"] == "--annotation"
    assert report["runtime"]["warnings"] == []
    assert leftovers(emu_env) == NOTHING


def test_run_with_nerdctl_1_labels_the_node(emu_env: dict, workdir: Path, tmp_path: Path,
                                            daemon: Path) -> None:
    emu_env["KSI_EMU_VERSION_NERDCTL"] = "1.7.7"
    out = tmp_path / "snap"
    (workdir / "wl.sh").write_text(SNAPSHOT.format(out=out))
    res = run_ksi(["run", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    [node] = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert node["labels"].get("nerdctl/bypass4netns") == "true"
    assert node["annotations"] == {}
    runs = [a for a in calls(emu_env, "nerdctl") if a[:1] == ["run"]]
    assert len(runs) == 1 and runs[0][1:3] == ["--label", ANN]
    report = json.loads(next(workdir.glob("ksi-report-*.json")).read_text())
    assert report["runtime"]["bypass4netns"]["flag"] == "--label"
    assert leftovers(emu_env) == NOTHING


def test_run_without_bypass4netnsd_warns_loudly(emu_env: dict, workdir: Path, xdg: Path
                                                ) -> None:
    (workdir / "wl.sh").write_text("#!/bin/bash\ntrue\n")
    res = run_ksi(["run", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    assert bypass.SLIRP_WARNING in res.stderr
    runs = [a for a in calls(emu_env, "nerdctl") if a[:1] == ["run"]]
    assert runs and ANN not in runs[0]
    report = json.loads(next(workdir.glob("ksi-report-*.json")).read_text())
    assert report["runtime"]["bypass4netns"] == {"used": False,
                                                 "reason": "bypass4netnsd not running"}
    assert any(bypass.SLIRP_WARNING in w for w in report["runtime"]["warnings"])


def test_bypass_off_and_podman_write_no_shim(emu_env: dict, workdir: Path, daemon: Path
                                             ) -> None:
    (workdir / "wl.sh").write_text("#!/bin/bash\ntrue\n")
    res = run_ksi(["run", "--bypass4netns", "off", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    assert all(ANN not in a for a in calls(emu_env, "nerdctl"))
    assert bypass.SLIRP_WARNING in res.stderr
    res = run_ksi(["run", "--provider", "podman", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    assert all(ANN not in a for a in calls(emu_env, "podman"))
    assert bypass.SLIRP_WARNING not in res.stderr  # podman: pasta/slirp4netns, its own story
