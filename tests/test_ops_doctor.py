"""`ksi doctor`: every check passes on a good (fake) host and each is forced to fail once,
through the emulator's version knobs and fake /sys, /proc and /etc trees (--root)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
from tests.conftest import run_ksi

UID = os.getuid()


def good_root(base: Path, uid: int = UID) -> Path:
    root = base / "root"
    cg = root / "sys/fs/cgroup"
    (cg / f"user.slice/user-{uid}.slice/user@{uid}.service").mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (cg / f"user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers").write_text(
        "cpuset cpu io memory pids\n")
    (root / "etc").mkdir()
    (root / "etc/subuid").write_text(f"{uid}:100000:65536\n")
    (root / "etc/subgid").write_text(f"{uid}:100000:65536\n")
    (root / "proc/sys/fs/inotify").mkdir(parents=True)
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/fs/inotify/max_user_instances").write_text("8192\n")
    (root / "proc/sys/fs/inotify/max_user_watches").write_text("524288\n")
    (root / "proc/sys/kernel/osrelease").write_text("5.14.0-427.el9.x86_64\n")
    (root / "proc/modules").write_text("".join(
        f"{m} 32768 0 - Live 0x0000000000000000\n"
        for m in ("ip_tables", "ip6_tables", "iptable_nat", "ip6table_nat", "overlay")))
    (root / "proc/4242").mkdir()
    (root / "proc/4242/comm").write_text("bypass4netnsd\n")
    (root / "sys/module/wireguard").mkdir(parents=True)        # loaded
    mods = root / "lib/modules/5.14.0-427.el9.x86_64"          # loadable
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text(
        "kernel/drivers/net/geneve.ko.xz: kernel/net/ipv4/udp_tunnel.ko.xz\n")
    return root


@pytest.fixture
def doc_env(emu_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = dict(emu_env)
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    env["XDG_RUNTIME_DIR"] = str(xdg)
    env["KSI_DOCTOR_ROOT"] = str(good_root(tmp_path))
    return env


def doctor(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, dict[str, dict]]:
    r = run_ksi(["doctor", "--json", *args], env, cwd)
    data = json.loads(r.stdout)
    return r.returncode, {c["name"]: c for c in data["checks"]}


def test_doctor_all_pass_on_a_good_host(doc_env, workdir):
    code, checks = doctor(doc_env, workdir, "--shared-dir", str(workdir))
    bad = {n: c for n, c in checks.items() if c["status"] not in ("pass", "skip")}
    assert bad == {}
    assert code == 0
    plain = run_ksi(["doctor"], doc_env, workdir)
    assert plain.returncode == 0 and "0 fail" in plain.stdout


@pytest.mark.parametrize("tool,version,check,words", [
    ("kind", "0.22.0", "kind version", "kind 0.22.0 is older than 0.23"),
    ("nerdctl", "1.6.2", "nerdctl version", "nerdctl 1.6.2 is older than 1.7"),
    ("containerd", "1.6.30", "containerd version", "containerd 1.6.30 is older than 1.7"),
])
def test_doctor_old_versions_fail(doc_env, workdir, tool, version, check, words):
    env = dict(doc_env, **{f"KSI_EMU_VERSION_{tool.upper()}": version})
    code, checks = doctor(env, workdir)
    assert checks[check]["status"] == "fail"
    assert words in checks[check]["detail"]
    assert checks[check]["fix"]
    assert code == 93


def test_doctor_missing_tool_and_daemon_down(doc_env, workdir, tmp_path):
    # a PATH without kubectl/liqoctl: only kind and nerdctl linked
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    emu = Path(doc_env["PATH"].split(os.pathsep)[0])
    for t in ("kind", "nerdctl"):
        (bin_dir / t).symlink_to(emu / t)
    (bin_dir / "python3").symlink_to(sys.executable)  # the emulator's interpreter
    env = dict(doc_env, PATH=str(bin_dir), KSI_EMU_FAIL="runtime:daemon")
    code, checks = doctor(env, workdir)
    assert checks["kubectl"]["status"] == "fail"
    assert "'kubectl' is not on PATH" in checks["kubectl"]["detail"]
    assert checks["liqoctl"]["status"] == "warn"
    assert checks["runtime reachable"]["status"] == "fail"
    assert "rootless containerd not running" in checks["runtime reachable"]["detail"]
    assert "containerd-rootless-setuptool.sh install" in checks["runtime reachable"]["fix"]
    assert code == 93


def _break(root: Path, what: str) -> None:
    cg = root / "sys/fs/cgroup"
    if what == "cgroup v2":
        (cg / "cgroup.controllers").unlink()
    elif what == "cgroup delegation":
        next(cg.glob("user.slice/*/*/cgroup.controllers")).write_text("cpuset io memory\n")
    elif what == "kernel modules":
        (root / "proc/modules").write_text("overlay 1 0 - Live 0x0\nip_tables 1 0 - Live 0x0\n")
    elif what == "inotify limits":
        (root / "proc/sys/fs/inotify/max_user_instances").write_text("128\n")
    elif what == "kernel for Liqo":
        (root / "proc/sys/kernel/osrelease").write_text("4.18.0-553.el8.x86_64\n")
    elif what == "bypass4netnsd":
        (root / "proc/4242/comm").write_text("bash\n")
    elif what == "kernel for Liqo networking":
        (root / "sys/module/wireguard").rmdir()


@pytest.mark.parametrize("what,status,words,args", [
    ("cgroup v2", "fail", "cgroup v1", ()),
    ("cgroup delegation", "fail", "controllers cpu, pids not delegated", ()),
    ("kernel modules", "fail", "not loaded: ip6_tables, iptable_nat, ip6table_nat", ()),
    ("inotify limits", "fail", "too low for 20 cluster(s)", ("--clusters", "20")),
    ("kernel for Liqo", "warn", "older than 5.10", ()),
    ("bypass4netnsd", "warn", "bypass4netnsd is not running", ()),
    ("kernel for Liqo networking", "warn", "no wireguard kernel module", ()),
])
def test_doctor_host_check_fails(doc_env, workdir, what, status, words, args):
    _break(Path(doc_env["KSI_DOCTOR_ROOT"]), what)
    code, checks = doctor(doc_env, workdir, *args)
    assert checks[what]["status"] == status, checks[what]
    assert words in checks[what]["detail"]
    assert checks[what]["fix"]
    assert code == (93 if status == "fail" else 96)


def test_doctor_liqo_version_chart_and_networking(doc_env, workdir, tmp_path):
    code, checks = doctor(doc_env, workdir)
    assert checks["Liqo"]["status"] == "pass"
    assert "liqoctl v1.0.1, chart fetched by liqoctl, networking module on" \
        in checks["Liqo"]["detail"]
    env = dict(doc_env, KSI_LIQO_VERSION="v1.1.0")
    code, checks = doctor(env, workdir)
    assert checks["Liqo"]["status"] == "warn" and code == 96
    assert "liqoctl is v1.0.1 but liqo_version is v1.1.0" in checks["Liqo"]["detail"]
    env = dict(doc_env, KSI_LIQO_CHART=str(tmp_path / "no-chart"))
    code, checks = doctor(env, workdir)
    assert checks["Liqo"]["status"] == "fail" and code == 93
    assert "has no Chart.yaml" in checks["Liqo"]["detail"] and checks["Liqo"]["fix"]
    (tmp_path / "chart").mkdir()
    (tmp_path / "chart/Chart.yaml").write_text("name: liqo\n")
    code, checks = doctor(dict(env, KSI_LIQO_CHART=str(tmp_path / "chart")), workdir)
    assert checks["Liqo"]["status"] == "pass" and f"chart {tmp_path}/chart" in \
        checks["Liqo"]["detail"]
    env = dict(doc_env, KSI_LIQO_NETWORKING="false")
    (Path(doc_env["KSI_DOCTOR_ROOT"]) / "sys/module/wireguard").rmdir()
    code, checks = doctor(env, workdir)
    assert checks["kernel for Liqo networking"]["status"] == "skip"
    assert "networking module off" in checks["Liqo"]["detail"]


def test_doctor_xdg_runtime_dir_and_shared_dir(doc_env, workdir, tmp_path):
    env = {k: v for k, v in doc_env.items() if k != "XDG_RUNTIME_DIR"}
    code, checks = doctor(env, workdir, "--shared-dir", str(tmp_path / "nope"))
    assert checks["XDG_RUNTIME_DIR"]["status"] == "fail"
    assert "export XDG_RUNTIME_DIR=/run/user/" in checks["XDG_RUNTIME_DIR"]["fix"]
    assert checks["shared directory"]["status"] == "fail"
    assert "does not exist" in checks["shared directory"]["detail"]
    assert code == 93


def test_doctor_no_free_port(doc_env, workdir):
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        env = dict(doc_env, KSI_PORT_RANGE=f"{port}-{port}")
        code, checks = doctor(env, workdir)
    finally:
        s.close()
    assert checks["free ports"]["status"] == "fail"
    assert f"K8S_PORT {port}-{port}: 0 free" in checks["free ports"]["detail"]
    assert code == 93


def test_doctor_subids_for_a_user(tmp_path):
    from ksi.checks import Context, host
    from ksi.runner import Runner

    root = good_root(tmp_path, uid=1777)
    ctx = Context(runner=Runner(), root=root, uid=1777)
    assert host.check_subuid(ctx).status == "pass"
    (root / "etc/subgid").write_text("someoneelse:100000:65536\n")
    c = host.check_subgid(ctx)
    assert c.status == "fail" and "0 subordinate ids" in c.detail
    assert "usermod --add-subuids" in c.fix


def test_run_fails_fast_with_doctors_words(emu_env, workdir):
    """`ksi run` does the cheap checks first: an old kind stops it before anything exists."""
    (workdir / "w.sh").write_text("echo hi\n")
    env = dict(emu_env, KSI_EMU_VERSION_KIND="0.20.0")
    r = run_ksi(["run", "w.sh"], env, workdir)
    assert r.returncode == 93, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "kind 0.20.0 is older than 0.23 (kind's nerdctl provider needs kind >= 0.23)" in last
    assert "-- fix: install a newer kind" in last
    from tests.conftest import NOTHING, leftovers

    assert leftovers(env) == NOTHING


def test_doctor_reports_node_container_cgroups_and_job_mode(tmp_path) -> None:
    """A running node container (emulated) is placed and its limits shown; the job-scoped
    runtime is reported impossible on this machine's cgroups, with the site hook as fix."""
    import subprocess
    import sys

    from tests.conftest import EMU_BIN, ROOT, clean_environ

    env = clean_environ()
    env.update({"PATH": f"{EMU_BIN}:{env['PATH']}", "KSI_EMU_STATE": str(tmp_path),
                "PYTHONPATH": str(ROOT / "src"),
                "KSI_SITE_CONFIG": "/nonexistent", "KSI_USER_CONFIG": "/nonexistent"})
    subprocess.run(["nerdctl", "run", "-d", "--name", "n1-control-plane", "--label",
                    "io.x-k8s.kind.cluster=n1", "kindest/node:v1.34.0"], env=env, check=True,
                   capture_output=True)
    res = subprocess.run([sys.executable, "-m", "ksi", "doctor", "--json"], env=env,
                         capture_output=True, text=True)
    import json

    checks = {c["name"]: c for c in json.loads(res.stdout)["checks"]}
    node = checks["node containers"]
    assert node["status"] in ("pass", "warn") and node["detail"].startswith("n1-control-plane:")
    job = checks["job-scoped runtime"]
    assert job["status"] in ("pass", "skip")
    if job["status"] == "skip":
        assert "runtime_mode=job would need" in job["detail"]
        res = subprocess.run([sys.executable, "-m", "ksi", "doctor", "--json"],
                             env={**env, "KSI_RUNTIME_MODE": "job"}, capture_output=True,
                             text=True)
        job = {c["name"]: c for c in json.loads(res.stdout)["checks"]}["job-scoped runtime"]
        assert job["status"] == "fail" and "ksi-delegate-cgroup" in job["fix"]
