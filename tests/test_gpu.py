"""GPUs (issue 17) with a fake GPU layout: tests/gpu/fake-nvidia-smi on PATH (the layout
from FAKE_NVIDIA_SMI_LAYOUT), fake device files under a root tree, a recording runner for
the node step. No GPU is needed; the real-GPU test is tests/e2e/test_gpu_e2e.py."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest
from tests.conftest import ROOT, clean_environ

from ksi.errors import Exit, GpuSetupFailed, GpuUnavailable
from ksi.gpu import describe, discovery, mode_of, node
from ksi.gpu.discovery import Discovery, Gpu, GpuRequest, discover
from ksi.runner import Result, Runner

FAKE = ROOT / "tests" / "gpu" / "fake-nvidia-smi"
UUIDS = [f"GPU-{i}{i}{i}{i}aaaa-0000-1111-2222-33334444555{i}" for i in range(4)]
MIG = ["MIG-aaaa0000-1111-2222-3333-444455556666", "MIG-bbbb0000-1111-2222-3333-444455556666"]


def gpu(i: int, minor: Optional[int] = None, **kw: Any) -> dict[str, Any]:
    return {"uuid": UUIDS[i], "bus_id": f"00000000:{0x17 + i:02X}:00.0",
            "minor": i if minor is None else minor, **kw}


FOUR = {"driver": "550.54.15", "gpus": [gpu(0), gpu(1), gpu(2), gpu(3)]}


@pytest.fixture
def smi(tmp_path: Path) -> Any:
    """A Runner whose PATH has the fake nvidia-smi, and a setter for the layout."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "nvidia-smi").symlink_to(FAKE)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}

    class Fake:
        runner = Runner(extra_env=env)
        environ = env

        def layout(self, lay: dict[str, Any]) -> None:
            env["FAKE_NVIDIA_SMI_LAYOUT"] = json.dumps(lay)
            self.runner.extra_env["FAKE_NVIDIA_SMI_LAYOUT"] = json.dumps(lay)

    # Runner.which reads os.environ's PATH unless given one: give it ours
    Fake.runner.which = lambda program, env=None: __import__("shutil").which(  # type: ignore
        program, path=Fake.environ["PATH"])
    return Fake()


def slurm(**kw: str) -> GpuRequest:
    return GpuRequest.from_environ({"SLURM_JOB_ID": "42", **kw})


# ------------------------------------------------------------------ pure parsing
def test_parse_query_and_driver() -> None:
    text = (f"0, {UUIDS[0]}, 00000000:17:00.0, 0, NVIDIA A100-SXM4-40GB, 550.54.15\n"
            f"1, {UUIDS[1]}, 00000000:65:00.0, [N/A], NVIDIA A100-SXM4-40GB, 550.54.15\n\n")
    gpus, driver = discovery.parse_query(text)
    assert driver == "550.54.15"
    assert [g.uuid for g in gpus] == UUIDS[:2]
    assert gpus[0].minor == 0 and gpus[0].device_files == ("/dev/nvidia0",)
    assert gpus[1].minor is None and gpus[1].device_files == ()
    assert discovery.parse_query("No devices were found\n") == ([], "")


def test_parse_list_with_mig_lines() -> None:
    text = (f"GPU 0: NVIDIA A100-SXM4-40GB (UUID: {UUIDS[0]})\n"
            f"  MIG 1g.5gb     Device  0: (UUID: {MIG[0]})\n"
            f"  MIG 1g.5gb     Device  1: (UUID: {MIG[1]})\n"
            f"GPU 1: NVIDIA A100-SXM4-40GB (UUID: {UUIDS[1]})\n")
    assert discovery.parse_list(text) == [("0", UUIDS[0], MIG), ("1", UUIDS[1], [])]


@pytest.mark.parametrize(("value", "tokens"), [
    ("0,2", ["0", "2"]), ("0-3", ["0", "1", "2", "3"]), ("1,3-4", ["1", "3", "4"]),
    ("", []), ("NoDevFiles", []), ("-1", []), (None, []),
    (f"{UUIDS[0]},{MIG[0]}", [UUIDS[0], MIG[0]])])
