"""`ksi doctor`: check this node for what KSI needs (ksi.checks)."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ksi.cli.common import load_settings, quiet_logs, runner


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--clusters", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="How many clusters you want on this node at once (inotify, ports).")
@click.option("--shared-dir", default=None, help="Check that this shared directory is "
              "writable.")
@click.option("--provider", default=None, help="Runtime to check (default: the setting).")
@click.option("--root", default=None, envvar="KSI_DOCTOR_ROOT",
              help="Read /sys, /proc and /etc under this root (tests; default /).")
@click.option("--admin-script", "admin", is_flag=True, help="Print the admin commands for "
              "what fails or warns here, as a bash script to review (never run; exit 0).")
def command(as_json: bool, clusters: int, shared_dir: Optional[str],
            provider: Optional[str], root: Optional[str], admin: bool) -> None:
    """Check this node for what KSI needs; name each problem's cause and the fix.

    Exit 0: all pass; 96: warnings only; 93: something fails.
    """
    from ksi.checks.doctor import main

    quiet_logs()
    sys.exit(main(load_settings(), runner(), as_json_out=as_json, admin=admin,
                  clusters=clusters, shared_dir=shared_dir, provider=provider, root=root))
