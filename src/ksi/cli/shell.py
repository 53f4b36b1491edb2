"""`ksi shell`: an interactive shell on a fresh cluster (ksi.ops.shell)."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ksi.cli.common import console, runner


@click.command("shell")
@click.option("--provider", default=None, help="Container runtime kind uses.")
@click.option("--image", default=None, help="kind node image.")
@click.option("--state-dir", default=None, help="Private node-local state directory.")
@click.option("--shell", "shell", default="bash", show_default=True, help="Shell to start.")
@click.option("-v", "--verbose", is_flag=True, help="Show every command (secrets masked).")
def command(provider: Optional[str], image: Optional[str], state_dir: Optional[str],
            shell: str, verbose: bool) -> None:
    """Bring up a cluster and open an interactive shell on it (inside salloc or locally).

    The prompt shows (ksi:<cluster>); K8S_CLUSTER_NAME, KUBECONFIG, K8S_PORT, ... are set.
    The cluster is deleted when the shell exits or the allocation ends; the exit status is
    the shell's.
    """
    from ksi.ops.shell import run_shell

    flags = {"provider": provider, "image": image, "state_dir": state_dir}
    sys.exit(run_shell(flags, console(verbose), runner(), shell=shell))