def test_parse_ids(value: Optional[str], tokens: list[str]) -> None:
    assert discovery.parse_ids(value) == tokens


def test_mig_minors_give_the_cap_device_files() -> None:
    caps = discovery.parse_mig_minors("config 1\nmonitor 2\ngpu0/gi1/access 12\n"
                                      "gpu0/gi1/ci0/access 13\ngpu1/gi1/access 141\n")
    assert caps["gpu0/gi1/ci0/access"] == 13
    assert discovery.mig_cap_files(caps, 0, 1, 0) == ["/dev/nvidia-caps/nvidia-cap12",
                                                      "/dev/nvidia-caps/nvidia-cap13"]
    assert discovery.mig_cap_files(caps, 3, 1, 0) == []


def test_select_is_pure_and_never_picks_a_gpu_slurm_did_not_give() -> None:
    seen = [Gpu(str(i), UUIDS[i], minor=i, device_files=(f"/dev/nvidia{i}",)) for i in range(4)]
    job, how, notes = discovery.select(seen, slurm(SLURM_STEP_GPUS="2",
                                                   CUDA_VISIBLE_DEVICES=f"{UUIDS[1]},{UUIDS[2]}"))
    assert [g.uuid for g in job] == [UUIDS[2]]
    assert "not one of this job's GPUs" in notes[0] and UUIDS[1] in notes[0]
    assert "SLURM_STEP_GPUS=2" in how


# ------------------------------------------------------------------ discovery with the fake
def test_zero_gpus_and_no_request_is_a_cpu_job(smi: Any) -> None:
    smi.layout({"gpus": []})
    d = discover(smi.runner, slurm())
    assert d.job == [] and d.others == [] and d.device_files() == []


def test_one_gpu(smi: Any) -> None:
    smi.layout({"gpus": [gpu(0)]})
    d = discover(smi.runner, slurm(SLURM_JOB_GPUS="0", CUDA_VISIBLE_DEVICES="0"))
    assert d.uuids == [UUIDS[0]] and d.others == []
    assert d.driver_version == "550.54.15"
    assert d.device_files() == ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm",
                                "/dev/nvidia-uvm-tools"]


def test_four_gpus_without_device_constraint_maps_global_ids_by_minor(smi: Any) -> None:
    # nvidia-smi sees all 4; the PCI order (index) differs from the minor numbers here
    smi.layout({"gpus": [gpu(0, minor=2), gpu(1, minor=0), gpu(2, minor=3), gpu(3, minor=1)]})
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="1,3", CUDA_VISIBLE_DEVICES="1,3"))
    assert sorted(d.uuids) == sorted([UUIDS[3], UUIDS[2]])        # minors 1 and 3
    assert sorted(g.uuid for g in d.others) == sorted([UUIDS[0], UUIDS[1]])
    assert sorted(d.foreign_device_files()) == ["/dev/nvidia0", "/dev/nvidia2"]


def test_constrained_step_renumbers_and_discovery_maps_by_uuid(smi: Any) -> None:
    # ConstrainDevices: the step sees only minors 1 and 3, re-indexed 0 and 1
    smi.layout({**FOUR, "visible": [UUIDS[1], UUIDS[3]]})
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="1,3", CUDA_VISIBLE_DEVICES="0,1"))
    assert d.uuids == [UUIDS[1], UUIDS[3]]
    assert [g.index for g in d.job] == ["0", "1"] and [g.minor for g in d.job] == [1, 3]
    assert [f for g in d.job for f in g.device_files] == ["/dev/nvidia1", "/dev/nvidia3"]
    one = discover(smi.runner, slurm(SLURM_STEP_GPUS="1,3", CUDA_VISIBLE_DEVICES="1"))
    assert one.uuids == [UUIDS[3]]      # position 1 among the step's GPUs, not global GPU 1


def test_cuda_visible_devices_with_uuids(smi: Any) -> None:
    smi.layout(FOUR)
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="0,2",
                                   CUDA_VISIBLE_DEVICES=f"{UUIDS[2]},{UUIDS[0]}"))
    assert d.uuids == [UUIDS[2], UUIDS[0]]
    prefix = discover(smi.runner, GpuRequest(cuda_visible=UUIDS[3][:12]))  # no Slurm
    assert prefix.uuids == [UUIDS[3]]


