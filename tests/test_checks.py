"""ksi.checks: kernel modules found however the kernel has them (loaded, built in by
modules.builtin or by its config, loadable, absent), the Slurm epilog check, the run's
preflight, and `ksi doctor --admin-script` (bash that parses, names each failing check's
remedy, is idempotent where it edits files, and says so when nothing is needed)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.conftest import run_ksi
from tests.test_ops_doctor import UID, _break, good_root

from ksi.checks import FAIL, PASS, SKIP, WARN, Context, host, kmod, runtime
from ksi.checks.render import admin_script
from ksi.errors import CommandFailed, Exit, KsiError, ToolMissing
from ksi.runner import Runner

REL = "5.14.0-427.el9.x86_64"
IPT = ("ip_tables", "ip6_tables", "iptable_nat", "ip6table_nat")
CONFIG = {"ip_tables": "IP_NF_IPTABLES", "ip6_tables": "IP6_NF_IPTABLES",
          "iptable_nat": "IP_NF_NAT", "ip6table_nat": "IP6_NF_NAT",
          "wireguard": "WIREGUARD", "geneve": "GENEVE"}


def bare_root(tmp_path: Path) -> Path:
    """A kernel with no /proc/modules, /lib/modules or config: only its release."""
    root = tmp_path / "bare"
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text(REL + "\n")
    return root


def config_text(value: str, names=IPT) -> str:
    lines = ["CONFIG_NF_NAT=y"]
    for n in names:
        lines.append(f"# CONFIG_{CONFIG[n]} is not set" if value == "n"
                     else f"CONFIG_{CONFIG[n]}={value}")
    return "\n".join(lines) + "\n"


def ctx_for(root: Path, **kw) -> Context:
    return Context(runner=Runner(), root=root, **kw)


def test_modules_loaded(tmp_path):
    root = bare_root(tmp_path)
    (root / "proc/modules").write_text("".join(f"{m} 1 0 - Live 0x0\n" for m in IPT))
    c = host.check_modules(ctx_for(root))
    assert (c.status, c.detail) == (PASS, "ip_tables ip6_tables iptable_nat ip6table_nat")


def test_modules_built_in_by_modules_builtin(tmp_path):
    root = bare_root(tmp_path)
    mods = root / "lib/modules" / REL
    mods.mkdir(parents=True)
    (mods / "modules.builtin").write_text(
        "kernel/net/ipv4/netfilter/ip_tables.ko\nkernel/net/ipv6/netfilter/ip6_tables.ko\n"
        "kernel/net/ipv4/netfilter/iptable_nat.ko\nkernel/net/ipv6/netfilter/ip6table_nat.ko\n")
    c = host.check_modules(ctx_for(root))
    assert c.status == PASS and "built in: ip_tables, ip6_tables, iptable_nat, ip6table_nat" \
        in c.detail


def test_modules_built_in_by_config_gz(tmp_path):
    """This machine: no /proc/modules, no /lib/modules, /proc/config.gz has =y."""
    root = bare_root(tmp_path)
    (root / "proc/config.gz").write_bytes(gzip.compress(config_text("y").encode()))
    c = host.check_modules(ctx_for(root))
    assert c.status == PASS and "built in: ip_tables" in c.detail, c


def test_modules_built_in_by_boot_config_and_sys_module(tmp_path):
    root = bare_root(tmp_path)
    (root / "boot").mkdir()
    (root / f"boot/config-{REL}").write_text(config_text("y"))
    (root / "sys/module/ip_tables").mkdir(parents=True)  # built in, with parameters
    states = kmod.KernelModules.read(ctx_for(root)).states(IPT)
    assert set(states.values()) == {kmod.BUILTIN}
    assert host.check_modules(ctx_for(root)).status == PASS


def test_modules_loadable_not_loaded(tmp_path):
    root = bare_root(tmp_path)
    (root / "proc/modules").write_text("ip_tables 1 0 - Live 0x0\n")
    (root / "proc/config.gz").write_bytes(gzip.compress(config_text("m").encode()))
    c = host.check_modules(ctx_for(root))
    assert c.status == FAIL
    assert c.detail.startswith("not loaded: ip6_tables, iptable_nat, ip6table_nat (")
    assert "modprobe -a ip6_tables iptable_nat ip6table_nat" in c.fix
    # the loaded one is listed for the next boot too
    assert "modprobe -a ip_tables ip6_tables iptable_nat ip6table_nat\n" in c.admin[0]
    assert "for m in ip_tables ip6_tables iptable_nat ip6table_nat; do" in c.admin[0]
    assert "/etc/modules-load.d/ksi.conf" in c.admin[0]


def test_modules_really_missing(tmp_path):
    root = bare_root(tmp_path)
    c = host.check_modules(ctx_for(root))  # nothing says anything: not loaded
    assert c.status == FAIL and c.detail.startswith("not loaded: ip_tables, ip6_tables, ")
    (root / "proc/config.gz").write_bytes(gzip.compress(config_text("n").encode()))
    c = host.check_modules(ctx_for(root))
    assert c.status == FAIL
    assert "not in this kernel: ip_tables, ip6_tables, iptable_nat, ip6table_nat " \
        "(CONFIG_IP_NF_IPTABLES, CONFIG_IP6_NF_IPTABLES, CONFIG_IP_NF_NAT, " \
        "CONFIG_IP6_NF_NAT not set)" in c.detail
    assert "modprobe" not in c.fix and "kernel built with them" in c.fix
    assert not any("modprobe -a" in b for b in c.admin)


@pytest.mark.parametrize("value,status", [("y", PASS), ("m", PASS), ("n", WARN)])
def test_liqo_networking_modules_by_config(tmp_path, value, status):
    root = bare_root(tmp_path)
    (root / "proc/config.gz").write_bytes(
        gzip.compress(config_text(value, ("wireguard", "geneve")).encode()))
    c = host.check_liqo_networking(ctx_for(root))
    assert c.status == status, c
    if status == WARN:
        assert "no wireguard and no geneve kernel module" in c.detail
        assert "CONFIG_WIREGUARD, CONFIG_GENEVE not set" in c.admin[0]


def test_liqo_networking_unknown_modules_get_modprobe(tmp_path):
    c = host.check_liqo_networking(ctx_for(bare_root(tmp_path)))
    assert c.status == WARN and "modprobe -a wireguard geneve" in c.admin[0]


def test_epilog_check(tmp_path):
    root = tmp_path / "r"
    assert runtime.check_epilog(ctx_for(root, environ={})).status == SKIP
    (root / "etc/slurm").mkdir(parents=True)
    conf = root / "etc/slurm/slurm.conf"
    conf.write_text("ClusterName=c\n")
    c = runtime.check_epilog(ctx_for(root, environ={}))
    assert c.status == WARN and "Epilog=unset" in c.detail
    assert "ksi-epilog.sh /etc/slurm/ksi-epilog.sh" in c.admin[0]
    (root / "etc/slurm/epilog.sh").write_text("#!/bin/sh\n/etc/slurm/other.sh\n")
    conf.write_text("epilog=/etc/slurm/epilog.sh\n")
    assert runtime.check_epilog(ctx_for(root, environ={})).status == WARN
    (root / "etc/slurm/epilog.sh").write_text("#!/bin/sh\n/etc/slurm/ksi-epilog.sh\n")
    assert runtime.check_epilog(ctx_for(root, environ={})).status == PASS
    conf.write_text("Epilog=/etc/slurm/epilog.d/*\n")
    (root / "etc/slurm/epilog.d").mkdir()
    (root / "etc/slurm/epilog.d/50-ksi.sh").write_text("")
    assert runtime.check_epilog(ctx_for(root, environ={})).status == PASS


def test_preflight_raises_in_doctors_words():
    class NoTools(Runner):
        def which(self, name, environ=None):
            return None

    from ksi.checks import preflight

    with pytest.raises(KsiError) as err:
        preflight(NoTools(), "auto", environ={})
    assert err.value.code == Exit.PROVIDER_MISSING and "no container runtime" in str(
        err.value.cause)
    with pytest.raises(KsiError) as err:
        preflight(NoTools(), "podman", environ={})
    assert "provider podman: 'podman' is not on PATH" in err.value.cause


# ------------------------------------------------------------------------ admin script
def bash_n(script: str, tmp_path: Path) -> None:
    f = tmp_path / "admin.sh"
    f.write_text(script)
    res = subprocess.run(["bash", "-n", str(f)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + script


BROKEN = [  # (what to break, the check, words its admin command has)
    ("cgroup v2", host.check_cgroup_v2, "systemd.unified_cgroup_hierarchy=1"),
    ("cgroup delegation", host.check_delegation,
     "Delegate=cpu cpuset io memory pids\\n' > /etc/systemd/system/user@.service.d/"
     "delegate.conf\nsystemctl daemon-reload"),
    ("no user manager", host.check_delegation, "loginctl enable-linger "),
    ("kernel modules", host.check_modules, "modprobe -a ip_tables ip6_tables iptable_nat"),
    ("inotify limits", host.check_inotify, "fs.inotify.max_user_instances = 512"),
    ("subuid", host.check_subuid, "usermod --add-subuids"),
    ("subgid", host.check_subgid, "usermod --add-subgids"),
    ("bypass4netnsd", runtime.check_bypass4netns, "install-bypass4netnsd"),
    ("kernel for Liqo networking", host.check_liqo_networking, "modprobe -a wireguard"),
    ("XDG dir", host.check_runtime_dir, "loginctl enable-linger "),
    ("job-scoped runtime", runtime.check_job_runtime, "/usr/local/sbin/ksi-delegate-cgroup"),
    ("Slurm epilog", runtime.check_epilog, "/etc/slurm/ksi-epilog.sh"),
]


@pytest.mark.parametrize("what,fn,words", BROKEN, ids=[b[0] for b in BROKEN])
def test_admin_script_has_each_failing_checks_command(tmp_path, what, fn, words):
    root = good_root(tmp_path, uid=1777)
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    kw: dict = {}
    _break(root, what)
    if what == "no user manager":
        shutil.rmtree(next((root / "sys/fs/cgroup/user.slice").iterdir()))
    elif what in ("subuid", "subgid"):
        (root / f"etc/{what}").write_text("other:100000:65536\n")
    elif what == "XDG dir":
        env["XDG_RUNTIME_DIR"] = str(tmp_path / "gone")
    elif what == "job-scoped runtime":
        kw["runtime_mode"] = "job"
    elif what == "Slurm epilog":
        (root / "etc/slurm").mkdir()
        (root / "etc/slurm/slurm.conf").write_text("Epilog=/etc/slurm/site-epilog\n")
    ctx = ctx_for(root, uid=1777, environ=env, **kw)
    c = fn(ctx)
    assert c.status in (WARN, FAIL), c
    script = admin_script([c], ctx)
    assert words in script, script
    assert script.startswith("#!/bin/bash\n") and "set -euo pipefail" in script
    bash_n(script, tmp_path)


def test_admin_script_user_side_and_nothing_needed(tmp_path):
    ctx = ctx_for(tmp_path, uid=1777, environ={})
    c = host.check_runtime_dir(ctx)  # not set: the user's own environment
    script = admin_script([c], ctx)
    assert "# no admin command: the user fixes this one: export XDG_RUNTIME_DIR=" in script
    assert "no admin command is needed" in script
    bash_n(script, tmp_path)
    ok = admin_script([host.check_kernel(ctx_for(good_root(tmp_path)))], ctx)
    assert ok.startswith("# ") and "nothing is needed" in ok and ok.count("\n") == 1


def test_admin_script_subid_block_is_idempotent(tmp_path):
    """The subuid block, run against a copy of /etc/subuid with usermod faked, adds one
    range after the others, once."""
    subuid = tmp_path / "subuid"
    subuid.write_text("other:100000:65536\n")
    ctx = ctx_for(good_root(tmp_path), uid=1777, environ={})
    (ctx.root / "etc/subuid").write_text("other:100000:65536\n")
    block = host.check_subuid(ctx).admin[0].replace("/etc/subuid", str(subuid))
    fake = ('usermod() { r=${2%-*}; n=$(( ${2#*-} - r + 1 )); '
            f'echo "$3:$r:$n" >> {subuid}; }}\n')
    for _ in range(2):
        res = subprocess.run(["bash", "-euc", fake + block], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    user = ctx.user
    assert subuid.read_text() == f"other:100000:65536\n{user}:165536:65536\n"


def test_doctor_admin_script_end_to_end(emu_env, workdir, tmp_path):
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    env = dict(emu_env, XDG_RUNTIME_DIR=str(xdg),
               KSI_DOCTOR_ROOT=str(good_root(tmp_path, uid=UID)))
    r = run_ksi(["doctor", "--admin-script"], env, workdir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# ksi doctor --admin-script on ") and "nothing is needed" \
        in r.stdout
    root = Path(env["KSI_DOCTOR_ROOT"])
    _break(root, "kernel modules")
    _break(root, "inotify limits")
    r = run_ksi(["doctor", "--admin-script"], env, workdir)
    assert r.returncode == 0, r.stderr
    assert "# --- FAIL kernel modules: not loaded: ip6_tables" in r.stdout
    assert "modprobe -a ip_tables ip6_tables" in r.stdout
    assert "sysctl -p /etc/sysctl.d/99-ksi.conf" in r.stdout
    bash_n(r.stdout, tmp_path)
    assert os.path.exists(root / "proc/modules")  # nothing was run or changed


def test_checks_import_neither_ops_nor_cluster():
    """ksi.checks sits below the CLI and the run: it imports neither ksi.ops nor ksi.cluster
    (also not lazily, inside functions)."""
    import ast

    import ksi.checks

    pkg = Path(ksi.checks.__file__).parent
    for f in sorted(pkg.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad = [n for n in names if n.startswith(("ksi.ops", "ksi.cluster", "ksi.cli"))]
            assert not bad, f"{f.name} imports {bad}"


def test_site_setup_names_real_checks():
    """Every check docs/site-setup.md names after 'Check:'/'Checks:' is one doctor prints."""
    import re

    import ksi.checks

    src = "".join(f.read_text() for f in Path(ksi.checks.__file__).parent.glob("*.py"))
    real = set(re.findall(r'(?:Check|check_version|version_check)\(\s*(?:ctx, )?"([^"]+)"', src))
    real |= {"kind", "kubectl", "liqoctl", "provider nerdctl", "provider podman", "subuid",
             "subgid"}
    doc = (Path(__file__).resolve().parent.parent / "docs/site-setup.md").read_text()
    named = set()
    for para in re.findall(r"Checks?: (.*?)(?:\n\n|$)", doc, re.S):
        sentence = re.split(r"\.\s", re.sub(r"\([^)]*\)", "", para))[0]
        named |= set(re.findall(r"`([^`]+)`", sentence))
    assert named and named <= real, named - real
    assert "ksi doctor --admin-script" in doc


def test_admin_script_modules_block_is_idempotent(tmp_path):
    """The modules block, run twice with modprobe faked and modules-load.d in tmp, lists
    each module once."""
    root = bare_root(tmp_path)
    (root / "proc/config.gz").write_bytes(gzip.compress(config_text("m").encode()))
    block = host.check_modules(ctx_for(root)).admin[0]
    conf = tmp_path / "load.d/ksi.conf"
    block = block.replace("/etc/modules-load.d/ksi.conf", str(conf)).replace(
        "/etc/modules-load.d", str(conf.parent))
    for _ in range(2):
        res = subprocess.run(["bash", "-euc", "modprobe() { :; }\n" + block],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    assert conf.read_text().split() == list(IPT)


class _Answers:
    """A runner whose every command answers the same way (or raises)."""

    def __init__(self, stdout: str = "", exc: Exception | None = None) -> None:
        self.stdout, self.exc, self.argvs = stdout, exc, []
        self.extra_env: dict[str, str] = {}

    def which(self, binary: str, env: object = None) -> str:
        return f"/bin/{binary}"

    def run(self, argv: list[str], **_kw: object) -> subprocess.CompletedProcess:
        self.argvs.append(argv)
        if self.exc is not None:
            raise self.exc
        return subprocess.CompletedProcess(argv, 0, self.stdout, "")


@pytest.mark.parametrize("provider,info,rootless", [
    ("nerdctl", '{"SecurityOptions": ["name=seccomp,profile=default", "name=rootless"]}', True),
    ("nerdctl", '{"SecurityOptions": ["name=seccomp,profile=default"]}', False),
    ("podman", '{"host": {"security": {"rootless": true}}}', True),
    ("podman", '{"host": {"security": {"rootless": false}}}', False),
])
def test_runtime_reachable_reads_the_providers_info(provider: str, info: str,
                                                    rootless: bool) -> None:
    """The check asks Provider.info() (the run's own parse), not a copy of its own."""
    r = _Answers(info)
    c = runtime.check_daemon(Context(runner=r, provider=provider, uid=1000))  # type: ignore[arg-type]
    assert r.argvs == [[provider, "info", "--format",
                        "json" if provider == "podman" else "{{json .}}"]]
    assert (c.status, c.detail.endswith("(rootless)")) == \
        ((PASS, True) if rootless else (WARN, False))


@pytest.mark.parametrize("exc,words", [
    (CommandFailed("nerdctl info failed", stderr='level=fatal msg="rootless containerd not '
                   'running"'), "rootless containerd not running"),
    (ToolMissing("'nerdctl' is not executable", "chmod"), "'nerdctl' is not executable"),
])
def test_runtime_reachable_fails_with_what_the_runtime_said(exc: KsiError, words: str) -> None:
    c = runtime.check_daemon(Context(runner=_Answers(exc=exc), provider="nerdctl"))  # type: ignore[arg-type]
    assert c.status == FAIL and words in c.detail and c.code == Exit.RUNTIME_UNAVAILABLE
    assert "containerd-rootless-setuptool.sh install" in c.fix


def test_runtime_reachable_without_json_still_answers() -> None:
    c = runtime.check_daemon(Context(runner=_Answers("not json"), provider="podman"))  # type: ignore[arg-type]
    assert c.status == PASS and "info not JSON" in c.detail
