"""The `ksi` command line (click). Subcommands import their modules lazily: `ksi --help` is fast."""

from __future__ import annotations

import sys
from typing import Any, Optional

import click

from ksi import __version__
from ksi.images import images_cli
from ksi.ops.commands import COMMANDS as ops_commands
from ksi.runtime.options import flags as runtime_flags
from ksi.runtime.options import runtime_options

PROVIDERS = ("nerdctl", "podman", "docker", "auto")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ksi")
def cli() -> None:
    """KSI: run Kubernetes workloads inside Slurm jobs on a temporary Kind cluster.

    Start with `ksi doctor` (what this node lacks) and `ksi run --dry-run WORKLOAD`.
    """


def _console(verbose: bool) -> Any:
    from ksi.output import Console

    return Console(verbose=verbose)


@cli.command(context_settings={"ignore_unknown_options": False})
@click.argument("workload", required=False)
@click.argument("extra", nargs=-1)
@click.option("--provider", default=None, metavar="|".join(PROVIDERS),
              help="Container runtime kind uses (default nerdctl, as the original KSI).")
@click.option("--image", default=None, help="kind node image.")
@click.option("--systemd-scope/--no-systemd-scope", default=None,
              help="Wrap kind in 'systemd-run --user --scope'.")
@click.option("--each", is_flag=True, help="Multi-node: every node runs the workload on its "
              "own cluster, no peering (the original's behaviour).")
@click.option("--federate", "federate", flag_value="always", default=None,
              help="Install Liqo even on one node (federate=always), so a multi-node "
              "workload runs unchanged there.")
@click.option("--dry-run", is_flag=True, help="Print the plan and the commands; change nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Show every command (secrets masked).")
@click.option("--report", default=None, help="Run report path (JSON).")
@click.option("--log-dir", default=None, help="Where cluster logs go on failure.")
@click.option("--kind-config", default=None, help="YAML fragment merged into the kind config.")
@click.option("--state-dir", default=None, help="Private node-local state directory.")
@click.option("--logs", default=None, type=click.Choice(["follow", "end", "none"]),
              help="Manifest runs: the pods' logs live (default), at the end, or not.")
@runtime_options
def run(workload: Optional[str], extra: tuple[str, ...], provider: Optional[str],
        image: Optional[str], systemd_scope: Optional[bool], each: bool,
        federate: Optional[str], dry_run: bool, verbose: bool, report: Optional[str],
        log_dir: Optional[str], kind_config: Optional[str], state_dir: Optional[str],
        logs: Optional[str]) -> None:
    """Create a cluster, run WORKLOAD (a bash script, or manifests *.yaml) in it, delete it.

    Usage: ksi run WORKLOAD [SHARED_DIR] or ksi run MANIFEST.yaml [MORE.yaml ...] [SCRIPT].
    """
    from ksi.lifecycle import RunOptions
    from ksi.lifecycle import run as do_run

    if not workload:
        raise click.UsageError("missing WORKLOAD (a workload script or manifest files)")
    script, shared, manifests = _split_args(workload, extra)
    flags = {"provider": provider, "image": image, "systemd_scope": systemd_scope,
             "report": report, "log_dir": log_dir, "kind_config": kind_config,
             "state_dir": state_dir, "federate": federate, "logs": logs}
    flags.update(runtime_flags())
    opts = RunOptions(workload=script, shared_dir=shared, dry_run=dry_run, each=each,
                      manifests=manifests, flags=flags)
    from ksi.runner import Runner

    sys.exit(do_run(opts, _console(verbose), Runner()))


def _split_args(first: str, extra: tuple[str, ...]) -> tuple[Optional[str], Optional[str],
                                                               list[str]]:
    """Positional arguments: manifests (*.yaml/*.yml/*.json), at most one script, and an
    optional shared directory (the original's second argument)."""
    import os

    args = (first, *extra)
    manifests = [a for a in args if a.endswith((".yaml", ".yml", ".json"))]
    rest = [a for a in args if a not in manifests]
    if len(rest) > 2:
        raise click.UsageError(f"unexpected argument {rest[2]!r}")
    if manifests and len(rest) == 1 and os.path.isdir(rest[0]):
        return None, rest[0], manifests
    script = rest[0] if rest else None
    shared = rest[1] if len(rest) > 1 else None
    return script, shared, manifests


cli.add_command(images_cli)
for _cmd in ops_commands:  # doctor, ls, gc, shell, submit, config (ksi.ops)
    cli.add_command(_cmd)


def main() -> None:
    try:
        cli.main(prog_name="ksi", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