def test_gpu_of_another_job_is_never_selected(smi: Any) -> None:
    smi.layout(FOUR)
    with pytest.raises(GpuUnavailable, match="none is usable"):   # only another job's UUID
        discover(smi.runner, slurm(SLURM_STEP_GPUS="2", CUDA_VISIBLE_DEVICES=UUIDS[1]))
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="2",
                                   CUDA_VISIBLE_DEVICES=f"{UUIDS[1]},{UUIDS[2]}"))
    assert d.uuids == [UUIDS[2]]
    assert {g.uuid for g in d.others} == {UUIDS[0], UUIDS[1], UUIDS[3]}
    assert any(UUIDS[1] in n for n in d.notes)


def test_mig_devices_by_uuid(smi: Any) -> None:
    smi.layout({"gpus": [gpu(0, mig=MIG), gpu(1)]})
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="0", CUDA_VISIBLE_DEVICES=MIG[1]))
    assert d.uuids == [MIG[1]]
    mig = d.job[0]
    assert mig.is_mig and mig.parent == UUIDS[0] and mig.device_files == ("/dev/nvidia0",)
    assert "/dev/nvidia-caps" in d.device_files()
    assert {g.uuid for g in d.others} == {MIG[0], UUIDS[1]}   # the sibling MIG, GPU 1
    assert d.foreign_device_files() == ["/dev/nvidia1"]       # the parent's file stays


def test_mig_gres_ids_are_not_minor_numbers(smi: Any) -> None:
    # Slurm's MIG gres: SLURM_STEP_GPUS=3 is a MIG index; the MIG UUID decides
    smi.layout({"gpus": [gpu(0, mig=MIG)]})
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="3", CUDA_VISIBLE_DEVICES=MIG[0]))
    assert d.uuids == [MIG[0]] and "MIG" in d.selected_by


def test_cuda_index_outside_the_job_is_dropped(smi: Any) -> None:
    smi.layout(FOUR)                      # no device constraint: the step sees all four
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="1,2", CUDA_VISIBLE_DEVICES="2,3"))
    assert d.uuids == [UUIDS[2]]          # CUDA index 3 is not one of the job's
    assert any("'3'" in n for n in d.notes)


def test_legacy_mig_form_uses_the_mig_minors(smi: Any) -> None:
    smi.layout({"gpus": [gpu(0)]})
    token = f"MIG-{UUIDS[0]}/1/0"
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="0", CUDA_VISIBLE_DEVICES=token),
                 caps_text="gpu0/gi1/access 12\ngpu0/gi1/ci0/access 13\n")
    assert d.uuids == [token]
    assert d.job[0].device_files == ("/dev/nvidia0", "/dev/nvidia-caps/nvidia-cap12",
                                     "/dev/nvidia-caps/nvidia-cap13")


def test_nvidia_smi_missing(smi: Any) -> None:
    (Path(smi.environ["PATH"].split(":")[0]) / "nvidia-smi").unlink()
    smi.runner.extra_env["PATH"] = smi.environ["PATH"] = smi.environ["PATH"].split(":")[0]
    assert discover(smi.runner, slurm()).job == []                   # CPU job: fine
    with pytest.raises(GpuUnavailable) as exc:
        discover(smi.runner, slurm(SLURM_STEP_GPUS="0"))
    assert exc.value.code == Exit.GPU_UNAVAILABLE == 97
    assert "nvidia-smi" in exc.value.cause and "NVIDIA driver" in exc.value.fix


def test_nvidia_smi_failing_names_the_driver(smi: Any) -> None:
    smi.layout({"fail": "", "exit": 9})
    with pytest.raises(GpuUnavailable) as exc:
        discover(smi.runner, slurm(SLURM_JOB_GPUS="0"))
    assert "exit 9" in exc.value.cause and "NVIDIA driver" in exc.value.cause
    assert "driver" in exc.value.line()
    assert discover(smi.runner, slurm()).job == []      # no GPUs expected: no failure


