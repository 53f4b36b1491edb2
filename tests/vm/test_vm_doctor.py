"""`ksi doctor` as the normal user inside the VM (cgroup v2, systemd 257, rootless nerdctl
and podman): every check the VM satisfies passes; then one prerequisite at a time is removed
as root through the harness and doctor must name that cause and its fix, exit 93."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

PREFLIGHT_FAILED = 93
KSI = "PYTHONPATH=/ksi/src python3 -m ksi"
DROPIN = "/etc/systemd/system/user@.service.d/delegate.conf"
CONTROLLERS = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers"

# The checks that may stay non-PASS on the VM, each with its reason.
JUSTIFIED = {
    # runtime_mode=user (the default): job-scoped mode needs a Slurm job whose task cgroup a
    # site hook delegated to the user; the VM has no Slurm.
    "job-scoped runtime": "SKIP",
    # no kind cluster runs while doctor runs
    "node containers": "SKIP",
    # not a Slurm node
    "Slurm epilog": "SKIP",
    # no GPU in the VM
    "gpu: nvidia-smi": "SKIP", "gpu: container toolkit": "SKIP", "gpu: toolkit config": "SKIP",
    "gpu: device files": "SKIP", "gpu: device constraint": "SKIP",
}
PODMAN_JUSTIFIED = {
    **JUSTIFIED,
    # bypass4netns is a nerdctl accelerator; podman does not use it
    "bypass4netnsd": "SKIP",
}


def doctor(vm, provider: str = "nerdctl", user: str = "ksi") -> tuple[int, dict]:
    """Doctor's exit code and its checks by name, as `user` in an ssh login session."""
    r = vm.run(f"mkdir -p ~/shared && cd ~ && {KSI} doctor --json --provider {provider} "
               "--shared-dir ~/shared", user=user, timeout=900)
    assert r.out.strip(), f"doctor printed nothing (exit {r.rc}): {r.err[-2000:]}"
    return r.rc, {c["name"]: c for c in json.loads(r.out)["checks"]}


def not_passing(checks: dict) -> dict:
    return {n: c["status"].upper() for n, c in checks.items() if c["status"].upper() != "PASS"}


def liqoctl_in_image(vm) -> bool:
    return vm.run("command -v liqoctl", user="ksi").rc == 0


@pytest.mark.parametrize("provider", ["nerdctl", "podman"])
def test_doctor_passes_what_the_vm_satisfies(vm, provider: str) -> None:
    rc, checks = doctor(vm, provider)
    allowed = dict(PODMAN_JUSTIFIED if provider == "podman" else JUSTIFIED)
    if not liqoctl_in_image(vm):
        # the host's kind cache had no Liqo build when the image was made (build-image.sh
        # logs it); liqoctl is only needed for multi-node runs
        allowed["liqoctl"] = "WARN"
    assert not_passing(checks) == {k: v for k, v in allowed.items() if k in checks}, checks
    assert checks["cgroup v2"]["status"].upper() == "PASS"
    assert checks["runtime reachable"]["detail"].endswith("(rootless)")
    assert rc == (96 if "WARN" in allowed.values() and "liqoctl" in allowed else 0), checks


def root(vm, cmd: str) -> str:
    return vm.must(cmd, user="root", timeout=600)


def wait_user_manager(vm, user: str = "ksi") -> None:
    """Until the user's manager and its standing containerd are back."""
    vm.must("systemctl --user is-system-running --wait; "
            "for i in $(seq 300); do nerdctl info >/dev/null 2>&1 && exit 0; sleep 1; done; "
            "nerdctl info", user=user, timeout=900)


@contextmanager
def saved(vm, path: str) -> Iterator[None]:
    """Restore `path` (as root) afterwards, whatever the test did to it."""
    keep = "/root/saved" + path.replace("/", "_")
    root(vm, f"cp -a {path} {keep}")
    try:
        yield
    finally:
        root(vm, f"cp -a {keep} {path}")


