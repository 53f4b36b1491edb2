"""Runtime checks: the runtime answers (rootless), bypass4netnsd, the shared directory, free
ports, the job-scoped runtime, where running node containers are, the Slurm epilog."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from ksi.checks.model import FAIL, PASS, SKIP, WARN, Check, Context, linger
from ksi.errors import CommandFailed, Exit, KsiError, ToolMissing, last_line

HOOK = "site-hooks/ksi-delegate-cgroup"
EPILOG = "slurm/ksi-epilog.sh"
# slurm.conf: the usual place, then configless slurmd's copies
SLURM_CONFS = ("/etc/slurm/slurm.conf", "/run/slurm/conf/slurm.conf",
               "/var/spool/slurmd/conf-cache/slurm.conf")


def check_daemon(ctx: Context) -> Check:
    binary = ctx.provider
    provider = ctx.runtime()
    if provider is None or not ctx.runner.which(binary, ctx.environ):
        return Check("runtime reachable", SKIP, f"'{binary}' not found")
    try:
        rootless = provider.info(timeout=30).rootless
    except (CommandFailed, ToolMissing) as exc:   # exits non-zero, times out, cannot run
        said = last_line(exc.stderr) or last_line(exc.stdout) \
            if isinstance(exc, CommandFailed) else ""
        return Check("runtime reachable", FAIL, f"'{binary} info' failed: {said or exc.cause}",
                     provider.daemon_fix, int(Exit.RUNTIME_UNAVAILABLE))
    except KsiError:  # it answered, but not with JSON
        return Check("runtime reachable", PASS, f"{binary} answers (info not JSON)")
    if not rootless and ctx.uid != 0:
        return Check("runtime reachable", WARN, f"{binary} answers but is not rootless",
                     "use the rootless daemon (containerd-rootless-setuptool.sh install)")
    return Check("runtime reachable", PASS, f"{binary} answers"
                 + (" (rootless)" if rootless else ""))


def _procs_named(ctx: Context, comm: str) -> list[int]:
    out = []
    try:
        entries = list(ctx.path("/proc").iterdir())
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
    user, uid = ctx.user, ctx.uid
    admin = (linger(ctx), "# bypass4netnsd comes with nerdctl-full (/usr/local/bin); the "
             "unit is the user's own:\n"
             f"if ! pgrep -u {user} -x bypass4netnsd >/dev/null; then\n"
             f"  runuser -u {user} -- env XDG_RUNTIME_DIR=/run/user/{uid} "
             f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus \\\n"
             "    containerd-rootless-setuptool.sh install-bypass4netnsd\nfi",)
    return Check("bypass4netnsd", status, "bypass4netnsd is not running: pod networking "
                 "falls back to slirp4netns (about 7% of line rate)",
                 "containerd-rootless-setuptool.sh install-bypass4netnsd", admin=admin)


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
                     "ask an admin: chmod 1777 " + str(lock),
                     admin=(f"chmod 1777 {lock}   # shared by every user's runs, sticky",))
    detail = "; ".join(parts) + f" ({len(held)} reserved by KSI runs)"
    if worst == FAIL:
        return Check("free ports", FAIL, detail, "end other runs or widen port_range / "
                     "api_port_range in the KSI config", int(Exit.NO_FREE_PORT))
    return Check("free ports", PASS, detail)


def hook_block(ctx: Context) -> str:
    """Admin bash: install the job-scoped runtime's cgroup delegation hook."""
    return (f"install -m 0755 {ctx.contrib(HOOK)} /usr/local/sbin/ksi-delegate-cgroup\n"
            f"install -m 0755 {ctx.contrib('site-hooks/prolog-ksi.sh')} "
            "/etc/slurm/prolog-ksi.sh\n"
            "# then call /etc/slurm/prolog-ksi.sh from slurm.conf's Prolog (PrologFlags="
            "Contain) and: scontrol reconfigure\n# (contrib/site-hooks/README.md)")


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
                 int(Exit.RUNTIME_MODE_REFUSED), admin=(hook_block(ctx),))


def check_node_cgroups(ctx: Context) -> Check:
    """Where the node containers of your running clusters are, and which limits apply."""
    from ksi.runtime import cgroups

    provider = ctx.runtime()
    if provider is None:
        return Check("node containers", SKIP, f"cannot list containers (unknown runtime "
                     f"{ctx.provider!r})")
    try:
        names = [name for name, _ in provider.all_kind_containers(running=True)]
    except KsiError as exc:
        text = exc.stderr if isinstance(exc, CommandFailed) and exc.stderr else exc.cause
        return Check("node containers", SKIP, f"cannot list containers ({text.strip()[-120:]})")
    if not names:
        return Check("node containers", SKIP, "no kind node container running")
    parts = []
    for name in names:
        pid = provider.container_pid(name)
        if pid is None:
            parts.append(f"{name}: pid unknown")
            continue
        d = cgroups.describe(pid, proc_root=str(ctx.path("/proc")),
                             cgroup_root=str(ctx.path("/sys/fs/cgroup")))
        limits = ", ".join(f"{k}={v['value']}" for k, v in sorted(d["limits"].items()))
        parts.append(f"{name}: {d['placement']} ({d['cgroup']}; {limits or 'no limits'})")
    outside = [p for p in parts if "inside job" not in p]
    status = WARN if outside and ctx.environ.get("SLURM_JOB_ID") else PASS
    return Check("node containers", status, "; ".join(parts),
                 "runtime_mode=job keeps node containers inside the job (docs/runtime.md)"
                 if status == WARN else "")


def check_epilog(ctx: Context) -> Check:
    """A Slurm node runs KSI's epilog (ksi gc for the job) after each job."""
    confs = [c for c in (ctx.environ.get("SLURM_CONF", ""), *SLURM_CONFS) if c]
    conf = next((c for c in confs if ctx.path(c).is_file()), None)
    if conf is None:
        return Check("Slurm epilog", SKIP, "no slurm.conf here (not a Slurm node, or a "
                     "configless one without its copy)")
    text = ctx.read(conf) or ""
    epilogs = [p.strip() for m in re.finditer(r"(?im)^\s*Epilog\s*=\s*(\S+)", text)
               for p in m[1].split(",")]
    for e in epilogs:
        paths = sorted(ctx.path(os.path.dirname(e)).glob(os.path.basename(e))) \
            if any(ch in e for ch in "*?[") else [ctx.path(e)]
        for p in paths:
            try:
                body = p.read_text(errors="replace")
            except OSError:
                body = ""
            if "ksi" in os.path.basename(str(p)) or "ksi-epilog" in body \
                    or "ksi gc" in body:
                return Check("Slurm epilog", PASS, f"{conf}: Epilog={e} runs KSI's gc")
    return Check("Slurm epilog", WARN, f"{conf} runs no KSI epilog (Epilog="
                 f"{','.join(epilogs) or 'unset'}): what a killed run leaves on the node "
                 "stays until 'ksi gc'",
                 "ask an admin to install contrib/slurm/ksi-epilog.sh as the Slurm epilog "
                 "(docs/site-setup.md)", admin=(
                     f"install -d /etc/slurm\ninstall -m 0755 {ctx.contrib(EPILOG)} "
                     "/etc/slurm/ksi-epilog.sh\n"
                     "# then in slurm.conf on every node: Epilog=/etc/slurm/ksi-epilog.sh "
                     "(or call it from the existing\n# epilog script), and: scontrol "
                     "reconfigure",))
