"""`ksi run`: create a cluster, run the workload in it, delete it: the one list of steps
(ksi.federate.steps.run_steps: a node's steps with the federation's), executed by
ksi.run.step.execute."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional

import click

from ksi.cli.common import console, runner

if TYPE_CHECKING:
    from ksi.output import Console
    from ksi.run.options import RunOptions
    from ksi.runner import Runner

PROVIDERS = ("nerdctl", "podman", "docker", "auto")   # ksi.provision.providers.CHOICES


@click.command("run", context_settings={"ignore_unknown_options": False})
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
@click.option("--cold", is_flag=True, help="Create the cluster cold (kind create), never from "
              "a warm template (warm=off).")
@click.option("--dry-run", is_flag=True, help="Print the plan and the commands; change nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Show every command (secrets masked).")
@click.option("--report", default=None, help="Run report path (JSON).")
@click.option("--log-dir", default=None, help="Where cluster logs go on failure.")
@click.option("--kind-config", default=None, help="YAML fragment merged into the kind config.")
@click.option("--state-dir", default=None, help="Private node-local state directory.")
@click.option("--logs", default=None, type=click.Choice(["follow", "end", "none"]),
              help="Manifest runs: the pods' logs live (default), at the end, or not.")
@click.option("--gpus", type=click.Choice(("auto", "none", "required")), default=None,
              help="The job's GPUs in the cluster: auto (when Slurm gave the job GPUs), none "
              "(never), required (fail, exit 97, without GPUs).")
@click.option("--runtime-mode", type=click.Choice(("user", "job")), default=None,
              help="job: a private rootless runtime inside the job's cgroup, stopped with the "
              "job (needs the site's cgroup delegation; docs/runtime.md).")
@click.option("--image-archive", default=None, metavar="PATH",
              help="Node image archive, loaded only when the runtime lacks the image.")
@click.option("--preload", multiple=True, metavar="ARCHIVE",
              help="Image archive loaded into the new cluster (repeatable).")
@click.option("--bypass4netns", type=click.Choice(("auto", "on", "off")), default=None,
              help="Near line-rate pod networking for nerdctl (auto: where bypass4netnsd "
              "runs).")
def command(workload: Optional[str], extra: tuple[str, ...], provider: Optional[str],
            image: Optional[str], systemd_scope: Optional[bool], each: bool,
            federate: Optional[str], cold: bool, dry_run: bool, verbose: bool,
            report: Optional[str],
            log_dir: Optional[str], kind_config: Optional[str], state_dir: Optional[str],
            runtime_mode: Optional[str], image_archive: Optional[str], preload: tuple[str, ...],
            bypass4netns: Optional[str], logs: Optional[str],
            gpus: Optional[str]) -> None:
    """Create a cluster, run WORKLOAD (a bash script, or manifests *.yaml) in it, delete it.

    Usage: ksi run WORKLOAD [SHARED_DIR] or ksi run MANIFEST.yaml [MORE.yaml ...] [SCRIPT].
    """
    from ksi.run.options import RunOptions

    if not workload:
        raise click.UsageError("missing WORKLOAD (a workload script or manifest files)")
    script, shared, manifests = split_args(workload, extra)
    flags = {"provider": provider, "image": image, "systemd_scope": systemd_scope,
             "report": report, "log_dir": log_dir, "kind_config": kind_config,
             "state_dir": state_dir, "federate": federate, "runtime_mode": runtime_mode,
             "image_archive": image_archive, "preload": ",".join(preload) or None,
             "bypass4netns": bypass4netns, "logs": logs,
             "gpus": gpus, "warm": "off" if cold else None}
    opts = RunOptions(workload=script, shared_dir=shared, dry_run=dry_run, each=each,
                      manifests=manifests, flags=flags)
    sys.exit(run(opts, console(verbose), runner()))


def run(opts: RunOptions, console: Console, runner: Runner) -> int:
    """The whole run (or, with --dry-run, its plan and commands); the exit code."""
    from ksi.federate.steps import run_steps
    from ksi.run.context import RunContext
    from ksi.run.step import execute

    return execute(RunContext(opts, console, runner), run_steps())


def split_args(first: str, extra: tuple[str, ...]) -> tuple[Optional[str], Optional[str],
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
