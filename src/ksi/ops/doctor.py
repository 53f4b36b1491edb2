"""`ksi doctor`: preflight checks that name the real cause and the command that fixes it.

Each check is a small function returning Check(name, status, detail, fix). Host files are
read under a configurable root (--root / KSI_DOCTOR_ROOT) so tests can use fake
/sys, /proc and /etc trees. `cheap_checks()` is the subset `ksi run` does before it starts.
"""

from __future__ import annotations

import os
import pwd
import re
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.runner import Runner
    from ksi.settings import Settings

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
RANK = {SKIP: 0, PASS: 0, WARN: 1, FAIL: 2}
WARN_EXIT = int(Exit.DOCTOR_WARNINGS)  # doctor found warnings only (no failures)

MIN_KIND_NERDCTL = (0, 23)   # kind's nerdctl provider
MIN_KIND = (0, 20)
MIN_NERDCTL = (1, 7)
MIN_CONTAINERD = (1, 7)
MIN_PODMAN = (4, 0)
MIN_KERNEL_LIQO = (5, 10)
MODULES = ("ip_tables", "ip6_tables", "iptable_nat", "ip6table_nat")
DELEGATED = ("cpu", "memory", "pids")
SUBID_MIN = 65536
# host-wide inotify use per kind cluster (kind#1388/#2219: ~10-13 clusters fail at the
# default 128 instances); kind recommends 512 instances / 524288 watches for several.
INOTIFY_PER_CLUSTER = (12, 40000)
INOTIFY_RECOMMENDED = (512, 524288)
INOTIFY_FIX = ("ask an admin: sysctl -w fs.inotify.max_user_instances=512 "
               "fs.inotify.max_user_watches=524288 (persist in /etc/sysctl.d/99-ksi.conf)")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""
    code: int = field(default=int(Exit.PREFLIGHT_FAILED), repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("code")
        return d


@dataclass
class Context:
    """What the checks look at."""

    runner: Runner
    provider: str = "nerdctl"
    root: Path = Path("/")
    clusters: int = 1
    shared_dir: Optional[str] = None
    bypass4netns: str = "auto"
    port_range: tuple[int, int] = (30000, 32767)
    api_port_range: tuple[int, int] = (41000, 41999)
    lock_dir: str = "/tmp/ksi-locks"
    runtime_mode: str = "user"
    liqo_version: str = ""
    liqo_chart: str = ""
    liqo_networking: bool = True
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    uid: int = field(default_factory=os.getuid)

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> Optional[str]:
        try:
            return self.path(absolute).read_text()
        except OSError:
            return None


def context_from(settings: Settings, runner: Runner, *, root: Optional[str] = None,
                 clusters: int = 1, shared_dir: Optional[str] = None,
                 provider: Optional[str] = None) -> Context:
    environ = dict(os.environ)
    root = root or environ.get("KSI_DOCTOR_ROOT") or "/"
    prov = provider or settings.provider
    if prov == "auto":
        for cand in ("nerdctl", "podman", "docker"):
            if runner.which(cand):
                prov = cand
                break
    return Context(runner=runner, provider=prov, root=Path(root), clusters=clusters,
                   shared_dir=shared_dir, bypass4netns=settings.bypass4netns,
                   port_range=settings.port_range(), api_port_range=settings.api_port_range(),
                   lock_dir=settings.lock_dir, runtime_mode=settings.runtime_mode,
                   liqo_version=settings.liqo_version, liqo_chart=settings.liqo_chart,
                   liqo_networking=settings.liqo_networking, environ=environ)


# ------------------------------------------------------------------------ versions
_VER = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> Optional[tuple[int, ...]]:
    m = _VER.search(text or "")
    if not m:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def _fmt(v: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v)


def _tool_output(ctx: Context, argv: list[str]) -> tuple[int, str, str]:
    try:
        res = ctx.runner.run(argv, timeout=30, check=False)
    except KsiError as exc:  # not installed / not executable
        return 127, "", exc.cause
    return res.returncode, res.stdout, res.stderr


def _missing(name: str, binary: str, fix: str, code: Exit = Exit.TOOL_MISSING) -> Check:
    return Check(name, FAIL, f"'{binary}' is not on PATH", fix, int(code))


def check_present(ctx: Context, binary: str, fix: str, *, name: str = "",
                  required: bool = True, code: Exit = Exit.TOOL_MISSING,
                  cause: str = "") -> Check:
    name = name or binary
    path = ctx.runner.which(binary, ctx.environ)
    if path:
        return Check(name, PASS, f"{binary} at {path}")
    if not required:
        return Check(name, WARN, f"'{binary}' is not on PATH (needed for multi-node runs)",
                     fix)
    c = _missing(name, binary, fix, code)
    if cause:
        c.detail = cause
    return c


def check_version(ctx: Context, name: str, argv: list[str], minimum: Optional[tuple[int, ...]],
                  fix: str, *, why: str = "", pick: Optional[Callable[[str], str]] = None
                  ) -> Check:
    if not ctx.runner.which(argv[0], ctx.environ):
        return Check(name, SKIP, f"'{argv[0]}' not found")
    rc, out, err = _tool_output(ctx, argv)
    text = out if rc == 0 else out + err
    if pick is not None:
        text = pick(text)
    v = parse_version(text)
    if v is None:
        return Check(name, WARN, f"could not read the version from '{' '.join(argv)}'"
                     f" (exit {rc})", fix)
    tool = name.removesuffix(" version")
    if minimum and v < minimum:
        return Check(name, FAIL, f"{tool} {_fmt(v)} is older than {_fmt(minimum)}"
                     + (f" ({why})" if why else ""), fix)
    return Check(name, PASS, f"{tool} {_fmt(v)}")


def _containerd_part(text: str) -> str:
    """The containerd section of `nerdctl version`."""
    i = text.find("containerd")
    return text[i:] if i >= 0 else ""


def _nerdctl_client_part(text: str) -> str:
    i = text.find("Server:")
    return text[:i] if i >= 0 else text


def tool_checks(ctx: Context) -> list[Check]:
    """Presence and versions of kind, the runtime (and containerd), kubectl, liqoctl."""
    out = [check_present(ctx, "kind", "install kind >= 0.23 (a single binary) or load its "
                         "module; see 'ksi doctor'")]
    if out[-1].status == PASS:
        nerd = ctx.provider == "nerdctl"
        out.append(check_version(
            ctx, "kind version", ["kind", "version"],
            MIN_KIND_NERDCTL if nerd else MIN_KIND,
            "install a newer kind (https://kind.sigs.k8s.io/docs/user/quick-start/)",
            why="kind's nerdctl provider needs kind >= 0.23" if nerd else ""))
    prov_fix = {"nerdctl": "install rootless nerdctl (nerdctl-full) and run "
                           "'containerd-rootless-setuptool.sh install'",
                "podman": "install podman (rootless) or pick another --provider",
                "docker": "install rootless docker or pick another --provider"}
    binary = ctx.provider
    out.append(check_present(
        ctx, binary, prov_fix.get(binary, f"install {binary}"), name=f"provider {binary}",
        code=Exit.PROVIDER_MISSING,
        cause=f"provider {binary}: '{binary}' is not on PATH"))
    if out[-1].status == PASS:
        if binary == "nerdctl":
            out.append(check_version(ctx, "nerdctl version", ["nerdctl", "version"],
                                     MIN_NERDCTL, "install nerdctl >= 1.7 (nerdctl-full)",
                                     why="kind needs nerdctl >= 1.7",
                                     pick=_nerdctl_client_part))
            c = check_version(ctx, "containerd version", ["nerdctl", "version"],
                              MIN_CONTAINERD, "install containerd >= 1.7 (nerdctl-full)",
                              why="kind needs containerd >= 1.7", pick=_containerd_part)
            if c.status == WARN:  # no server part: the daemon is down (reported below)
                c = Check("containerd version", SKIP, "containerd not reachable")
            out.append(c)
        elif binary == "podman":
            out.append(check_version(ctx, "podman version", ["podman", "--version"],
                                     MIN_PODMAN, "install podman >= 4"))
    out.append(check_present(ctx, "kubectl", "install kubectl or load its module; see "
                             "'ksi doctor'"))
    out.append(check_present(ctx, "liqoctl", "install liqoctl (https://docs.liqo.io) for "
                             "multi-node runs", required=False))
    if out[-1].status == PASS:
        out.append(check_liqo(ctx))
    return out


def check_liqo(ctx: Context) -> Check:
    """liqoctl's version against liqo_version, and the local chart (offline nodes)."""
    rc, stdout, _ = _tool_output(ctx, ["liqoctl", "version", "--client"])
    have = parse_version(stdout) if rc == 0 else None
    want = parse_version(ctx.liqo_version) if ctx.liqo_version else None
    where = f"chart {ctx.liqo_chart}" if ctx.liqo_chart else "chart fetched by liqoctl"
    if ctx.liqo_chart and not Path(ctx.liqo_chart, "Chart.yaml").is_file():
        return Check("Liqo", FAIL, f"liqo_chart {ctx.liqo_chart} has no Chart.yaml",
                     "point liqo_chart at the release's deployments/liqo directory, or unset "
                     "it", code=Exit.CONFIG_INVALID)
    if have is None:
        return Check("Liqo", WARN, "'liqoctl version --client' printed no version", "")
    if want is not None and want != have:
        return Check("Liqo", WARN, f"liqoctl is v{_fmt(have)} but liqo_version is "
                     f"{ctx.liqo_version}: Liqo wants the same version on both sides",
                     f"install liqoctl {ctx.liqo_version}, or set liqo_version = "
                     f"'v{_fmt(have)}'")
    return Check("Liqo", PASS, f"liqoctl v{_fmt(have)}, {where}, networking module "
                 f"{'on' if ctx.liqo_networking else 'off'}")


# ------------------------------------------------------------------------ host checks
def check_cgroup_v2(ctx: Context) -> Check:
    if ctx.path("/sys/fs/cgroup/cgroup.controllers").exists():
        return Check("cgroup v2", PASS, "unified hierarchy mounted at /sys/fs/cgroup")
    return Check("cgroup v2", FAIL, "cgroup v1 (or no cgroup2) at /sys/fs/cgroup: rootless "
                 "kind needs cgroup v2", "ask an admin to boot with "
                 "systemd.unified_cgroup_hierarchy=1 (RHEL 9 default)")


def check_delegation(ctx: Context) -> Check:
    uid = ctx.uid
    rel = f"/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
    text = ctx.read(rel)
    if text is None:
        return Check("cgroup delegation", WARN, f"{rel} not found: no systemd user manager "
                     f"for uid {uid} (inside a job, delegation depends on the site)",
                     f"loginctl enable-linger {ctx.user}")
    have = set(text.split())
    missing = [c for c in DELEGATED if c not in have]
    if missing:
        return Check("cgroup delegation", FAIL,
                     f"controllers {', '.join(missing)} not delegated to user@{uid}.service "
                     f"(have: {' '.join(sorted(have)) or 'none'})",
                     "ask an admin: printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' "
                     "> /etc/systemd/system/user@.service.d/delegate.conf && "
                     "systemctl daemon-reload, then log in again")
    return Check("cgroup delegation", PASS, f"{' '.join(DELEGATED)} delegated to "
                 f"user@{uid}.service")


def check_runtime_dir(ctx: Context) -> Check:
    xdg = ctx.environ.get("XDG_RUNTIME_DIR", "")
    if not xdg:
        return Check("XDG_RUNTIME_DIR", FAIL, "XDG_RUNTIME_DIR is not set: rootless runtimes "
                     "cannot find their socket", f"export XDG_RUNTIME_DIR=/run/user/{ctx.uid}"
                     f" (and 'loginctl enable-linger {ctx.user}')")
    if not os.path.isdir(xdg):
        return Check("XDG_RUNTIME_DIR", FAIL, f"XDG_RUNTIME_DIR={xdg} does not exist",
                     f"loginctl enable-linger {ctx.user} (creates /run/user/{ctx.uid})")
    return Check("XDG_RUNTIME_DIR", PASS, xdg)


def check_daemon(ctx: Context) -> Check:
    binary = ctx.provider
    if not ctx.runner.which(binary, ctx.environ):
        return Check("runtime reachable", SKIP, f"'{binary}' not found")
    argv = [binary, "info", "--format", "json" if binary == "podman" else "{{json .}}"]
    rc, out, err = _tool_output(ctx, argv)
    if rc != 0:
        from ksi.errors import last_line
        from ksi.provision import providers

        fix = providers.PROVIDERS[binary].daemon_fix if binary in providers.PROVIDERS else ""
        return Check("runtime reachable", FAIL, f"'{binary} info' failed: "
                     f"{last_line(err) or last_line(out) or f'exit {rc}'}", fix,
                     int(Exit.RUNTIME_UNAVAILABLE))
    import json

    try:
        info = json.loads(out)
    except ValueError:
        return Check("runtime reachable", PASS, f"{binary} answers (info not JSON)")
    if binary == "podman":
        rootless = bool(info.get("host", {}).get("security", {}).get("rootless"))
    else:
        rootless = any("rootless" in str(s) for s in info.get("SecurityOptions") or [])
    if not rootless and ctx.uid != 0:
        return Check("runtime reachable", WARN, f"{binary} answers but is not rootless",
                     "use the rootless daemon (containerd-rootless-setuptool.sh install)")
    return Check("runtime reachable", PASS, f"{binary} answers"
                 + (" (rootless)" if rootless else ""))


def _subid(ctx: Context, file: str) -> Check:
    text = ctx.read(file)
    name = file.rsplit("/", 1)[-1]
    fix = (f"ask an admin: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "
           f"{ctx.user}")
    if ctx.uid == 0:
        return Check(name, SKIP, "root needs no subordinate ids")
    if text is None:
        return Check(name, FAIL, f"{file} is missing", fix)
    total = 0
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (ctx.user, str(ctx.uid)) and parts[2].isdigit():
            total += int(parts[2])
    if total < SUBID_MIN:
        return Check(name, FAIL, f"{file} gives {ctx.user} {total} subordinate ids "
                     f"(need >= {SUBID_MIN})", fix)
    return Check(name, PASS, f"{total} ids for {ctx.user}")


def check_subuid(ctx: Context) -> Check:
    return _subid(ctx, "/etc/subuid")


def check_subgid(ctx: Context) -> Check:
    return _subid(ctx, "/etc/subgid")


def check_modules(ctx: Context) -> Check:
    loaded = {ln.split()[0] for ln in (ctx.read("/proc/modules") or "").splitlines()
              if ln.strip()}
    release = (ctx.read("/proc/sys/kernel/osrelease") or "").strip()
    builtin = ctx.read(f"/lib/modules/{release}/modules.builtin") or "" if release else ""
    missing = [m for m in MODULES if m not in loaded
               and not ctx.path(f"/sys/module/{m}").exists()
               and f"/{m}.ko" not in builtin]
    if missing:
        return Check("kernel modules", FAIL, f"not loaded: {', '.join(missing)} (kube-proxy "
                     "in rootless kind cannot load them)",
                     f"ask an admin: modprobe -a {' '.join(missing)} and list them in "
                     "/etc/modules-load.d/ksi.conf")
    return Check("kernel modules", PASS, " ".join(MODULES))


def _int_file(ctx: Context, path: str) -> Optional[int]:
    text = ctx.read(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def check_inotify(ctx: Context) -> Check:
    inst = _int_file(ctx, "/proc/sys/fs/inotify/max_user_instances")
    watches = _int_file(ctx, "/proc/sys/fs/inotify/max_user_watches")
    if inst is None or watches is None:
        return Check("inotify limits", WARN, "cannot read /proc/sys/fs/inotify/*",
                     INOTIFY_FIX)
    n = max(1, ctx.clusters)
    need_i, need_w = INOTIFY_PER_CLUSTER[0] * n, INOTIFY_PER_CLUSTER[1] * n
    detail = f"fs.inotify.max_user_instances={inst}, max_user_watches={watches}"
    if inst < need_i or watches < need_w:
        return Check("inotify limits", FAIL, f"{detail}: too low for {n} cluster(s) on this "
                     f"node (need about {need_i} / {need_w}); kind then fails with 'could not "
                     "find a log line that matches ... Multi-User System'", INOTIFY_FIX)
    if inst < INOTIFY_RECOMMENDED[0] or watches < INOTIFY_RECOMMENDED[1]:
        return Check("inotify limits", WARN, f"{detail}: enough for {n} cluster(s), below "
                     "kind's recommended 512 / 524288 for several clusters per node",
                     INOTIFY_FIX)
    return Check("inotify limits", PASS, detail)


def check_kernel(ctx: Context) -> Check:
    release = (ctx.read("/proc/sys/kernel/osrelease") or "").strip() or os.uname().release
    v = parse_version(release)
    if v is None:
        return Check("kernel for Liqo", WARN, f"cannot parse kernel release {release!r}")
    if v[:2] < MIN_KERNEL_LIQO:
        return Check("kernel for Liqo", WARN, f"kernel {release} is older than 5.10: "
                     "multi-node (Liqo) runs will not work; single-node runs do",
                     "run multi-node jobs on nodes with kernel >= 5.10, or use --each")
    return Check("kernel for Liqo", PASS, f"kernel {release}")


def check_liqo_networking(ctx: Context) -> Check:
    """Liqo's gateway needs WireGuard, its fabric Geneve (both kernel modules)."""
    if not ctx.liqo_networking:
        return Check("kernel for Liqo networking", SKIP, "liqo_networking is off")
    release = (ctx.read("/proc/sys/kernel/osrelease") or "").strip() or os.uname().release
    # loaded, loadable (modules.dep lists every module file) or built in
    known = "".join(ctx.read(f"/lib/modules/{release}/{f}") or ""
                    for f in ("modules.dep", "modules.builtin"))
    missing = [mod for mod in ("wireguard", "geneve")
               if not ctx.path(f"/sys/module/{mod}").exists() and f"/{mod}.ko" not in known]
    if missing:
        return Check("kernel for Liqo networking", WARN,
                     f"no {' and no '.join(missing)} kernel module: Liqo's pod network "
                     "between the nodes will not come up",
                     "ask an admin to install the kernel modules, or set liqo_networking = "
                     "false (virtual nodes and offloading, no pod traffic between nodes)")
    return Check("kernel for Liqo networking", PASS, "wireguard and geneve modules present")


def _procs_named(ctx: Context, comm: str) -> list[int]:
    out = []
    proc = ctx.path("/proc")
    try:
        entries = list(proc.iterdir())
    except OSError:
        return out
    for d in entries:
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() == comm:
                out.append(int(d.name))
        except OSError:
            continue
    return out


def check_bypass4netns(ctx: Context) -> Check:
    if ctx.provider != "nerdctl" or ctx.bypass4netns == "off":
        return Check("bypass4netnsd", SKIP, "not used (provider or bypass4netns=off)")
    if _procs_named(ctx, "bypass4netnsd"):
        return Check("bypass4netnsd", PASS, "running")
    status = FAIL if ctx.bypass4netns == "on" else WARN
    return Check("bypass4netnsd", status, "bypass4netnsd is not running: pod networking "
                 "falls back to slirp4netns (about 7% of line rate)",
                 "containerd-rootless-setuptool.sh install-bypass4netnsd")


def check_shared_dir(ctx: Context) -> Check:
    d = ctx.shared_dir
    if not d:
        return Check("shared directory", SKIP, "not checked (pass --shared-dir DIR)")
    p = Path(d)
    if not p.is_dir():
        return Check("shared directory", FAIL, f"{d} does not exist or is not a directory",
                     f"mkdir -p {d} on the shared file system", int(Exit.SHARED_DIR_MISSING))
    probe = p / f".ksi-doctor-{socket.gethostname()}-{os.getpid()}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check("shared directory", FAIL, f"{d} is not writable: {exc.strerror}",
                     f"pick a directory you can write or fix its permissions (chmod u+w {d})",
                     int(Exit.SHARED_DIR_UNUSABLE))
    return Check("shared directory", PASS, f"{d} writable")


def check_ports(ctx: Context) -> Check:
    from ksi.plan.ports import PortBook, port_in_use

    book = PortBook(Path(ctx.lock_dir))
    held = set(book.held_by_others())
    n = max(1, ctx.clusters)
    parts, worst = [], PASS
    for label, (lo, hi), need in (("K8S_PORT", ctx.port_range, n),
                                  ("API", ctx.api_port_range, n)):
        free = 0
        for port in range(lo, hi + 1):
            if port not in held and not port_in_use(port):
                free += 1
                if free >= max(need, 1) * 4:
                    break
        if free < need:
            worst = FAIL
        parts.append(f"{label} {lo}-{hi}: {'>=' if free >= need * 4 else ''}{free} free")
    lock = Path(ctx.lock_dir)
    if lock.exists() and not os.access(lock, os.W_OK | os.X_OK):
        return Check("free ports", FAIL, f"port lock directory {lock} is not writable",
                     "ask an admin: chmod 1777 " + str(lock))
    detail = "; ".join(parts) + f" ({len(held)} reserved by KSI runs)"
    if worst == FAIL:
        return Check("free ports", FAIL, detail, "end other runs or widen port_range / "
                     "api_port_range in the KSI config", int(Exit.NO_FREE_PORT))
    return Check("free ports", PASS, detail)


def check_job_runtime(ctx: Context) -> Check:
    """Whether runtime_mode=job can run here (the site delegated the task cgroup)."""
    from ksi.runtime import preflight

    found = preflight.check(ctx.provider, root=str(ctx.root), uid=ctx.uid)
    if found.ok:
        return Check("job-scoped runtime", PASS,
                     f"possible: task cgroup {found.task_cgroup} is delegated to you")
    if ctx.runtime_mode != "job":
        return Check("job-scoped runtime", SKIP,
                     f"not configured (runtime_mode=user: node containers run outside the job's "
                     f"cgroup); runtime_mode=job would need: {found.line()}")
    return Check("job-scoped runtime", FAIL,
                 f"runtime_mode=job is configured but not possible here: {found.line()}",
                 "ask an admin to install contrib/site-hooks/ksi-delegate-cgroup "
                 "(docs/runtime.md), or set runtime_mode = user",
                 int(Exit.RUNTIME_MODE_REFUSED))


def check_node_cgroups(ctx: Context) -> Check:
    """Where the node containers of your running clusters are, and which limits apply."""
    from ksi.runtime import cgroups

    code, out, err = _tool_output(
        ctx, [ctx.provider, "ps", "--filter", "label=io.x-k8s.kind.cluster", "--format",
              "{{.Names}}"])
    if code != 0:
        return Check("node containers", SKIP, f"cannot list containers ({err.strip()[-120:]})")
    names = [n for n in out.split() if n]
    if not names:
        return Check("node containers", SKIP, "no kind node container running")
    parts = []
    for name in names:
        c, pid, _ = _tool_output(ctx, [ctx.provider, "inspect", "-f", "{{.State.Pid}}", name])
        if c != 0 or not pid.strip().isdigit():
            parts.append(f"{name}: pid unknown")
            continue
        d = cgroups.describe(pid.strip(), proc_root=str(ctx.path("/proc")),
                             cgroup_root=str(ctx.path("/sys/fs/cgroup")))
        limits = ", ".join(f"{k}={v['value']}" for k, v in sorted(d["limits"].items()))
        parts.append(f"{name}: {d['placement']} ({d['cgroup']}; {limits or 'no limits'})")
    outside = [p for p in parts if "inside job" not in p]
    status = WARN if outside and ctx.environ.get("SLURM_JOB_ID") else PASS
    return Check("node containers", status, "; ".join(parts),
                 "runtime_mode=job keeps node containers inside the job (docs/runtime.md)"
                 if status == WARN else "")


HOST_CHECKS: tuple[Callable[[Context], Check], ...] = (
    check_cgroup_v2, check_delegation, check_runtime_dir, check_daemon, check_subuid,
    check_subgid, check_modules, check_inotify, check_kernel, check_liqo_networking,
    check_bypass4netns,
    check_shared_dir, check_ports, check_job_runtime, check_node_cgroups,
)


def all_checks(ctx: Context) -> list[Check]:
    out = tool_checks(ctx)
    for fn in HOST_CHECKS:
        try:
            out.append(fn(ctx))
        except Exception as exc:  # a check must never crash the doctor
            out.append(Check(fn.__name__.removeprefix("check_"), WARN,
                             f"check crashed: {exc!r}"))
    return out


def cheap_checks(runner: Runner, provider: str, *, environ: Optional[dict[str, str]] = None
                 ) -> list[Check]:
    """What `ksi run` checks first: the tools are there and new enough (one exec of kind)."""
    ctx = Context(runner=runner, provider=provider,
                  environ=dict(os.environ if environ is None else environ))
    if provider == "auto":
        for cand in ("nerdctl", "podman", "docker"):
            if runner.which(cand, ctx.environ):
                ctx.provider = cand
                break
        else:
            return [Check("provider", FAIL, "no container runtime found (looked for nerdctl, "
                          "podman, docker)", "install rootless nerdctl or podman, or load its "
                          "module (see 'ksi doctor')", int(Exit.PROVIDER_MISSING))]
    checks = [check_present(ctx, ctx.provider, f"install {ctx.provider} (or load its module), "
                            "or pick another --provider", name=f"provider {ctx.provider}",
                            code=Exit.PROVIDER_MISSING,
                            cause=f"provider {ctx.provider}: '{ctx.provider}' is not on PATH"),
              check_present(ctx, "kind", "install kind >= 0.23 (a single binary) or load its "
                            "module; see 'ksi doctor'")]
    if checks[-1].status == PASS:
        nerd = ctx.provider == "nerdctl"
        checks.append(check_version(
            ctx, "kind version", ["kind", "version"], MIN_KIND_NERDCTL if nerd else MIN_KIND,
            "install a newer kind (https://kind.sigs.k8s.io/docs/user/quick-start/)",
            why="kind's nerdctl provider needs kind >= 0.23" if nerd else ""))
    checks.append(check_present(ctx, "kubectl", "install kubectl or load its module; see "
                                "'ksi doctor'"))
    return checks


def raise_first_failure(checks: list[Check]) -> None:
    for c in checks:
        if c.status == FAIL:
            raise KsiError(c.detail, c.fix, code=Exit(c.code))


def worst(checks: list[Check]) -> str:
    w = PASS
    for c in checks:
        if RANK[c.status] > RANK[w]:
            w = c.status
    return w


def exit_code(checks: list[Check]) -> int:
    return {PASS: 0, WARN: WARN_EXIT, FAIL: int(Exit.PREFLIGHT_FAILED)}[worst(checks)]


def render(checks: list[Check]) -> str:
    width = max((len(c.name) for c in checks), default=10)
    lines = []
    for c in checks:
        lines.append(f"{c.status.upper():4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in (WARN, FAIL):
            lines.append(f"{'':4}  {'':<{width}}  fix: {c.fix}")
    counts = {s: sum(1 for c in checks if c.status == s) for s in (PASS, WARN, FAIL)}
    lines.append(f"doctor: {counts[PASS]} pass, {counts[WARN]} warn, {counts[FAIL]} fail")
    return "\n".join(lines)