def assert_names(rc: int, checks: dict, name: str, cause: str, fix: str) -> None:
    c = checks[name]
    assert (rc, c["status"].upper()) == (PREFLIGHT_FAILED, "FAIL"), (rc, c)
    assert cause in c["detail"], c
    assert fix in c["fix"], c


def test_subuid_entry_removed(vm) -> None:
    with saved(vm, "/etc/subuid"):
        root(vm, "sed -i '/^ksi:/d' /etc/subuid")
        rc, checks = doctor(vm)
        assert_names(rc, checks, "subuid", "gives ksi 0 subordinate ids",
                     "usermod --add-subuids 100000-165535")
        assert checks["subgid"]["status"].upper() == "PASS"      # only the one cause
    assert root(vm, "grep -c '^ksi:' /etc/subuid").strip() == "1"


def test_kernel_module_unloaded(vm) -> None:
    root(vm, "rmmod iptable_nat")   # (modprobe -r would take ip_tables along)
    try:
        rc, checks = doctor(vm)
        assert_names(rc, checks, "kernel modules", "not loaded: iptable_nat",
                     "modprobe -a iptable_nat")
    finally:
        root(vm, "modprobe iptable_nat")
    assert root(vm, "grep -c '^iptable_nat ' /proc/modules").strip() == "1"


def test_delegation_removed(vm) -> None:
    """systemd < 252's default, Delegate=pids memory: no cpu controller for the user's
    manager (kind's rootless nodes need it). Delegate=no is no test: systemd 257's user
    manager then cannot create its own init.scope and does not start at all."""
    try:
        with saved(vm, DROPIN):
            # Delegate= lists add up over drop-ins; the empty assignment resets the vendor's
            # (systemd >= 252: Delegate=pids memory cpu)
            root(vm, f"printf '[Service]\\nDelegate=\\nDelegate=pids memory\\n' > {DROPIN} "
                     "&& systemctl daemon-reload && systemctl restart user@1000.service")
            rc, checks = doctor(vm)
            assert_names(rc, checks, "cgroup delegation",
                         "controllers cpu not delegated to user@1000.service",
                         "Delegate=cpu cpuset io memory pids")
    finally:
        root(vm, "systemctl daemon-reload && systemctl restart user@1000.service")
        wait_user_manager(vm)
    assert vm.must(f"cat {CONTROLLERS}").split() == ["cpuset", "cpu", "io", "memory", "pids"]


def test_linger_disabled(vm) -> None:
    """Without linger a batch job (no login session, as slurmd starts it) finds no user
    manager and no /run/user/UID: doctor says so and names enable-linger."""
    # the user manager's stop (rootless containerd and all) takes a minute or more under TCG;
    # /run/user/1000 goes last
    root(vm, "loginctl disable-linger ksi && loginctl terminate-user ksi; "
             "for i in $(seq 600); do test -d /run/user/1000 || break; sleep 1; done; "
             "! test -d /run/user/1000")
    try:
        job = ("cd /tmp && runuser -u ksi -- env -i PATH=/usr/local/bin:/usr/bin:/bin "
               "HOME=/home/ksi USER=ksi XDG_RUNTIME_DIR=/run/user/1000 PYTHONPATH=/ksi/src "
               "python3 -m ksi doctor --json")
        r = vm.run(job, user="root", timeout=900)
        checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
        assert_names(r.rc, checks, "XDG_RUNTIME_DIR", "/run/user/1000 does not exist",
                     "loginctl enable-linger ksi")
        assert checks["cgroup delegation"]["fix"] == "loginctl enable-linger ksi"
    finally:
        root(vm, "loginctl enable-linger ksi")
    wait_user_manager(vm)
    assert root(vm, "loginctl show-user ksi -p Linger --value").strip() == "yes"


def test_doctor_as_the_second_user(vm) -> None:
    rc, checks = doctor(vm, user="ksi2")
    assert checks["subuid"]["detail"] == "65536 ids for ksi2"
    assert checks["cgroup delegation"]["detail"].endswith("user@1001.service")
    assert checks["runtime reachable"]["status"].upper() == "PASS", checks
    assert rc in (0, 96), checks
