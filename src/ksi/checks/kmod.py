"""Is a kernel module there? Loaded, built in, loadable, or not in this kernel.

Looked up in order: /proc/modules (loaded); /sys/module/<name> (loaded, or built in with
parameters); /lib/modules/<release>/modules.builtin (built in); the kernel config,
/proc/config.gz or /boot/config-<release> (=y built in, =m a module); modules.dep (a module
file is installed). All under the check context's root."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Optional

from ksi.checks.model import Context

LOADED, BUILTIN, LOADABLE, ABSENT, UNKNOWN = "loaded", "built in", "loadable", "absent", \
    "unknown"
PRESENT = (LOADED, BUILTIN)
# module name -> the Kconfig symbol that builds it (the obj-$(CONFIG_...) line of its Makefile)
KCONFIG = {
    "ip_tables": "CONFIG_IP_NF_IPTABLES",      # net/ipv4/netfilter
    "iptable_nat": "CONFIG_IP_NF_NAT",
    "ip6_tables": "CONFIG_IP6_NF_IPTABLES",    # net/ipv6/netfilter
    "ip6table_nat": "CONFIG_IP6_NF_NAT",
    "wireguard": "CONFIG_WIREGUARD",           # drivers/net/wireguard
    "geneve": "CONFIG_GENEVE",                 # drivers/net/geneve.c
}


def read_config(ctx: Context, release: str) -> Optional[dict[str, str]]:
    """The kernel config as {CONFIG_X: 'y'|'m'|'n'} (None: no config found)."""
    text = None
    try:
        text = gzip.decompress(ctx.path("/proc/config.gz").read_bytes()).decode(
            errors="replace")
    except (OSError, EOFError, ValueError):
        text = ctx.read(f"/boot/config-{release}")
    if text is None:
        return None
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:].split()[0]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            key, _, val = line.partition("=")
            out[key] = val.strip('"')
    return out


@dataclass
class KernelModules:
    """What the kernel under ctx's root says about its modules."""

    loaded: set[str] = field(default_factory=set)
    builtin: str = ""
    dep: str = ""
    config: Optional[dict[str, str]] = None
    sys_module: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, ctx: Context) -> KernelModules:
        release = ctx.release()
        km = cls(config=read_config(ctx, release))
        km.loaded = {ln.split()[0] for ln in (ctx.read("/proc/modules") or "").splitlines()
                     if ln.strip()}
        km.builtin = ctx.read(f"/lib/modules/{release}/modules.builtin") or ""
        km.dep = ctx.read(f"/lib/modules/{release}/modules.dep") or ""
        try:
            km.sys_module = {p.name for p in ctx.path("/sys/module").iterdir()}
        except OSError:
            pass
        return km

    def _listed(self, text: str, name: str) -> bool:
        text = "\n" + text
        return any(f"/{n}.ko" in text or f"\n{n}.ko" in text
                   for n in {name, name.replace("_", "-")})

    def state(self, name: str) -> str:
        """LOADED, BUILTIN, LOADABLE (a module that is not loaded), ABSENT or UNKNOWN."""
        if name in self.loaded:
            return LOADED
        config = (self.config or {}).get(KCONFIG.get(name, ""), "")
        builtin = config == "y" or self._listed(self.builtin, name)
        if name in self.sys_module:  # loaded, or built in (with parameters)
            return BUILTIN if builtin else LOADED
        if builtin:
            return BUILTIN
        if config == "m" or self._listed(self.dep, name):
            return LOADABLE
        if self.config is not None and name in KCONFIG:
            return ABSENT
        return UNKNOWN

    def states(self, names: tuple[str, ...]) -> dict[str, str]:
        return {n: self.state(n) for n in names}


def persist_block(names: list[str], conf: str = "/etc/modules-load.d/ksi.conf") -> str:
    """Admin bash: load the modules now and at every boot (modules-load.d), idempotently."""
    mods = " ".join(names)
    return (f"modprobe -a {mods}\n"
            "install -d /etc/modules-load.d\n"
            f"for m in {mods}; do\n"
            f"  grep -qxF \"$m\" {conf} 2>/dev/null || echo \"$m\" >> {conf}\n"
            "done")


def kernel_block(names: list[str]) -> str:
    """Admin comment: these modules are not in this kernel at all."""
    syms = ", ".join(KCONFIG.get(n, n) for n in names)
    return (f"# this kernel has no {', '.join(names)} ({syms} not set): modprobe cannot help;"
            "\n# boot a kernel built with them (=y or =m), e.g. the distribution's stock "
            "kernel")