def test_slurm_gpus_but_none_visible(smi: Any) -> None:
    smi.layout({"gpus": []})
    with pytest.raises(GpuUnavailable, match="Slurm gave this step GPUs"):
        discover(smi.runner, slurm(SLURM_STEP_GPUS="0"))


def test_slurm_ids_that_match_nothing(smi: Any) -> None:
    smi.layout(FOUR)
    with pytest.raises(GpuUnavailable, match="cannot match"):
        discover(smi.runner, slurm(SLURM_STEP_GPUS="5,6"))


def test_modes_none_and_required(smi: Any) -> None:
    smi.layout(FOUR)
    assert discover(smi.runner, slurm(SLURM_STEP_GPUS="0"), mode="none").job == []
    smi.layout({"gpus": []})
    with pytest.raises(GpuUnavailable) as exc:      # "--gpus forced" without GPUs: 97
        discover(smi.runner, slurm(), mode="required")
    assert exc.value.code == 97 and "gpus = required" in exc.value.cause
    assert mode_of(object()) == "auto"
    assert mode_of(type("S", (), {"gpus": "none"})()) == "none"


def test_local_run_sees_every_gpu(smi: Any) -> None:
    smi.layout(FOUR)
    d = discover(smi.runner, GpuRequest())
    assert d.uuids == UUIDS and "no Slurm" in d.selected_by


def test_device_files_under_a_root_tree(smi: Any, tmp_path: Path) -> None:
    smi.layout(FOUR)
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    for name in ("nvidia1", "nvidiactl", "nvidia-uvm"):
        make_device(root / "dev" / name, 195 if name != "nvidia-uvm" else 511,
                    1 if name == "nvidia1" else 255)
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="1"), root=str(root))
    assert d.missing_files == []                            # uvm-tools is optional
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="2"), root=str(root))
    assert d.missing_files == ["/dev/nvidia2"]


def make_device(path: Path, major: int, minor: int) -> None:
    """A character device as root (mknod c 195 N), else a plain file."""
    if os.geteuid() == 0:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    else:
        path.write_text("")


