"""Host checks: cgroup v2 and delegation, XDG_RUNTIME_DIR, subordinate ids, kernel modules,
inotify limits, the kernel for Liqo. Files are read under the context's root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ksi.checks import kmod
from ksi.checks.model import FAIL, PASS, SKIP, WARN, Check, Context, linger, parse_version

MIN_KERNEL_LIQO = (5, 10)
MODULES = ("ip_tables", "ip6_tables", "iptable_nat", "ip6table_nat")
LIQO_MODULES = ("wireguard", "geneve")
DELEGATED = ("cpu", "memory", "pids")
SUBID_MIN = 65536
# host-wide inotify use per kind cluster (kind#1388/#2219: ~10-13 clusters fail at the
# default 128 instances); kind recommends 512 instances / 524288 watches for several.
INOTIFY_PER_CLUSTER = (12, 40000)
INOTIFY_RECOMMENDED = (512, 524288)
INOTIFY_KEYS = ("max_user_instances", "max_user_watches")
INOTIFY_FIX = ("ask an admin: sysctl -w fs.inotify.max_user_instances=512 "
               "fs.inotify.max_user_watches=524288 (persist in /etc/sysctl.d/99-ksi.conf)")
DROPIN = "/etc/systemd/system/user@.service.d/delegate.conf"


def check_cgroup_v2(ctx: Context) -> Check:
    if ctx.path("/sys/fs/cgroup/cgroup.controllers").exists():
        return Check("cgroup v2", PASS, "unified hierarchy mounted at /sys/fs/cgroup")
    return Check("cgroup v2", FAIL, "cgroup v1 (or no cgroup2) at /sys/fs/cgroup: rootless "
                 "kind needs cgroup v2", "ask an admin to boot with "
                 "systemd.unified_cgroup_hierarchy=1 (RHEL 9 default)", admin=(
                     "# needs a change of the kernel command line and a reboot (not done "
                     "here); run the line for\n# this distribution, then reboot:\n"
                     "#   RHEL/Rocky/Alma: grubby --update-kernel=ALL "
                     "--args=systemd.unified_cgroup_hierarchy=1\n"
                     "#   Debian/Ubuntu:   add systemd.unified_cgroup_hierarchy=1 to "
                     "GRUB_CMDLINE_LINUX in /etc/default/grub; update-grub",))


def check_delegation(ctx: Context) -> Check:
    uid = ctx.uid
    rel = f"/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
    text = ctx.read(rel)
    if text is None:
        return Check("cgroup delegation", WARN, f"{rel} not found: no systemd user manager "
                     f"for uid {uid} (inside a job, delegation depends on the site)",
                     f"loginctl enable-linger {ctx.user}", admin=(
                         linger(ctx), "# inside Slurm jobs without a user manager: the "
                         "job-scoped runtime hook instead (docs/site-setup.md)"))
    have = set(text.split())
    missing = [c for c in DELEGATED if c not in have]
    if missing:
        return Check("cgroup delegation", FAIL,
                     f"controllers {', '.join(missing)} not delegated to user@{uid}.service "
                     f"(have: {' '.join(sorted(have)) or 'none'})",
                     "ask an admin: printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' "
                     f"> {DROPIN} && systemctl daemon-reload, then log in again", admin=(
                         f"install -d {os.path.dirname(DROPIN)}\n"
                         f"printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' > "
                         f"{DROPIN}\nsystemctl daemon-reload\n"
                         f"# takes effect when {ctx.user}'s user manager restarts (log out "
                         f"and in, or: systemctl restart user@{uid}.service)",))
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
                     f"loginctl enable-linger {ctx.user} (creates /run/user/{ctx.uid})",
                     admin=(linger(ctx),))
    return Check("XDG_RUNTIME_DIR", PASS, xdg)


def _subid(ctx: Context, file: str) -> Check:
    text = ctx.read(file)
    name = file.rsplit("/", 1)[-1]
    fix = (f"ask an admin: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "
           f"{ctx.user}")
    if ctx.uid == 0:
        return Check(name, SKIP, "root needs no subordinate ids")
    flag = "--add-subuids" if name == "subuid" else "--add-subgids"
    count = (f"awk -F: -v u={ctx.user} -v i={ctx.uid} '$1 == u || $1 == i {{n += $3}} "
             f"END {{print n + 0}}' {file}")
    admin = (f"[ -e {file} ] || install -m 0644 /dev/null {file}\n"
             f"if [ \"$({count})\" -lt {SUBID_MIN} ]; then\n"
             f"  start=$(awk -F: 'BEGIN {{m = 100000}} {{e = $2 + $3; if (e > m) m = e}} "
             f"END {{print m}}' {file})   # after every range given so far\n"
             f"  usermod {flag} \"$start-$((start + {SUBID_MIN - 1}))\" {ctx.user}\n"
             "fi",)
    if text is None:
        return Check(name, FAIL, f"{file} is missing", fix, admin=admin)
    total = 0
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (ctx.user, str(ctx.uid)) and parts[2].isdigit():
            total += int(parts[2])
    if total < SUBID_MIN:
        return Check(name, FAIL, f"{file} gives {ctx.user} {total} subordinate ids "
                     f"(need >= {SUBID_MIN})", fix, admin=admin)
    return Check(name, PASS, f"{total} ids for {ctx.user}")


def check_subuid(ctx: Context) -> Check:
    return _subid(ctx, "/etc/subuid")


def check_subgid(ctx: Context) -> Check:
    return _subid(ctx, "/etc/subgid")


def check_modules(ctx: Context) -> Check:
    """iptables' kernel modules for kube-proxy: loaded or built in."""
    states = kmod.KernelModules.read(ctx).states(MODULES)
    absent = [m for m, s in states.items() if s == kmod.ABSENT]
    missing = [m for m, s in states.items() if s not in kmod.PRESENT and m not in absent]
    if missing or absent:
        parts = [f"not loaded: {', '.join(missing)}"] if missing else []
        if absent:
            parts.append(f"not in this kernel: {', '.join(absent)} "
                         f"({', '.join(kmod.KCONFIG[m] for m in absent)} not set)")
        fixes = [f"modprobe -a {' '.join(missing)} and list them in "
                 "/etc/modules-load.d/ksi.conf"] if missing else []
        if absent:
            fixes.append("boot a kernel built with them")
        return Check("kernel modules", FAIL, "; ".join(parts) + " (kube-proxy in rootless "
                     "kind cannot load them)", "ask an admin: " + "; ".join(fixes),
                     admin=((kmod.persist_block([m for m in MODULES if states[m] not in
                                                  (kmod.BUILTIN, kmod.ABSENT)]),)
                            if missing else ())
                     + ((kmod.kernel_block(absent),) if absent else ()))
    builtin = [m for m, s in states.items() if s == kmod.BUILTIN]
    return Check("kernel modules", PASS, " ".join(MODULES)
                 + (f" (built in: {', '.join(builtin)})" if builtin else ""))


