"""`ksi doctor`: every check, in order, shown as text, JSON or an admin script."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, TextIO

from ksi.checks import host, runtime
from ksi.checks.model import WARN, Check, Context, exit_code
from ksi.checks.render import admin_script, as_json, render
from ksi.checks.tools import resolve_provider, tool_checks

if TYPE_CHECKING:
    from ksi.runner import Runner
    from ksi.settings import Settings

HOST_CHECKS: tuple[Callable[[Context], Check], ...] = (
    host.check_cgroup_v2, host.check_delegation, host.check_runtime_dir, runtime.check_daemon,
    host.check_subuid, host.check_subgid, host.check_modules, host.check_inotify,
    host.check_kernel, host.check_liqo_networking, runtime.check_bypass4netns,
    runtime.check_shared_dir, runtime.check_ports, runtime.check_job_runtime,
    runtime.check_node_cgroups, runtime.check_epilog,
)


def context_from(settings: Settings, runner: Runner, *, root: Optional[str] = None,
                 clusters: int = 1, shared_dir: Optional[str] = None,
                 provider: Optional[str] = None) -> Context:
    """The checks' context from the effective settings and doctor's options."""
    environ = dict(os.environ)
    root = root or environ.get("KSI_DOCTOR_ROOT") or "/"
    name = provider or settings.provider
    prov = resolve_provider(runner, name, environ) or name
    return Context(runner=runner, provider=prov, root=Path(root), clusters=clusters,
                   shared_dir=shared_dir, bypass4netns=settings.bypass4netns,
                   port_range=settings.port_range(), api_port_range=settings.api_port_range(),
                   lock_dir=settings.lock_dir, runtime_mode=settings.runtime_mode,
                   liqo_version=settings.liqo_version, liqo_chart=settings.liqo_chart,
                   liqo_networking=settings.liqo_networking, environ=environ,
                   image_archive_dir=settings.image_archive_dir)


def all_checks(ctx: Context) -> list[Check]:
    out = tool_checks(ctx)
    for fn in HOST_CHECKS:
        try:
            out.append(fn(ctx))
        except Exception as exc:  # a check must never crash the doctor
            out.append(Check(fn.__name__.removeprefix("check_"), WARN,
                             f"check crashed: {exc!r}"))
    from ksi.gpu.checks import gpu_checks  # GPUs: only where the node or the job has them

    out += gpu_checks(ctx)
    return out


def main(settings: Settings, runner: Runner, *, as_json_out: bool = False,
         admin: bool = False, clusters: int = 1, shared_dir: Optional[str] = None,
         provider: Optional[str] = None, root: Optional[str] = None,
         out: Optional[TextIO] = None) -> int:
    """Run every check and print them; the exit code (0, 96 warnings, 93 failures; 0 for
    the admin script, which only prints commands)."""
    out = out or sys.stdout
    ctx = context_from(settings, runner, root=root, clusters=clusters, shared_dir=shared_dir,
                       provider=provider)
    checks = all_checks(ctx)
    if admin:
        out.write(admin_script(checks, ctx))
        return 0
    out.write((as_json(checks) if as_json_out else render(checks)) + "\n")
    return exit_code(checks)
