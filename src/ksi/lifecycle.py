"""`ksi run` on one node: job -> plan -> reserve -> provision -> access -> workload -> teardown."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ksi import report
from ksi.access.admin import token_seconds
from ksi.errors import Exit, Interrupted, KsiError
from ksi.signals import DEADLINE, Guard

log = logging.getLogger("ksi")

if TYPE_CHECKING:
    from ksi.cluster import NodeCluster
    from ksi.output import Console
    from ksi.plan.plan import Plan
    from ksi.runner import Runner


@dataclass
class RunOptions:
    workload: Optional[str]
    shared_dir: Optional[str]
    dry_run: bool = False
    each: bool = False
    manifests: list[str] = field(default_factory=list)
    flags: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    code: int = 0
    error: Optional[KsiError] = None
    signal: Optional[int] = None
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def time_limit_deadline(plan: Plan, runner: Runner) -> Optional[float]:
    """Seconds from now at which KSI must start tearing down (None: no limit)."""
    left = plan.env.time_left(runner)
    plan.extra["time_left"] = left
    if left is None:
        return None
    return left - plan.settings.teardown_margin


def finish(console: Console, runner: Runner, plan: Optional[Plan], outcome: Outcome,
           started: float, cluster: Optional[NodeCluster] = None) -> int:
    """Write the report, print the last line, return the exit code."""
    code = outcome.code
    if outcome.problems:
        gc = f"run 'ksi gc --job {plan.env.job_id}'" if plan else "run 'ksi gc'"
        what = "teardown incomplete: " + "; ".join(outcome.problems)
        if outcome.error is not None:
            outcome.error.fix += f"; {what}: {gc}"
        elif code == 0:
            outcome.error = KsiError(what, gc, code=Exit.TEARDOWN_INCOMPLETE)
            code = outcome.code = Exit.TEARDOWN_INCOMPLETE
        else:
            console.warn(f"{what}; {gc}")
    if plan is not None:
        path = report.write(plan, console, runner, outcome, started, cluster)
        if path:
            console.info(f"run report: {path}")
    if outcome.error is not None:
        console.error(outcome.error.line())
    else:
        console.info(f"done: exit {code} after {time.monotonic() - started:.1f}s")
    return int(code)


def run(opts: RunOptions, console: Console, runner: Runner) -> int:
    """The whole single-node run (multi-node runs go through ksi.federate)."""
    from ksi import jobenv, settings
    from ksi.plan.plan import check_shared_dir, make_plan
    from ksi.workload.script import check_workload

    started = time.monotonic()
    plan: Optional[Plan] = None
    outcome = Outcome()
    try:
        with console.phase("job") as ph:
            cfg = settings.load(opts.flags)
            env = jobenv.detect()
            ph["detail"] = env.describe()
        with console.phase("plan") as ph:
            workload = check_workload(opts.workload) if opts.workload else None
            shared = check_shared_dir(opts.shared_dir)
            mode = "single"
            if env.num_nodes > 1:
                mode = "each" if opts.each else "federated"
            elif cfg.federate == "always" and not opts.each:
                mode = "federated"   # Liqo on one node too: the same workload for 1..N
            plan = make_plan(env, cfg, workload=workload, shared_dir=shared,
                             environ=dict(os.environ), mode=mode)
            ph["detail"] = f"cluster {plan.cluster}"
    except KsiError as exc:
        outcome.code, outcome.error = exc.code, exc
        return finish(console, runner, plan, outcome, started)

    if opts.dry_run:
        from ksi.dryrun import print_plan

        try:
            print_plan(plan, runner, opts)
        except KsiError as exc:  # e.g. a setting only the federation reads
            console.error(exc.line())
            return int(exc.code)
        return 0
    if plan.mode == "federated":
        from ksi.federate.run import run_federated

        return run_federated(plan, opts, console, runner, started)
    return run_node(plan, opts, console, runner, started)


def run_node(plan: Plan, opts: RunOptions, console: Console, runner: Runner, started: float,
             body: Optional[Callable[[NodeCluster, Guard], int]] = None,
             on_guard: Optional[Callable[[Guard], None]] = None,
             on_failure: Optional[Callable[[Outcome], None]] = None,
             after_provision: Optional[Callable[[NodeCluster], None]] = None) -> int:
    """Create this node's cluster, run `body` (default: the workload), always tear down.

    Multi-node hooks: `on_guard(guard)` right after the signal guard is installed (so a
    watcher thread can interrupt this node's steps), `after_provision(cluster)` once the
    cluster exists (work that overlaps the readiness and access phases), `on_failure(outcome)`
    before teardown when the run failed or was interrupted (so the other nodes learn it at
    once). Commands that helper threads still run at teardown are stopped first."""
    from ksi.cluster import NodeCluster

    outcome = Outcome()
    cluster: Optional[NodeCluster] = None
    with Guard(grace=plan.settings.workload_grace,
               relay_notices=not plan.env.is_slurm) as guard:
        try:
            if on_guard is not None:
                on_guard(guard)
            with console.phase("preflight") as ph:
                cluster = NodeCluster(plan, runner)
                cluster.check_tools()
                if plan.settings.gc_on_start:
                    from ksi.ops.gc import quick_pass

                    ph["detail"] = quick_pass(plan, runner)
                deadline = time_limit_deadline(plan, runner)
                if deadline is not None and deadline <= 0:
                    raise KsiError(
                        f"only {plan.extra['time_left']:.0f}s left in the job, less than the "
                        f"teardown margin ({plan.settings.teardown_margin}s)",
                        "request more time (sbatch/srun -t)", code=Exit.TIME_LIMIT)
                guard.set_deadline(deadline)
            with console.phase("reserve") as ph:
                cluster.reserve()
                ph["detail"] = (f"K8S_PORT={cluster.k8s_port} api={plan.api_address}:"
                                f"{cluster.api_port} state={plan.state_dir}")
            with console.phase("provision") as ph:
                cluster.provision()
                ph["detail"] = f"kind cluster {plan.cluster} ({plan.provider})" + (
                    f", {cluster.create_attempts} attempts" if cluster.create_attempts > 1
                    else "")
            if after_provision is not None:
                after_provision(cluster)
            with console.phase("ready"):
                cluster.wait_ready()
            with console.phase("access") as ph:
                seconds = token_seconds(plan.extra.get("time_left"),
                                        plan.settings.token_duration,
                                        plan.settings.token_margin)
                plan.extra["token_seconds"] = seconds
                cluster.access(seconds)
                ph["detail"] = f"API {cluster.api_url}, token valid {seconds}s"
            with console.phase("workload") as ph:
                outcome.code = (body or _workload_body(opts))(cluster, guard)
                ph["detail"] = f"exit {outcome.code}"
                if guard.received is not None:
                    raise Interrupted(guard.received, guard.reason)
        except KsiError as exc:
            guard.mode = "teardown"
            outcome.code, outcome.error = exc.code, exc
        except Interrupted as exc:
            guard.mode = "teardown"
            _interrupted(outcome, exc)
        except KeyboardInterrupt:
            guard.mode = "teardown"
            _interrupted(outcome, Interrupted(2, "SIGINT"))
        finally:
            guard.mode = "teardown"
            guard.set_deadline(None)
            if on_failure is not None and (outcome.error is not None
                                           or outcome.signal is not None):
                on_failure(outcome)
            stopped = runner.stop_all()  # a helper thread's liqoctl must not outlive the run
            if stopped:
                log.info("stopped %d command(s) still running in the background", stopped)
            if cluster is not None:
                if guard.received is not None and outcome.signal is None \
                        and outcome.error is None:
                    # the signal reached the workload first (Slurm signals every process
                    # of the step) and ended it: the run was still cancelled
                    _interrupted(outcome, Interrupted(guard.received, guard.reason))
                with console.phase("teardown") as ph:
                    # logs only after a failure: a cancelled job must finish within KillWait
                    outcome.problems = cluster.teardown(
                        failed=outcome.error is not None and outcome.signal is None)
                    if outcome.problems:
                        ph["status"] = "incomplete"
                        ph["detail"] = "; ".join(outcome.problems)
                rt = getattr(cluster, "rt", None)  # runtime mode, images, network, cgroups
                if rt is not None:
                    outcome.extra.update(rt.report())
    return finish(console, runner, plan, outcome, started, cluster)


def _interrupted(outcome: Outcome, exc: Interrupted) -> None:
    outcome.signal = exc.signum
    if exc.reason == DEADLINE:
        outcome.code = Exit.TIME_LIMIT
        outcome.error = KsiError("the job reached its time limit (minus the teardown margin): "
                                 "the workload was stopped and the cluster deleted",
                                 "request more time (sbatch/srun -t) or shorten the workload",
                                 code=Exit.TIME_LIMIT)
    else:
        outcome.code = 128 + exc.signum
        outcome.error = KsiError(f"interrupted by {exc.reason} (scancel, time limit or Ctrl-C): "
                                 "the cluster was deleted", "nothing to clean up; resubmit "
                                 "the job if it was not meant to stop")
        outcome.error.code = outcome.code  # type: ignore[assignment]


def _workload_body(opts: RunOptions) -> Callable[[NodeCluster, Guard], int]:
    def body(cluster: NodeCluster, guard: Guard) -> int:
        plan = cluster.plan
        variables = cluster.variables()
        code = 0
        if opts.manifests:
            from ksi.workload.manifests import run_manifests

            code = run_manifests(cluster, guard, [Path(m) for m in opts.manifests])
        if plan.workload is not None and code == 0:
            from ksi.workload.script import run_script

            code = run_script(cluster.runner, guard, plan.workload, workdir=plan.workdir,
                              variables=variables)
        return code

    return body
