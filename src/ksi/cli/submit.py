"""`ksi submit`: write and submit a batch script (ksi.ops.submit)."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ksi.cli.common import die, load_settings, runner


@click.command("submit", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": True})
@click.option("--dry-run", is_flag=True, help="Print the batch script; submit nothing.")
@click.option("--signal-margin", type=int, default=None,
              help="Seconds before the time limit at which Slurm sends TERM to the batch "
              "shell (default: teardown_margin + 60).")
@click.option("--each", is_flag=True, help="Several nodes, each with its own cluster.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(dry_run: bool, signal_margin: Optional[int], each: bool,
            args: tuple[str, ...]) -> None:
    """Submit WORKLOAD as a batch job: ksi submit [SBATCH OPTIONS] WORKLOAD [SHARED_DIR].

    Writes a batch script with '#SBATCH --signal=B:TERM@<margin>' that runs 'ksi run'
    (directly on one node; as an srun step with TERM forwarded on several) and prints the
    job id. Put ksi run's arguments after '--' when they are ambiguous.
    """
    from ksi.errors import KsiError
    from ksi.ops.submit import submit as do_submit

    s = load_settings()
    margin = signal_margin if signal_margin is not None else int(s.teardown_margin) + 60
    try:
        sys.exit(do_submit(list(args), runner(), margin=margin, dry_run=dry_run, each=each))
    except KsiError as exc:
        die(exc)
