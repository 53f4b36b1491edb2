"""Control the KSI VM test bed (issue 13): boot the cached image under QEMU TCG, run commands
in it over ssh, shut it down.

    python3 tests/vm/vmctl.py up | status | down | check [--deep] | prime
    python3 tests/vm/vmctl.py run [--user ksi] [--timeout S] -- CMD...

The image comes from tests/vm/build-image.sh (cache ${KSI_VM_CACHE:-/var/cache/ksi-vm}).
Every boot writes to its own qcow2 overlay over the cached raw disk, which stays clean
(except `prime`, the build's last boot, which writes the disk itself). The VM's only network
is QEMU user-mode networking with restrict=on and one host forward to its sshd; the project
checkout is shared read-only over 9p at /ksi; the image archives are in the disk
(/var/lib/ksi-images).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("rootfs", "nerdctl", "kindbits", "configure", "images", "disk", "prime", "manifest")
USERS = ("ksi", "ksi2")
MAX_MEMORY_MIB = 10 * 1024


def cache_dir() -> Path:
    return Path(os.environ.get("KSI_VM_CACHE", "/var/cache/ksi-vm"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_image(cache: Optional[Path] = None, *, deep: bool = False) -> list[str]:
    """What is missing from the image (empty: complete and unchanged since its manifest)."""
    cache = cache or cache_dir()
    manifest = cache / "image.json"
    if not manifest.is_file():
        missing = [s for s in STEPS if not (cache / "stamps" / s).is_file()]
        return [f"{manifest} (image not built or half-built; steps not done: "
                f"{' '.join(missing) or 'none'}; run tests/vm/build-image.sh as root)"]
    try:
        m = json.loads(manifest.read_text())
    except ValueError as exc:
        return [f"{manifest} is not JSON ({exc}): rerun tests/vm/build-image.sh manifest"]
    out = []
    disk = cache / "disk.raw"
    if not disk.is_file():
        out.append(f"{disk}")
    else:
        st = disk.stat()
        if (st.st_size, st.st_mtime_ns) != (m["disk"]["size"], m["disk"]["mtime_ns"]):
            out.append(f"{disk} changed after its manifest (rerun build-image.sh disk)")
    for rel, digest in m.get("sha256", {}).items():
        p = cache / rel
        if not p.is_file():
            out.append(str(p))
        elif (deep or p.stat().st_size < (64 << 20)) and _sha256(p) != digest:
            out.append(f"{p} differs from its manifest checksum")
    return out


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __iter__(self):
        return iter((self.rc, self.out, self.err))


class VMError(RuntimeError):
    """The VM did not boot, answer or stop; the message carries the console's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VM:
    """One boot of the image. State (pid, port, overlay) lives in `workdir`, so the CLI's
    up/run/down can be separate processes."""

    def __init__(self, cache: Optional[Path] = None, workdir: Optional[Path] = None, *,
                 checkout: Path = ROOT, memory_mib: int = 8192, smp: int = 2,
                 writable: bool = False, boot_timeout: float = 1500.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if memory_mib > MAX_MEMORY_MIB:
            raise ValueError(f"memory {memory_mib} MiB is over the {MAX_MEMORY_MIB} MiB limit")
        self.cache = cache or cache_dir()
        self.workdir = workdir or Path(os.environ.get("KSI_VM_STATE", "/tmp/ksi-vm-state"))
        self.checkout = checkout
        self.memory_mib, self.smp, self.writable = memory_mib, smp, writable
        self.boot_timeout = boot_timeout
        self.clock, self.sleep = clock, sleep
        self.console = self.workdir / "console.log"
        self.state_file = self.workdir / "state.json"

    # ------------------------------------------------------------------ state
    def state(self) -> Optional[dict]:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        st = self.state()
        if not st:
            return False
        try:
            os.kill(st["pid"], 0)
        except OSError:
            return False
        return True

    @property
    def port(self) -> int:
        st = self.state()
        if not st:
            raise VMError(f"no VM state in {self.state_file}: run 'vmctl.py up' first")
        return int(st["port"])

    def console_tail(self, n: int = 30) -> str:
        """The console's last `n` lines, without colours and systemd's progress spinner."""
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\r", "", text)
        lines = [ln for ln in text.splitlines()
                 if ln.strip() and not re.search(r"\] (A start|A stop)? ?[Jj]ob .* running \(", ln)]
        return "\n".join(lines[-n:])

    # ------------------------------------------------------------------- boot
    def qemu_argv(self, port: int, disk: Path, fmt: str) -> list[str]:
        c = self.cache
        return [
            "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", str(self.smp), "-m", f"{self.memory_mib}M",
            "-nodefaults", "-display", "none", "-monitor", "none",
            "-serial", f"file:{self.console}",
            "-kernel", str(c / "vmlinuz"), "-initrd", str(c / "initrd.img"),
            # no_timer_check: under TCG the kernel's timer-IRQ check can misfire
            "-append", "root=/dev/vda rw systemd.unified_cgroup_hierarchy=1 console=ttyS0 "
                       "net.ifnames=0 no_timer_check",
            "-drive", f"file={disk},if=virtio,format={fmt},cache=unsafe,discard=unmap",
            "-netdev", f"user,id=n,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
            "-device", "virtio-net-pci,netdev=n",
            "-device", "virtio-rng-pci",
            "-virtfs", f"local,path={self.checkout},mount_tag=ksi,security_model=none,"
                       "readonly=on",
        ]

    def up(self) -> float:
        """Boot and wait until every user's systemd manager runs; returns the boot seconds."""
        if self.alive():
            raise VMError(f"a VM from {self.workdir} is already running (vmctl.py down)")
        missing = check_image(self.cache)
        if missing and not self.writable:
            raise VMError("VM image incomplete: " + "; ".join(missing))
        self.workdir.mkdir(parents=True, exist_ok=True)
        raw = self.cache / "disk.raw"
        if self.writable:
            disk, fmt = raw, "raw"
        else:
            disk, fmt = self.workdir / "overlay.qcow2", "qcow2"
            disk.unlink(missing_ok=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(raw),
                            "-F", "raw", str(disk)], check=True)
        port = free_port()
        self.console.write_text("")
        proc = subprocess.Popen(self.qemu_argv(port, disk, fmt), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL,
                                stderr=(self.workdir / "qemu.err").open("w"),
                                start_new_session=True)
        self.state_file.write_text(json.dumps({"pid": proc.pid, "port": port,
                                               "disk": str(disk)}))
        self._proc = proc
        t0 = self.clock()
        try:
            self.wait_ready(t0)
        except BaseException:
            self.kill()
            raise
        return self.clock() - t0

    def _fail(self, what: str) -> VMError:
        err = ""
        try:
            err = (self.workdir / "qemu.err").read_text()[-2000:]
        except OSError:
            pass
        return VMError(f"{what}\nqemu stderr: {err.strip() or '-'}\n"
                       f"last 30 console lines ({self.console}):\n{self.console_tail()}")

    def wait_ready(self, t0: float) -> None:
        """Until root and each user has a running (or degraded) systemd manager and its
        XDG_RUNTIME_DIR."""
        probe = ("s=$(systemctl --user is-system-running --wait 2>&1); "
                 "echo \"$s\"; test -d \"$XDG_RUNTIME_DIR\" && "
                 "{ test \"$s\" = running || test \"$s\" = degraded; }")
        pending = ["root", *USERS]
        while pending:
            if not self.alive():
                raise self._fail("the VM exited during boot")
            if self.clock() - t0 > self.boot_timeout:
                raise self._fail(f"the VM was not ready in {self.boot_timeout:.0f}s "
                                 f"(waiting for {pending[0]})")
            user = pending[0]
            cmd = "systemctl is-system-running --wait" if user == "root" else probe
            r = self.run(cmd, user=user, timeout=120, connect_timeout=10)
            if r.rc == 0 or (user == "root" and r.out.strip() == "degraded"):
                pending.pop(0)
            else:
                self.sleep(3)

    # -------------------------------------------------------------------- run
    def ssh_argv(self, user: str, connect_timeout: int = 20) -> list[str]:
        ssh = self.cache / "ssh"
        return ["ssh", "-p", str(self.port), "-i", str(ssh / "id_ed25519"),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={ssh / 'known_hosts'}",
                "-o", "HostKeyAlias=ksi-vm", "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={connect_timeout}", "-o", "ServerAliveInterval=15",
                "-o", "LogLevel=ERROR", f"{user}@127.0.0.1"]

    def run(self, cmd: Union[str, Sequence[str]], *, user: str = "ksi", timeout: float = 600,
            input: Optional[str] = None, connect_timeout: int = 20) -> Result:
        """Run `cmd` (a shell string, or argv quoted for the remote shell) as `user` in a
        login-like ssh session (pam_systemd sets XDG_RUNTIME_DIR); (rc, stdout, stderr)."""
        text = cmd if isinstance(cmd, str) else shlex.join(cmd)
        try:
            r = subprocess.run(self.ssh_argv(user, connect_timeout) + ["--", text],
                               input=input, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            def s(b: object) -> str:
                return b.decode(errors="replace") if isinstance(b, bytes) else str(b or "")
            return Result(124, s(exc.stdout), s(exc.stderr) + f"\ntimed out after {timeout}s")
        return Result(r.returncode, r.stdout, r.stderr)

    def must(self, cmd: Union[str, Sequence[str]], **kw) -> str:
        r = self.run(cmd, **kw)
        if r.rc != 0:
            raise VMError(f"{cmd!r} as {kw.get('user', 'ksi')} exited {r.rc}:\n{r.out[-3000:]}"
                          f"\n{r.err[-3000:]}")
        return r.out

    # ------------------------------------------------------------------- down
    def down(self, timeout: float = 120.0) -> None:
        """Power off (systemd), then kill QEMU after `timeout`; remove the overlay."""
        st = self.state()
        if st and self.alive():
            self.run("systemctl poweroff", user="root", timeout=30)
            t0 = self.clock()
            while self.alive() and self.clock() - t0 < timeout:
                self._reap()
                self.sleep(1)
        self.kill()

    def kill(self) -> None:
        """SIGKILL QEMU if it still runs; remove the overlay and the state."""
        st = self.state()
        if st and self.alive():
            os.kill(st["pid"], signal.SIGKILL)
            t0 = self.clock()
            while self.alive() and self.clock() - t0 < 10:
                self._reap()
                self.sleep(0.2)
        self._reap()
        if st and not self.writable:
            Path(st["disk"]).unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)

    def _reap(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            proc.poll()


SETUP = r"""
set -e
containerd-rootless-setuptool.sh check
containerd-rootless-setuptool.sh install
containerd-rootless-setuptool.sh install-bypass4netnsd
for i in $(seq 300); do nerdctl info >/dev/null 2>&1 && break; sleep 1; done
"""
LOAD = r"""
set -e
for a in /var/lib/ksi-images/*.tar; do
  nerdctl load -i "$a"
  podman load -q -i "$a"
done
nerdctl images; podman images
"""


def prime(vm: VM) -> None:
    """The build's last boot, on the raw disk: set up rootless containerd for each user the
    way containerd-rootless-setuptool.sh does, and load the image archives into the first
    user's nerdctl and podman (the tests' runs are that user's; each load hashes the 1 GB
    node image, slow under TCG)."""
    from concurrent.futures import ThreadPoolExecutor

    vm.writable = True
    vm.up()
    try:
        with ThreadPoolExecutor(len(USERS)) as pool:   # the users in parallel: 2 vCPUs
            for out in pool.map(lambda u: vm.must(SETUP, user=u, timeout=1800), USERS):
                print(out, flush=True)
        print(vm.must(LOAD, user=USERS[0], timeout=3600), flush=True)
        for user in USERS:
            vm.must("systemctl --user is-active containerd bypass4netnsd", user=user)
    finally:
        vm.down()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="vmctl.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--memory", type=int, default=8192, help="MiB (at most 10240)")
    p.add_argument("--smp", type=int, default=2)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up")
    sub.add_parser("down")
    sub.add_parser("status")
    sub.add_parser("prime")
    c = sub.add_parser("check")
    c.add_argument("--deep", action="store_true", help="also checksum the large archives")
    r = sub.add_parser("run")
    r.add_argument("--user", default="ksi")
    r.add_argument("--timeout", type=float, default=600)
    r.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    vm = VM(memory_mib=a.memory, smp=a.smp)
    if a.cmd == "check":
        missing = check_image(deep=a.deep)
        for m in missing:
            print(f"missing: {m}")
        if not missing:
            print(f"VM image {vm.cache} is complete")
        return 1 if missing else 0
    try:
        if a.cmd == "up":
            print(f"ready after {vm.up():.0f}s; ssh port {vm.port}; console {vm.console}")
        elif a.cmd == "down":
            vm.down()
        elif a.cmd == "status":
            print(f"running, ssh port {vm.port}" if vm.alive() else "not running")
            return 0 if vm.alive() else 3
        elif a.cmd == "prime":
            prime(vm)
        elif a.cmd == "run":
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            # one argument is a shell command line, several an argv
            res = vm.run(cmd[0] if len(cmd) == 1 else cmd, user=a.user, timeout=a.timeout)
            sys.stdout.write(res.out)
            sys.stderr.write(res.err)
            return res.rc
    except VMError as exc:
        print(f"vmctl: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
