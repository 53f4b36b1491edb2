"""Offline images and registry mirrors (issue 6, part 2) against the contract emulator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tests.conftest import NOTHING, ROOT, leftovers, run_ksi

sys.path.insert(0, str(ROOT / "tests" / "emulator" / "lib"))
from ksiemu.runtime import make_archive  # noqa: E402

from ksi import images  # noqa: E402

NODE = "kindest/node:v1.31.0"


def calls(env: dict, tool: str | None = None) -> list[dict]:
    p = Path(env["KSI_EMU_STATE"]) / "calls.jsonl"
    recs = [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []
    return [r for r in recs if tool is None or r["tool"] == tool]


def loads(env: dict) -> list[list[str]]:
    return [c["argv"] for c in calls(env, "nerdctl") if c["argv"][:1] == ["load"]]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    d = tmp_path / "cache"
    d.mkdir()
    (d / images.archive_name(NODE)).write_bytes(make_archive([NODE]))
    return d


@pytest.fixture
def script(workdir: Path) -> Path:
    (workdir / "wl.sh").write_text("#!/bin/bash\ntrue\n")
    return workdir / "wl.sh"


# ------------------------------------------------------------------ pure functions
def test_archive_names_and_tags(tmp_path: Path) -> None:
    assert images.archive_name("busybox") == "docker.io_library_busybox_latest.tar"
    assert images.archive_name("ghcr.io/liqotech/gateway/geneve:v1.0.1") == \
        "ghcr.io_liqotech_gateway_geneve_v1.0.1.tar"
    a = tmp_path / "a.tar"
    a.write_bytes(make_archive(["busybox", NODE]))
    assert images.archive_tags(a) == ["docker.io/library/busybox:latest",
                                      "docker.io/kindest/node:v1.31.0"]


def test_liqo_image_list_is_in_one_place() -> None:
    imgs = images.liqo_images("1.0.1")
    assert "ghcr.io/liqotech/liqo-controller-manager:v1.0.1" in imgs
    assert "ghcr.io/liqotech/gateway/wireguard:v1.0.1" in imgs
    assert len(imgs) == len(set(imgs)) == 14


# ------------------------------------------------------------------ node image
@pytest.mark.parametrize("present", ["1", "0"])
def test_node_image_loaded_only_when_missing(emu_env: dict, workdir: Path, cache: Path,
                                             script: Path, present: str) -> None:
    emu_env.update(KSI_EMU_IMAGES_PRESENT=present, KSI_IMAGE_ARCHIVE_DIR=str(cache),
                   KSI_IMAGE=NODE, KSI_BYPASS4NETNS="off")
    res = run_ksi(["run", script.name], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    got = loads(emu_env)
    if present == "1":
        assert got == []
    else:
        assert got == [["load", "-i", str(cache / images.archive_name(NODE))]]
        # kind then found the image and did not pull it
        assert not [c for c in calls(emu_env, "nerdctl") if c["argv"][:1] == ["pull"]]
    report = json.loads(next(workdir.glob("ksi-report-*.json")).read_text())
    assert report["runtime"]["node_image"]["action"] == ("present" if present == "1"
                                                         else "loaded")
    assert leftovers(emu_env) == NOTHING


def test_image_archive_flag_names_the_node_image(emu_env: dict, workdir: Path, cache: Path,
                                                  script: Path) -> None:
    emu_env.update(KSI_EMU_IMAGES_PRESENT="0", KSI_BYPASS4NETNS="off")
    archive = cache / images.archive_name(NODE)
    res = run_ksi(["run", "--image-archive", str(archive), script.name], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    assert loads(emu_env) == [["load", "-i", str(archive)]]
    create = [c["argv"] for c in calls(emu_env, "kind") if c["argv"][:2] == ["create", "cluster"]]
    assert create and create[0][create[0].index("--image") + 1] == "docker.io/kindest/node:v1.31.0"


def test_missing_archive_fails_with_image_failed(emu_env: dict, workdir: Path,
                                                 script: Path) -> None:
    res = run_ksi(["run", "--image-archive", "/nonexistent/x.tar", script.name], emu_env,
                  workdir)
    assert res.returncode == 91, res.stderr
    assert "image archive /nonexistent/x.tar does not exist" in res.stderr.splitlines()[-1]
    assert leftovers(emu_env) == NOTHING


# ------------------------------------------------------------------ preload
def test_preload_runs_kind_load_image_archive(emu_env: dict, workdir: Path, tmp_path: Path,
                                              script: Path) -> None:
    a1, a2 = tmp_path / "app.tar", tmp_path / "db.tar"
    a1.write_bytes(make_archive(["example.org/app:1"]))
    a2.write_bytes(make_archive(["example.org/db:2"]))
    emu_env["KSI_BYPASS4NETNS"] = "off"
    seen = tmp_path / "seen.json"
    # the workload checks the images were in the cluster before it started
    script.write_text(f"#!/bin/bash\ncp \"$KSI_EMU_STATE\"/clusters/*/cluster.json {seen}\n")
    res = run_ksi(["run", "--preload", str(a1), "--preload", str(a2), script.name], emu_env,
                  workdir)
    assert res.returncode == 0, res.stderr
    kload = [c["argv"] for c in calls(emu_env, "kind") if c["argv"][:1] == ["load"]]
    assert [a[:3] for a in kload] == [["load", "image-archive", str(a1)],
                                      ["load", "image-archive", str(a2)]]
    assert all("--name" in a for a in kload)
    assert set(json.loads(seen.read_text())["images_loaded"]) >= {
        "example.org/app:1", "example.org/db:2"}
    assert leftovers(emu_env) == NOTHING


def test_preload_of_a_broken_archive_fails_and_cleans_up(emu_env: dict, workdir: Path,
                                                         tmp_path: Path, script: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_text("not a tar")
    res = run_ksi(["run", "--preload", str(bad), script.name], emu_env, workdir)
    assert res.returncode == 91, res.stderr
    assert leftovers(emu_env) == NOTHING


def test_liqo_archives_are_preloaded_when_cached(emu_env: dict, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "cache"
    d.mkdir()
    for img in images.liqo_images("v1.0.1")[:3]:
        (d / images.archive_name(img)).write_bytes(make_archive([img]))

    class FakeKind:
        loaded: list[str] = []

        def load_archive(self, cluster: str, archive: str) -> None:
            self.loaded.append(archive)

    k = FakeKind()
    done = images.preload_liqo(k, "c", d, "v1.0.1")  # type: ignore[arg-type]
    assert len(done) == 3 and k.loaded == done
    assert images.preload_liqo(k, "c", tmp_path / "empty", "v1.0.1") == []  # type: ignore


def test_only_the_liqo_components_that_run_are_loaded(tmp_path: Path) -> None:
    """A KSI installation never runs telemetry or the uninstaller; without the networking
    module, metric agent or proxy (chart values) their images are not loaded either."""
    assert images.liqo_running() == (
        "liqo-controller-manager", "webhook", "crd-replicator", "virtual-kubelet", "ipam",
        "fabric", "gateway", "gateway/wireguard", "gateway/geneve", "metric-agent",
        "cert-creator", "proxy")
    small = images.liqo_running(False, ["metricAgent.enabled=false", "proxy.enabled=false"])
    assert small == images.LIQO_CORE
    d = tmp_path / "cache"
    d.mkdir()
    for img in images.liqo_images("v1.0.1"):  # the whole release is cached
        (d / images.archive_name(img)).write_bytes(make_archive([img]))

    class FakeKind:
        loaded: list[str] = []

        def load_archive(self, cluster: str, archive: str) -> None:
            self.loaded.append(archive)

    done = images.preload_liqo(FakeKind(), "c", d, "v1.0.1", small)  # type: ignore[arg-type]
    assert [Path(x).name for x in done] == [
        f"ghcr.io_liqotech_{c}_v1.0.1.tar" for c in
        ("liqo-controller-manager", "webhook", "crd-replicator", "virtual-kubelet")]


# ------------------------------------------------------------------ ksi images
def test_images_save_and_ls(emu_env: dict, workdir: Path, tmp_path: Path) -> None:
    d = tmp_path / "cache"
    res = run_ksi(["images", "save", "busybox", "--liqo", "v1.0.1", "--dir", str(d)], emu_env,
                  workdir)
    assert res.returncode == 0, res.stderr
    saves = [c["argv"] for c in calls(emu_env, "nerdctl") if c["argv"][:1] == ["save"]]
    assert len(saves) == 15 and all(s[1] == "-o" for s in saves)
    assert (d / "docker.io_library_busybox_latest.tar").is_file()
    assert (d / images.archive_name("ghcr.io/liqotech/fabric:v1.0.1")).is_file()
    assert not list(d.glob(".*"))  # no temporary files left
    again = run_ksi(["images", "save", "busybox", "--dir", str(d)], emu_env, workdir)
    assert "kept: busybox" in again.stdout
    ls = run_ksi(["images", "ls", "--dir", str(d)], emu_env, workdir)
    assert ls.returncode == 0, ls.stderr
    assert "docker.io/library/busybox:latest" in ls.stdout
    assert len(ls.stdout.splitlines()) == 15


def test_images_save_needs_a_directory(emu_env: dict, workdir: Path) -> None:
    res = run_ksi(["images", "save", "busybox"], emu_env, workdir)
    assert res.returncode == 2 and "image_archive_dir" in res.stderr


# ------------------------------------------------------------------ registry mirrors
def test_registry_mirrors_from_site_config(emu_env: dict, workdir: Path, tmp_path: Path,
                                           script: Path) -> None:
    site = Path(emu_env["KSI_SITE_CONFIG"])
    site.write_text('[ksi]\nregistry_mirrors = "docker.io=https://mirror.site:5000,'
                    'ghcr.io=https://ghcr-mirror.site"\n')
    dry = run_ksi(["run", "--dry-run", script.name], emu_env, workdir)
    assert dry.returncode == 0, dry.stderr
    assert 'registry.mirrors."docker.io"' in dry.stdout
    assert 'endpoint = ["https://mirror.site:5000"]' in dry.stdout
    emu_env["KSI_BYPASS4NETNS"] = "off"
    seen = tmp_path / "seen.json"
    script.write_text(f"#!/bin/bash\ncp \"$KSI_EMU_STATE\"/clusters/*/cluster.json {seen}\n")
    res = run_ksi(["run", script.name], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    patches = "\n".join(json.loads(seen.read_text())["containerdConfigPatches"])
    assert '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."ghcr.io"]' in patches
    assert 'endpoint = ["https://ghcr-mirror.site"]' in patches
