"""`ksi warm`: make this user's warm cluster template for the current settings (runs then
start from a clone of it in seconds), or remove the templates (--rm)."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ksi.cli.common import die, load_settings, quiet_logs, runner


@click.command("warm")
@click.option("--rm", "remove", is_flag=True, help="Remove all your templates (their images, "
              "/var volumes and records).")
@click.option("--force", is_flag=True, help="Make the template again even if it is valid.")
@click.option("--provider", default=None, help="Runtime (default: the setting; podman only "
              "so far).")
@click.option("--image", default=None, help="kind node image (default: the setting).")
@click.option("--kind-config", default=None, help="YAML fragment merged into the kind config "
              "(as for 'ksi run').")
@click.option("-v", "--verbose", is_flag=True, help="Show every command.")
def command(remove: bool, force: bool, provider: Optional[str], image: Optional[str],
            kind_config: Optional[str], verbose: bool) -> None:
    """Make the warm template for your current settings (once; kept until 'ksi warm --rm' or
    'ksi gc' finds it stale). It lives in your own runtime storage and ~/.local/state/ksi/warm
    (private); it is never shared with other users."""
    import time

    from ksi.errors import Exit, KsiError
    from ksi.ops import warm

    quiet_logs(verbose)
    _signals_interrupt()
    flags = {"provider": provider, "image": image, "kind_config": kind_config}
    s = load_settings(flags)
    try:
        if remove:
            lines, problems = warm.remove(s, runner())
            for line in lines or ["no warm templates"]:
                click.echo(line)
            for p in problems:
                click.echo(f"ksi: warning: {p}", err=True)
            sys.exit(int(Exit.TEARDOWN_INCOMPLETE) if problems else 0)
        t0 = time.monotonic()
        rec, made = warm.make(s, runner(), force=force)
    except KsiError as exc:
        die(exc)
    what = f"made in {time.monotonic() - t0:.1f}s" if made else "already valid"
    click.echo(f"warm template {rec.key[:12]} {what}: image {rec.inputs['image']}, /var "
               f"volume {rec.volume}; 'ksi run' now starts from it")


def _signals_interrupt() -> None:
    """SIGTERM and SIGHUP stop a build as Ctrl-C does: what it made is removed first."""
    import signal

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