def test_mknod_device_files_as_root(smi: Any, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod of character devices needs root")
    make_device(tmp_path / "nvidia0", 195, 0)
    st = (tmp_path / "nvidia0").stat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 195


# ------------------------------------------------------------------ dry run and report
def test_dry_run_lists_passed_and_not_passed(smi: Any) -> None:
    smi.layout(FOUR)
    d = discover(smi.runner, slurm(SLURM_STEP_GPUS="1,2"))
    text = "\n".join(describe.dry_run_lines(d))
    assert "2 passed into the node" in text
    for i in (1, 2):
        assert f"pass     index {i}  {UUIDS[i]}" in text and f"/dev/nvidia{i}" in text
    for i in (0, 3):
        assert f"NOT      index {i}  {UUIDS[i]}" in text
    assert "removed from the node: /dev/nvidia0, /dev/nvidia3" in text
    assert describe.dry_run_lines(d, "none")[0].startswith("gpus: none")
    assert describe.dry_run_lines(Discovery(selected_by="x")) == ["gpus: none found (x)"]


def test_report_module_runs_from_the_checkout(smi: Any) -> None:
    smi.layout(FOUR)
    env = {**clean_environ(), **smi.environ, "PYTHONPATH": str(ROOT / "src"),
           "SLURM_JOB_ID": "7", "SLURM_STEP_GPUS": "3"}
    res = subprocess.run(["python3", "-m", "ksi.gpu", "--report"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert f"job {UUIDS[3]} index=3 minor=3" in res.stdout
    assert res.stdout.count("\nother ") == 3
    res = subprocess.run(["python3", "-m", "ksi.gpu", "--json"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert json.loads(res.stdout)["job"][0]["uuid"] == UUIDS[3]


# ------------------------------------------------------------------ check-discovery.sh
def run_check(smi: Any, **extra: str) -> subprocess.CompletedProcess:
    env = {**clean_environ(), **smi.environ, **extra}
    return subprocess.run(["bash", str(ROOT / "tests" / "gpu" / "check-discovery.sh")],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_check_discovery_script_agrees_with_nvidia_smi(smi: Any) -> None:
    smi.layout({**FOUR, "gpus": [gpu(0), gpu(1, mig=MIG)]})
    res = run_check(smi, SLURM_JOB_ID="9", SLURM_STEP_GPUS="0,1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "driver 550.54.15" in res.stdout and UUIDS[1] in res.stdout
    assert "check-discovery: OK" in res.stdout


def test_check_discovery_script_fails_on_a_mismatch(smi: Any) -> None:
    smi.layout({**FOUR, "list_extra": [{"uuid": "GPU-ffffffff-0000-0000-0000-000000000000"}]})
    res = run_check(smi)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "MISMATCH" in res.stdout and "GPU-ffffffff" in res.stdout


def test_check_discovery_script_reports_a_failing_driver(smi: Any) -> None:
    smi.layout({"fail": "", "exit": 9})
    res = run_check(smi, SLURM_JOB_ID="9", SLURM_STEP_GPUS="0")
    assert res.returncode != 0 and "driver" in (res.stdout + res.stderr)


# ------------------------------------------------------------------ node and pods
def job_of(n: int, others: int = 0) -> Discovery:
    job = [Gpu(str(i), UUIDS[i], minor=i, device_files=(f"/dev/nvidia{i}",)) for i in range(n)]
    oth = [Gpu(str(i), UUIDS[i], minor=i, device_files=(f"/dev/nvidia{i}",))
           for i in range(n, n + others)]
    return Discovery(job=job, others=oth, driver_version="550.54.15",
                     control_files=list(discovery.CONTROL_FILES) if job else [],
                     selected_by="test")


def test_kind_config_gets_the_job_gpus_by_uuid() -> None:
    base = {"nodes": [{"role": "control-plane",
                       "extraMounts": [{"hostPath": "/w", "containerPath": "/app"}]}]}
    cfg = node.add_to_kind_config(base, job_of(2, others=2))
    mounts = cfg["nodes"][0]["extraMounts"]
    assert mounts[0]["containerPath"] == "/app"
    assert mounts[1:] == [{"hostPath": "/dev/null", "containerPath":
                           f"/var/run/nvidia-container-devices/{u}"} for u in UUIDS[:2]]
    assert cfg["nodes"][0]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert len(base["nodes"][0]["extraMounts"]) == 1              # a copy
    assert node.add_to_kind_config(base, job_of(0)) == base


def test_node_commands_remove_other_gpus_by_minor() -> None:
    cmds = node.node_commands(job_of(1, others=3))
    argvs = [a for _w, a in cmds]
    assert ["nvidia-ctk", "runtime", "configure", "--runtime=containerd",
            "--config-source=file", "--set-as-default"] in argvs
    assert ["systemctl", "restart", "containerd"] in argvs
    removal = next(a for w, a in cmds if w.startswith("remove"))
    assert all(f"'/dev/nvidia{i}'" in removal[2] for i in (1, 2, 3))
    assert "'/dev/nvidia0'" not in removal[2]
    assert argvs[-1] == ["nvidia-smi", "-L"]
    assert not any("no-cgroups" in " ".join(a) for a in argvs)
    rootless = [a for _w, a in node.node_commands(job_of(1), rootless=True)]
    assert ["nvidia-ctk", "config", "--set", "nvidia-container-cli.no-cgroups=true",
            "--in-place"] in rootless


def test_manifests() -> None:
    items = json.loads(node.manifests_json())["items"]
    assert items[0] == {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                        "metadata": {"name": "nvidia"}, "handler": "nvidia"}
    ds = items[1]["spec"]["template"]["spec"]
    assert ds["runtimeClassName"] == "nvidia"
    ctr = ds["containers"][0]
    assert ctr["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
    assert ctr["imagePullPolicy"] == "Never"
    assert {"name": "DEVICE_ID_STRATEGY", "value": "uuid"} in ctr["env"]


def test_manifests_validate_against_the_kubernetes_schema() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    for item in json.loads(node.manifests_json())["items"]:
        kv.validate(item, "1.34", strict=True)


class FakeRunner:
    """Records argv; answers `nvidia-smi -L` with a listing."""

    def __init__(self, listing: str) -> None:
        self.listing = listing
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], **kw: Any) -> Result:
        self.calls.append(list(argv))
        out = self.listing if argv[-2:] == ["nvidia-smi", "-L"] else ""
        return Result(list(argv), 0, out, "", 0.0)


class FakeKubectl:
    def __init__(self, allocatable: Optional[str]) -> None:
        self.allocatable = allocatable
        self.calls: list[tuple[str, ...]] = []
        self.applied = ""

    def run(self, *args: str, input: Optional[str] = None, **kw: Any) -> Result:  # noqa: A002
        self.calls.append(args)
        if args[0] == "apply":
            self.applied = input or ""
        alloc = {"nvidia.com/gpu": self.allocatable} if self.allocatable else {}
        out = json.dumps({"items": [{"status": {"allocatable": alloc}}]})
        return Result(list(args), 0, out, "", 0.0)


class FakeCluster:
    def __init__(self, allocatable: Optional[str] = "2") -> None:
        self.plan = type("P", (), {"cluster": "ksi-42-0-0-abcd"})()
        self.provider = type("Prov", (), {
            "binary": "podman",
            "node_containers": staticmethod(lambda name: [f"{name}-control-plane"])})()
        self.loaded: list[tuple[str, str]] = []
        self.kind = type("K", (), {"load_archive": lambda _s, n, a: self.loaded.append((n, a))})()
        self.kubectl = FakeKubectl(allocatable)


def listing(uuids: list[str]) -> str:
    return "".join(f"GPU {i}: NVIDIA A100 (UUID: {u})\n" for i, u in enumerate(uuids))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    from ksi import images

    d = tmp_path / "cache"
    d.mkdir()
    (d / images.archive_name(node.DEVICE_PLUGIN_IMAGE)).write_bytes(b"x")
    return d


def test_gpu_setup_runs_the_node_commands_and_the_plugin(cache: Path) -> None:
    setup = node.GpuSetup(job_of(2, others=1), archive_dir=str(cache))
    cluster, runner = FakeCluster("2"), FakeRunner(listing(UUIDS[:2]))
    setup.run(cluster, runner)  # type: ignore[arg-type]
    assert runner.calls[0][:3] == ["podman", "exec", "ksi-42-0-0-abcd-control-plane"]
    assert [c[3:] for c in runner.calls] == [a for _w, a in node.node_commands(setup.discovery)]
    assert cluster.loaded == [("ksi-42-0-0-abcd", str(cache / os.listdir(cache)[0]))]
    assert "nvidia-device-plugin-daemonset" in cluster.kubectl.applied
    assert setup.done == ["node ksi-42-0-0-abcd-control-plane", "device plugin"]
    lines = setup.describe("ksi-42-0-0-abcd", "podman", "ksi-42-0-0-abcd-control-plane")
    assert lines[0].startswith("podman exec ksi-42-0-0-abcd-control-plane sh -c")
    assert any("kind load image-archive" in ln for ln in lines)
    setup.undo()
    assert setup.done == []


def test_gpu_setup_without_gpus_or_with_none_does_nothing(cache: Path) -> None:
    cluster, runner = FakeCluster(), FakeRunner("")
    node.GpuSetup(job_of(0), archive_dir=str(cache)).run(cluster, runner)  # type: ignore
    node.GpuSetup(job_of(2), archive_dir=str(cache), mode="none").run(cluster, runner)  # type: ignore
    assert runner.calls == [] and cluster.kubectl.calls == []
    assert node.GpuSetup(job_of(0)).describe() == []


def test_device_plugin_image_missing_from_the_cache_is_98(tmp_path: Path) -> None:
    cluster, runner = FakeCluster(), FakeRunner("")
    for where in (str(tmp_path), ""):
        with pytest.raises(GpuSetupFailed) as exc:
            node.GpuSetup(job_of(1), archive_dir=where).run(cluster, runner)  # type: ignore
        assert exc.value.code == Exit.GPU_SETUP_FAILED == 98
        assert node.DEVICE_PLUGIN_IMAGE in exc.value.cause
        assert "ksi images save" in exc.value.fix
    assert runner.calls == []                          # nothing touched


def test_preflight_and_the_step_from_settings(cache: Path, tmp_path: Path) -> None:
    settings = type("S", (), {"image_archive_dir": str(cache), "gpus": "auto"})()
    step = node.gpu_step(job_of(1), settings)
    assert step.active and step.archive_dir == str(cache)
    assert step.rootless == (os.geteuid() != 0)
    step.preflight()                                      # the archive is there
    settings.image_archive_dir = str(tmp_path / "empty")  # type: ignore[attr-defined]
    with pytest.raises(GpuSetupFailed):
        node.gpu_step(job_of(1), settings).preflight()
    settings.gpus = "none"                                # type: ignore[attr-defined]
    node.gpu_step(job_of(1), settings).preflight()        # off: nothing to check


def test_node_that_sees_another_jobs_gpu_fails_the_setup(cache: Path) -> None:
    setup = node.GpuSetup(job_of(1, others=1), archive_dir=str(cache))
    with pytest.raises(GpuSetupFailed, match=f"not the job's: {UUIDS[1]}"):
        setup.run(FakeCluster(), FakeRunner(listing(UUIDS[:2])))  # type: ignore[arg-type]


def test_plugin_that_never_registers_times_out_with_98(cache: Path) -> None:
    now = [0.0]
    setup = node.GpuSetup(job_of(2), archive_dir=str(cache), timeout=5,
                          clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    with pytest.raises(GpuSetupFailed, match="does not advertise 2 nvidia.com/gpu"):
        setup.run(FakeCluster(None), FakeRunner(listing(UUIDS[:2])))  # type: ignore[arg-type]
    assert now[0] >= 5


def test_the_device_plugin_image_is_in_the_offline_list() -> None:
    from ksi import images

    assert images.gpu_images() == [node.DEVICE_PLUGIN_IMAGE]
    assert "Never" in node.manifests_json()


def test_images_save_gpu(emu_env: dict, workdir: Path, tmp_path: Path) -> None:
    from tests.conftest import run_ksi

    from ksi import images

    d = tmp_path / "cache"
    res = run_ksi(["images", "save", "--gpu", "--dir", str(d)], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    assert (d / images.archive_name(node.DEVICE_PLUGIN_IMAGE)).is_file()


# ------------------------------------------------------------------ ksi doctor's GPU checks
def doctor_ctx(smi: Any, root: Path, *, uid: int = 4242, mode: str = "user",
               tools: tuple[str, ...] = ("nvidia-ctk", "nvidia-container-cli"),
               **environ: str) -> Any:
    from ksi.checks.model import Context

    bindir = Path(smi.environ["PATH"].split(":")[0])
    for t in tools:
        (bindir / t).write_text("#!/bin/sh\nexit 0\n")
        (bindir / t).chmod(0o755)
    env = {**smi.environ, "PATH": str(bindir), **environ}
    return Context(runner=smi.runner, root=root, environ=env, uid=uid, runtime_mode=mode)


def fake_host(root: Path, *, config: Optional[str], gpus: int = 4, mode: int = 0o666) -> Path:
    (root / "dev").mkdir(parents=True, exist_ok=True)
    for name in [f"nvidia{i}" for i in range(gpus)] + ["nvidiactl", "nvidia-uvm"]:
        (root / "dev" / name).write_text("")
        (root / "dev" / name).chmod(mode)
    if config is not None:
        (root / "etc/nvidia-container-runtime").mkdir(parents=True, exist_ok=True)
        (root / "etc/nvidia-container-runtime/config.toml").write_text(config)
    return root


GOOD_CONFIG = ("accept-nvidia-visible-devices-as-volume-mounts = true\n"
               "[nvidia-container-cli]\nno-cgroups = true\n")


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name.removeprefix("gpu: "): c for c in checks}


def cache_with_plugin(tmp_path: Path) -> Path:
    from ksi import images

    d = tmp_path / "plugin-cache"
    d.mkdir(exist_ok=True)
    (d / images.archive_name(node.DEVICE_PLUGIN_IMAGE)).write_bytes(b"x")
    return d


def test_doctor_gpu_checks_pass_on_a_good_host(smi: Any, tmp_path: Path) -> None:
    from ksi.gpu.checks import gpu_checks

    smi.layout(FOUR)
    ctx = doctor_ctx(smi, fake_host(tmp_path / "r", config=GOOD_CONFIG), mode="job",
                     SLURM_JOB_ID="5", SLURM_STEP_GPUS="0,1")
    ctx.image_archive_dir = str(cache_with_plugin(tmp_path))
    c = by_name(gpu_checks(ctx))
    assert [x.status for x in c.values()] == ["pass"] * 6, c
    assert "2 job GPU(s)" in c["nvidia-smi"].detail and "driver 550.54.15" in c["nvidia-smi"].detail


def test_doctor_names_each_gpu_problem(smi: Any, tmp_path: Path) -> None:
    from ksi.gpu.checks import gpu_checks

    smi.layout(FOUR)
    root = fake_host(tmp_path / "r", config="[nvidia-container-cli]\n", mode=0o660)
    c = by_name(gpu_checks(doctor_ctx(smi, root, tools=("nvidia-ctk",), SLURM_JOB_ID="5",
                                      SLURM_STEP_GPUS="3")))
    assert c["container toolkit"].status == "fail" and c["container toolkit"].code == 98
    assert "nvidia-container-cli" in c["container toolkit"].detail
    cfg = c["toolkit config"]
    assert cfg.status == "fail" and "accept-nvidia-visible-devices-as-volume-mounts" in cfg.detail
    assert "no-cgroups" in cfg.detail and "no-cgroups=true" in cfg.fix
    files = c["device files"]
    assert files.status == "fail" and "/dev/nvidia3 not read/writable" in files.detail
    assert "/dev/nvidia0" not in files.detail             # another job's file: not checked
    warn = c["device constraint"]
    assert warn.status == "warn" and "does not limit" in warn.detail and "3 other" in warn.detail
    images = c["device plugin images"]
    assert images.status == "fail" and images.code == 98
    assert node.DEVICE_PLUGIN_IMAGE in images.detail and "ksi images save --gpu" in images.fix


def test_doctor_gpus_in_the_job_but_no_nvidia_smi(smi: Any, tmp_path: Path) -> None:
    from ksi.gpu.checks import gpu_checks

    (Path(smi.environ["PATH"].split(":")[0]) / "nvidia-smi").unlink()
    c = by_name(gpu_checks(doctor_ctx(smi, tmp_path, SLURM_JOB_ID="5", SLURM_JOB_GPUS="0")))
    assert c["nvidia-smi"].status == "fail" and c["nvidia-smi"].code == 97
    assert "NVIDIA driver" in c["nvidia-smi"].fix
    c = by_name(gpu_checks(doctor_ctx(smi, tmp_path, tools=(), SLURM_JOB_ID="5")))
    assert {x.status for x in c.values()} == {"skip"}      # a CPU job: nothing to say


def test_doctor_reads_the_toolkit_config_where_the_toolkit_does(smi: Any, tmp_path: Path
                                                               ) -> None:
    from ksi.gpu.checks import check_toolkit_config, toolkit_config_path

    assert toolkit_config_path({}) == "/etc/nvidia-container-runtime/config.toml"
    assert toolkit_config_path({"XDG_CONFIG_HOME": "/home/a/.config"}) == \
        "/home/a/.config/nvidia-container-runtime/config.toml"
    assert toolkit_config_path({"NVIDIA_CTK_CONFIG_FILE_PATH": "/x.toml"}) == "/x.toml"
    smi.layout(FOUR)
    root = tmp_path / "r"
    (root / "cfg/nvidia-container-runtime").mkdir(parents=True)
    (root / "cfg/nvidia-container-runtime/config.toml").write_text(GOOD_CONFIG)
    ctx = doctor_ctx(smi, root, XDG_CONFIG_HOME="/cfg")
    assert check_toolkit_config(ctx).status == "pass"
    volume_only = "accept-nvidia-visible-devices-as-volume-mounts = true\n"
    root_ctx = doctor_ctx(smi, fake_host(tmp_path / "r2", config=volume_only), uid=0)
    assert check_toolkit_config(root_ctx).status == "pass"   # no-cgroups: rootless only
