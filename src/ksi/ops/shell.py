"""`ksi shell`: a cluster for an interactive bash; teardown when the shell exits or the
allocation ends."""

from __future__ import annotations

import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

from ksi.errors import KsiError

if TYPE_CHECKING:
    from ksi.cluster import NodeCluster
    from ksi.output import Console
    from ksi.runner import Runner
    from ksi.signals import Guard


def rcfile_text(cluster: str) -> str:
    return ("[ -f ~/.bashrc ] && . ~/.bashrc\n"
            f"PS1={shlex.quote(f'(ksi:{cluster}) ')}\"$PS1\"\n")


def shell_body(shell: str = "bash") -> Any:
    def body(cluster: NodeCluster, guard: Guard) -> int:
        from ksi.plan.paths import write_private
        from ksi.workload.script import wait_workload

        plan = cluster.plan
        variables = cluster.variables()
        variables["KSI_SHELL"] = "1"
        interactive = sys.stdin.isatty()
        if interactive:
            rc = plan.state_dir / "shellrc"
            write_private(rc, rcfile_text(plan.cluster))
            argv = [shell, "--rcfile", str(rc), "-i"]
            print(f"ksi: shell on cluster {plan.cluster} (exit the shell to delete it)",
                  file=sys.stderr, flush=True)
        else:
            argv = [shell]  # reads its commands from stdin
        proc = cluster.runner.spawn(argv, env=variables, cwd=str(plan.workdir),
                                    foreground=interactive)
        return wait_workload(guard, proc)

    return body


def run_shell(flags: dict[str, Any], console: Console, runner: Runner, shell: str = "bash"
              ) -> int:
    from ksi import jobenv, settings
    from ksi.lifecycle import Outcome, RunOptions, finish, run_node
    from ksi.plan.plan import make_plan

    started = time.monotonic()
    opts = RunOptions(workload=None, shared_dir=None, flags=flags)
    try:
        with console.phase("job") as ph:
            cfg = settings.load(flags)
            env = jobenv.detect()
            ph["detail"] = env.describe()
        with console.phase("plan") as ph:
            plan = make_plan(env, cfg, workload=None, shared_dir=None,
                             environ=dict(os.environ), mode="single")
            ph["detail"] = f"cluster {plan.cluster}"
    except KsiError as exc:
        return finish(console, runner, None, Outcome(code=exc.code, error=exc), started)
    return run_node(plan, opts, console, runner, started, body=shell_body(shell))
