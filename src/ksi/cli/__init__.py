"""The `ksi` command line: the group and main here, one module per command beside it.

Commands are loaded when named (click's lazy group pattern), and each command module imports
its logic only when it runs, so `ksi --help` stays fast. click is imported only in ksi.cli."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Optional

import click

from ksi import __version__

COMMANDS = {  # name -> module of ksi.cli that defines it (attribute `command`)
    "config": "config", "doctor": "doctor", "gc": "gc", "images": "images", "ls": "ls",
    "run": "run", "shell": "shell", "submit": "submit", "warm": "warm",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name in COMMANDS:
            module = importlib.import_module(f"ksi.cli.{COMMANDS[cmd_name]}")
            return module.command  # type: ignore[no-any-return]
        return super().get_command(ctx, cmd_name)


def _version(ctx: click.Context, _param: Any, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from ksi.cli.version import show

    show()
    ctx.exit(0)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show KSI's version and those of kind, kubectl, the runtimes and liqoctl "
              "on PATH.")
def cli() -> None:
    """KSI: run Kubernetes workloads inside Slurm jobs on a temporary Kind cluster.

    Start with `ksi doctor` (what this node lacks) and `ksi run --dry-run WORKLOAD`.
    """


def main() -> None:
    try:
        cli.main(prog_name="ksi", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["COMMANDS", "__version__", "cli", "main"]
