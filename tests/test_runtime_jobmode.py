"""`ksi run --runtime-mode job` through the CLI and the contract emulator (issue 6, part 1).

On this machine (cgroup v1/hybrid) the mode must be refused with the reason. With a fake,
fully delegated cgroup tree (KSI_HOST_ROOT) and a stand-in `containerd-rootless.sh` the
wiring is checked: the private runtime is started as KSI's child, kind and the runtime get
its environment, and it is stopped and its directory removed when the run ends.
What this cannot show (a real rootless containerd inside a real delegated job cgroup) is the
e2e test's job: tests/e2e/test_runtime_e2e.py.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from tests.conftest import EMU_BIN, NOTHING, leftovers, run_ksi
from tests.test_runtime_preflight import TASK, fake_tree

ME = pwd.getpwuid(os.getuid()).pw_name

FAKE_DAEMON = """#!/bin/sh
# stands in for containerd-rootless.sh: records its environment, writes child_pid, waits
env > "$FAKE_OUT/daemon.env"
mkdir -p "$XDG_RUNTIME_DIR/containerd-rootless"
echo $$ > "$XDG_RUNTIME_DIR/containerd-rootless/child_pid"
echo $$ > "$FAKE_OUT/daemon.pid"
trap 'echo TERM >> "$FAKE_OUT/daemon.signals"; exit 0' TERM
while :; do sleep 0.1; done
"""

KIND_SPY = """#!/bin/sh
# records the environment kind runs with, then runs the emulated kind
env > "$FAKE_OUT/kind.env.$1.$$"
exec {real} "$@"
"""


def read_env(path: Path) -> dict[str, str]:
    return dict(ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln)


@pytest.fixture
def script(workdir: Path) -> Path:
    (workdir / "wl.sh").write_text("#!/bin/bash\ntrue\n")
    return workdir / "wl.sh"


@pytest.fixture
def jobenv(emu_env: dict, tmp_path: Path):
    """A fake delegated node: host root, stand-in binaries, a short runtime base dir."""
    root = tmp_path / "host"
    fake_tree(root, uid=os.getuid(), user=ME)
    spy, fake = tmp_path / "spy", tmp_path / "fakebin"
    spy.mkdir()
    fake.mkdir()
    (spy / "kind").write_text(KIND_SPY.format(real=EMU_BIN / "kind"))
    (fake / "containerd-rootless.sh").write_text(FAKE_DAEMON)
    for b in ("containerd", "rootlesskit", "slirp4netns", "runc", "nsenter", "conmon"):
        (fake / b).write_text("#!/bin/sh\nexit 0\n")
    for f in [*spy.iterdir(), *fake.iterdir()]:
        f.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    base = tempfile.mkdtemp(prefix="kj-")  # short: socket paths live below it
    emu_env.update({
        "PATH": f"{spy}{os.pathsep}{emu_env['PATH']}{os.pathsep}{fake}",
        "KSI_HOST_ROOT": str(root), "KSI_JOB_RUNTIME_BASE": base, "FAKE_OUT": str(out),
        "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_NODEID": "0",
        "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NNODES": "1",
        "SLURM_JOB_NODELIST": "node1", "KSI_BYPASS4NETNS": "off",
    })
    yield emu_env, out, Path(base)
    shutil.rmtree(base, ignore_errors=True)


def test_refused_on_this_machine(emu_env: dict, workdir: Path, script: Path) -> None:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("this host runs cgroup v2")
    res = run_ksi(["run", "--runtime-mode", "job", script.name], emu_env, workdir)
    assert res.returncode == 94, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ksi: error: runtime_mode=job refused: the host does not run "
                           "cgroup v2"), last
    assert "contrib/site-hooks/ksi-delegate-cgroup" in last
    assert "--runtime-mode user" in last
    assert not (Path(emu_env["KSI_EMU_STATE"]) / "calls.jsonl").exists() or all(
        json.loads(x)["tool"] != "kind" or json.loads(x)["argv"][:1] != ["create"]
        for x in (Path(emu_env["KSI_EMU_STATE"]) / "calls.jsonl").read_text().splitlines())
    assert leftovers(emu_env) == NOTHING


def test_refused_on_a_fake_tree_without_pids(jobenv, workdir: Path, script: Path,
                                             tmp_path: Path) -> None:
    env, _, base = jobenv
    ctl = tmp_path / "host/sys/fs/cgroup" / TASK.lstrip("/") / "cgroup.controllers"
    ctl.write_text("cpuset cpu memory\n")
    res = run_ksi(["run", "--runtime-mode", "job", script.name], env, workdir)
    assert res.returncode == 94, res.stderr
    assert "controllers pids not available" in res.stderr.splitlines()[-1]
    assert list(base.iterdir()) == []


def test_user_mode_ignores_cgroups(jobenv, workdir: Path, script: Path, tmp_path: Path
                                   ) -> None:
    env, out, base = jobenv
    res = run_ksi(["run", script.name], env, workdir)
    assert res.returncode == 0, res.stderr
    assert not (out / "daemon.env").exists() and list(base.iterdir()) == []


def test_nerdctl_job_runtime_started_used_and_stopped(jobenv, workdir: Path, script: Path
                                                      ) -> None:
    env, out, base = jobenv
    res = run_ksi(["run", "--runtime-mode", "job", script.name], env, workdir)
    assert res.returncode == 0, res.stderr
    R = base / "ksi-4242.0"
    daemon = read_env(out / "daemon.env")
    assert daemon["XDG_RUNTIME_DIR"] == f"{R}/run"
    assert daemon["XDG_DATA_HOME"] == f"{R}/data"
    assert daemon["XDG_CONFIG_HOME"] == f"{R}/cfg"
    assert daemon["CONTAINERD_ROOTLESS_ROOTLESSKIT_FLAGS"] == \
        "--pidns --cgroupns --evacuate-cgroup2=ksi"
    # `kind version` (cheap preflight) runs before the runtime exists; create/delete use it
    kinds = [read_env(p) for p in [*out.glob("kind.env.create.*"),
                                   *out.glob("kind.env.delete.*")]]
    assert len(kinds) == 2 and all(k["XDG_RUNTIME_DIR"] == f"{R}/run" and
                         k["NERDCTL_TOML"] == f"{R}/cfg/nerdctl/nerdctl.toml" for k in kinds)
    # stopped with SIGTERM, gone, directory removed
    assert (out / "daemon.signals").read_text().split() == ["TERM"]
    pid = int((out / "daemon.pid").read_text())
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the stand-in runtime is still alive")
    assert not R.exists()
    report = json.loads(next(workdir.glob("ksi-report-*.json")).read_text())
    rt = report["runtime"]
    assert rt["runtime_mode"] == "job" and rt["task_cgroup"] == TASK
    assert rt["job_runtime"]["dir"] == str(R)
    # emulated nodes are not processes: KSI reports them honestly as not inside the job
    assert rt["node_cgroups"] and all(n["placement"] == "elsewhere"
                                      for n in rt["node_cgroups"].values())
    assert leftovers(env) == NOTHING


def test_nerdctl_toml_uses_cgroupfs(jobenv, workdir: Path, tmp_path: Path) -> None:
    env, out, base = jobenv
    toml = tmp_path / "toml.copy"
    (workdir / "wl.sh").write_text(f"#!/bin/bash\ncp {base}/ksi-4242.0/cfg/nerdctl/nerdctl.toml "
                                   f"{toml}\nstat -c %a {base}/ksi-4242.0 > {toml}.mode\n")
    res = run_ksi(["run", "--runtime-mode", "job", "wl.sh"], env, workdir)
    assert res.returncode == 0, res.stderr
    assert 'cgroup_manager = "cgroupfs"' in toml.read_text()
    assert Path(f"{toml}.mode").read_text().strip() == "700"


def test_podman_job_config_keeps_site_fixes(jobenv, workdir: Path, tmp_path: Path) -> None:
    env, out, base = jobenv
    site = tmp_path / "site-containers.conf"
    site.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", '
                    '"nproc=32768:32768"]\n[engine]\nruntime = "runc"\n')
    env["CONTAINERS_CONF"] = str(site)
    copy = tmp_path / "conf.copy"
    (workdir / "wl.sh").write_text(
        f"#!/bin/bash\ncp {base}/ksi-4242.0/cfg/containers/containers.conf {copy}\n"
        f"cp {base}/ksi-4242.0/cfg/containers/storage.conf {copy}.storage\n")
    res = run_ksi(["run", "--provider", "podman", "--runtime-mode", "job", "wl.sh"], env,
                  workdir)
    assert res.returncode == 0, res.stderr
    try:
        import tomllib  # novermin
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    conf = tomllib.loads(copy.read_text())
    assert conf["engine"] == {"runtime": "runc", "cgroup_manager": "cgroupfs",
                              "events_logger": "file",
                              "tmp_dir": f"{base}/ksi-4242.0/run/libpod/tmp"}
    assert conf["containers"]["default_ulimits"] == ["nofile=20000:20000", "nproc=32768:32768"]
    storage = tomllib.loads(Path(f"{copy}.storage").read_text())["storage"]
    assert storage["graphroot"] == f"{base}/ksi-4242.0/data/storage"
    kinds = [read_env(p) for p in out.glob("kind.env.create.*")]
    assert kinds and all(k["CONTAINERS_CONF"] == f"{base}/ksi-4242.0/cfg/containers/"
                         "containers.conf" for k in kinds)
    assert not (out / "daemon.env").exists()          # podman has no daemon to start
    assert not (base / "ksi-4242.0").exists()


def test_teardown_kills_only_processes_that_name_the_job_dir(tmp_path: Path) -> None:
    """podman's conmon (and a `podman run` Slurm's SIGTERM reached) outlive `podman rm` for a
    moment and re-create storage in the job dir: the teardown kills processes whose command
    line or environment names the dir or a path in it; not a sibling step's (/tmp/ksi-7.1 vs
    /tmp/ksi-7.10), not unrelated ones, not KSI itself or its ancestors."""
    from ksi.runtime.jobruntime import JobRuntime

    rt = JobRuntime("podman", None, job_id="7", step_id="1", base="/tmp")  # type: ignore[arg-type]
    proc = tmp_path / "proc"
    cmdlines = {
        "101": b"conmon\0--exit-dir\0/tmp/ksi-7.1/run/libpod/exits\0",  # in the dir
        "102": b"podman\0--root=/tmp/ksi-7.10/data\0",                   # sibling step
        "103": b"sleep\0/tmp/ksi-7.1\0",                                  # the dir itself
        "104": b"bash\0-c\0echo hello\0",
        str(os.getpid()): b"python\0/tmp/ksi-7.1/x\0",                   # never itself
    }
    environs = {
        "105": b"CONTAINERS_STORAGE_CONF=/tmp/ksi-7.1/cfg/storage.conf\0",  # podman run
        "555": b"CONTAINERS_STORAGE_CONF=/tmp/ksi-7.1/cfg/storage.conf\0",  # our parent
    }
    for pid in {*cmdlines, *environs}:
        (proc / pid).mkdir(parents=True)
        (proc / pid / "cmdline").write_bytes(cmdlines.get(pid, b"x\0"))
        (proc / pid / "environ").write_bytes(environs.get(pid, b"HOME=/\0"))
    (proc / str(os.getpid()) / "stat").write_text(f"{os.getpid()} (py thon) S 555 1 1")
    (proc / "555" / "stat").write_text("555 (bash) S 1 1 1")
    (proc / "self").mkdir()
    killed: list[int] = []
    got = rt._kill_stragglers(str(proc), kill=lambda pid, _sig: killed.append(pid))
    assert sorted(killed) == sorted(got) == [101, 103, 105]
