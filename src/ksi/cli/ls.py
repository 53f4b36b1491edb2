"""`ksi ls`: your KSI clusters (ksi.ops.inventory)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Optional

import click

from ksi.cli.common import load_settings, quiet_logs, runner

if TYPE_CHECKING:
    from ksi.settings import Settings


def _age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


@click.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all-nodes", is_flag=True, help="Also clusters on other nodes (needs the "
              "registry_dir setting: a directory every node shares).")
@click.option("--provider", default=None, help="Runtime to look in (default: the setting).")
def command(as_json: bool, all_nodes: bool, provider: Optional[str]) -> None:
    """List your KSI clusters: job, job state, node, age, ports."""
    from ksi.ops.inventory import inventory

    quiet_logs()
    s = load_settings()
    if all_nodes and not s.registry_dir:
        click.echo("ksi: error: --all-nodes needs the shared registry -- fix: set registry_dir"
                   " (KSI_REGISTRY_DIR) to a directory all nodes share, e.g. on NFS", err=True)
        sys.exit(64)
    items, problems = inventory(s, runner(), dict(os.environ), registry=all_nodes,
                                provider_name=provider, all_jobs=True)
    for p in problems:
        click.echo(f"ksi: warning: {p}", err=True)
    rows = [i.as_dict() for i in items]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no KSI clusters", err=True)
    else:
        _print([
            ("CLUSTER", "JOB", "JOB STATE", "STATUS", "NODE", "AGE", "PORTS"),
            *_rows(rows)])
    _templates(s)


def _templates(s: Settings) -> None:
    """This user's warm templates (ksi warm), after the clusters."""
    from ksi.errors import KsiError
    from ksi.ops.warm import templates

    try:
        found = templates(s, runner())
    except KsiError as exc:
        click.echo(f"ksi: warning: cannot list warm templates: {exc.cause}", err=True)
        return
    if found:
        click.echo("")   # after the clusters
        _print([("TEMPLATE", "IMAGE", "STATUS", "AGE", "BUILT IN"),
                *[(t.key[:12], t.image or "-", t.status, _age(t.age_seconds),
                   f"{t.build_seconds:.0f}s" if t.build_seconds else "-") for t in found]])


def _rows(rows: list[dict]) -> list[tuple]:
    table = []
    for r in rows:
        ports = ",".join(f"{k}={v}" for k, v in (r["ports"] or {}).items() if v)
        table.append((r["cluster"], r["job"] or "-", r["job_state"] or "-", r["status"],
                      r["node"] or "-", _age(r["age_seconds"]), ports or "-"))
    return table


def _print(table: list[tuple]) -> None:
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