def inotify_limits(root: Path) -> dict[str, Optional[int]]:
    """fs.inotify's max_user_instances and max_user_watches (None: unreadable)."""
    vals: dict[str, Optional[int]] = {}
    for key in INOTIFY_KEYS:
        try:
            vals[key] = int((root / "proc/sys/fs/inotify" / key).read_text().strip())
        except (OSError, ValueError):
            vals[key] = None
    return vals


def inotify_diagnosis(root: str = "/") -> str:
    """The host's inotify limits, the usual cause of kind's node start-up failure."""
    vals = inotify_limits(Path(root))
    parts = [f"fs.inotify.{k}={v}" for k, v in vals.items() if v is not None]
    low = any((vals[k] or 10**9) < want for k, want in zip(INOTIFY_KEYS, INOTIFY_RECOMMENDED))
    text = ", ".join(parts) or "inotify limits unknown"
    return text + (" (low: kind needs about 512 instances / 524288 watches for several "
                   "clusters per node)" if low else "")


def _sysctl_block(vals: dict[str, Optional[int]], need: tuple[int, int]) -> str:
    lines = "\n".join(f"fs.inotify.{k} = {max(want, vals[k] or 0)}"
                      for k, want in zip(INOTIFY_KEYS, need))
    return f"cat > /etc/sysctl.d/99-ksi.conf <<'EOF'\n{lines}\nEOF\n" \
           "sysctl -p /etc/sysctl.d/99-ksi.conf"


def check_inotify(ctx: Context) -> Check:
    vals = inotify_limits(ctx.root)
    inst, watches = (vals[k] for k in INOTIFY_KEYS)
    n = max(1, ctx.clusters)
    need_i, need_w = INOTIFY_PER_CLUSTER[0] * n, INOTIFY_PER_CLUSTER[1] * n
    admin = (_sysctl_block(vals, (max(need_i, INOTIFY_RECOMMENDED[0]),
                                  max(need_w, INOTIFY_RECOMMENDED[1]))),)
    if inst is None or watches is None:
        return Check("inotify limits", WARN, "cannot read /proc/sys/fs/inotify/*",
                     INOTIFY_FIX, admin=admin)
    detail = f"fs.inotify.max_user_instances={inst}, max_user_watches={watches}"
    if inst < need_i or watches < need_w:
        return Check("inotify limits", FAIL, f"{detail}: too low for {n} cluster(s) on this "
                     f"node (need about {need_i} / {need_w}); kind then fails with 'could not "
                     "find a log line that matches ... Multi-User System'", INOTIFY_FIX,
                     admin=admin)
    if inst < INOTIFY_RECOMMENDED[0] or watches < INOTIFY_RECOMMENDED[1]:
        return Check("inotify limits", WARN, f"{detail}: enough for {n} cluster(s), below "
                     "kind's recommended 512 / 524288 for several clusters per node",
                     INOTIFY_FIX, admin=admin)
    return Check("inotify limits", PASS, detail)


def check_kernel(ctx: Context) -> Check:
    release = ctx.release()
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
    states = kmod.KernelModules.read(ctx).states(LIQO_MODULES)
    missing = [m for m, s in states.items() if s in (kmod.ABSENT, kmod.UNKNOWN)]
    if missing:
        absent = [m for m in missing if states[m] == kmod.ABSENT]
        other = [m for m in missing if m not in absent]
        admin = (kmod.kernel_block(absent),) if absent else ()
        if other:
            admin += ("# if modprobe finds no module file, install the kernel's module "
                      "package first (RHEL 9:\n# kernel-modules or kernel-modules-extra; "
                      "Ubuntu: linux-modules-extra-$(uname -r))\n"
                      + kmod.persist_block(other, "/etc/modules-load.d/ksi-liqo.conf"),)
        return Check("kernel for Liqo networking", WARN,
                     f"no {' and no '.join(missing)} kernel module: Liqo's pod network "
                     "between the nodes will not come up",
                     "ask an admin to install the kernel modules, or set liqo_networking = "
                     "false (virtual nodes and offloading, no pod traffic between nodes)",
                     admin=admin)
    return Check("kernel for Liqo networking", PASS, "wireguard and geneve modules present")
