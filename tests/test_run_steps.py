"""The run's core decisions without the emulator: how an error or a signal becomes the exit
code, how teardown problems merge into it, and which undos run, in which order, after a
failure in each step (fake steps that record their calls)."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path
from typing import Optional

import pytest

from ksi.errors import Exit, Interrupted, KsiError
from ksi.output import Console
from ksi.run import outcome as outcomes
from ksi.run.context import RunContext
from ksi.run.options import RunOptions
from ksi.run.outcome import Outcome
from ksi.run.step import Step, execute
from ksi.runner import Runner
from ksi.signals import DEADLINE


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunContext:
    """A context whose plan is made (a local run in tmp_path); the console writes to a
    string."""
    from ksi import settings
    from ksi.jobenv import LocalEnvironment
    from ksi.plan.plan import make_plan

    for k in list(os.environ):
        if k.startswith(("KSI_", "SLURM_", "K8S_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("KSI_SITE_CONFIG", str(tmp_path / "none-site.toml"))
    monkeypatch.setenv("KSI_USER_CONFIG", str(tmp_path / "none-user.toml"))
    monkeypatch.setenv("KSI_STATE_DIR", str(tmp_path / "state"))
    c = RunContext(RunOptions(workload=None, shared_dir=None), Console(stream=io.StringIO()),
                   Runner())
    c.plan = make_plan(LocalEnvironment(os.environ), settings.load({}), workload=None,
                       shared_dir=None, environ={}, workdir=tmp_path)
    return c


def output(ctx: RunContext) -> str:
    return ctx.console.stream.getvalue()


class Fake(Step):
    """Records run/undo/failed in a shared log; raises `fail` in run."""

    def __init__(self, name: str, log: list[str], fail: Optional[BaseException] = None,
                 problems: tuple[str, ...] = (), late: bool = False) -> None:
        self.name, self.log, self.fail, self.problems, self.late = name, log, fail, problems, \
            late

    def run(self, ctx: RunContext) -> str:
        self.log.append(f"run {self.name}")
        if self.fail is not None:
            raise self.fail
        return f"{self.name} done"

    def undo(self, ctx: RunContext) -> list[str]:
        self.log.append(f"undo {self.name}")
        return list(self.problems)

    def failed(self, ctx: RunContext, outcome: Outcome) -> None:
        self.log.append(f"failed {self.name}")


NAMES = ["preflight", "reserve", "provision", "ready", "access", "workload"]


# ------------------------------------------------------------------ error -> outcome
def test_a_ksi_error_keeps_its_code_and_line() -> None:
    o = Outcome()
    outcomes.failure(o, KsiError("no kind", "install kind", code=Exit.TOOL_MISSING))
    assert o.code == Exit.TOOL_MISSING and o.signal is None
    assert o.error is not None and o.error.line() == "ksi: error: no kind -- fix: install kind"


@pytest.mark.parametrize("signum,name", [(signal.SIGTERM, "SIGTERM"),
                                         (signal.SIGINT, "SIGINT"),
                                         (signal.SIGHUP, "SIGHUP")])
def test_a_signal_becomes_128_plus_n(signum: int, name: str) -> None:
    o = Outcome()
    outcomes.interrupted(o, Interrupted(signum, name))
    assert o.code == 128 + signum and o.signal == signum
    assert o.error is not None and int(o.error.code) == 128 + signum
    assert f"interrupted by {name}" in o.error.cause and o.failed


def test_the_deadline_becomes_time_limit() -> None:
    o = Outcome()
    outcomes.interrupted(o, Interrupted(signal.SIGTERM, DEADLINE))
    assert o.code == Exit.TIME_LIMIT and o.signal == signal.SIGTERM
    assert "time limit" in o.error.cause and "request more time" in o.error.fix


# ------------------------------------------------------------------ teardown problems
def test_teardown_problems_turn_success_into_95_with_the_gc_hint() -> None:
    o = Outcome(problems=["leftover node containers"])
    assert outcomes.merge_teardown(o, "42") is None
    assert o.code == Exit.TEARDOWN_INCOMPLETE == 95
    assert o.error.line() == ("ksi: error: teardown incomplete: leftover node containers "
                              "-- fix: run 'ksi gc --job 42'")


def test_teardown_problems_keep_a_failure_code_and_extend_its_fix() -> None:
    o = Outcome()
    outcomes.failure(o, KsiError("kind failed", "read the logs",
                                 code=Exit.CLUSTER_CREATE_FAILED))
    o.problems = ["a", "b"]
    assert outcomes.merge_teardown(o, None) is None
    assert o.code == Exit.CLUSTER_CREATE_FAILED
    assert o.error.fix == "read the logs; teardown incomplete: a; b: run 'ksi gc'"


def test_teardown_problems_keep_the_workloads_code_with_a_warning() -> None:
    o = Outcome(code=7, problems=["x"])
    assert outcomes.merge_teardown(o, "5") == "teardown incomplete: x; run 'ksi gc --job 5'"
    assert o.code == 7 and o.error is None


def test_no_teardown_problem_changes_nothing() -> None:
    o = Outcome(code=3)
    assert outcomes.merge_teardown(o, "5") is None and o.code == 3 and o.error is None


# ------------------------------------------------------------------ the executor
def test_a_good_run_undoes_every_step_in_reverse_order(ctx: RunContext) -> None:
    log: list[str] = []
    assert execute(ctx, [Fake(n, log) for n in NAMES]) == 0
    assert log == [f"run {n}" for n in NAMES] + [f"undo {n}" for n in reversed(NAMES)]
    out = output(ctx)
    assert "phase reserve: ok" in out and "reserve done" in out
    assert "phase teardown: ok" in out and "done: exit 0" in out
    rep = json.loads(ctx.the_plan.report_path.read_text())
    assert [p["phase"] for p in rep["phases"]] == [*NAMES, "teardown"]


@pytest.mark.parametrize("at", range(len(NAMES)))
def test_a_failure_in_each_step_undoes_the_steps_that_ran(ctx: RunContext, at: int) -> None:
    log: list[str] = []
    err = KsiError("boom", "fix it", code=Exit.CLUSTER_NOT_READY)
    steps = [Fake(n, log, fail=err if i == at else None) for i, n in enumerate(NAMES)]
    assert execute(ctx, steps) == Exit.CLUSTER_NOT_READY
    ran = NAMES[:at + 1]  # the failed step too: its undo removes what it made so far
    assert log == ([f"run {n}" for n in ran] + [f"failed {n}" for n in reversed(ran)]
                   + [f"undo {n}" for n in reversed(ran)])
    out = output(ctx)
    assert f"phase {NAMES[at]}: failed" in out and "phase teardown: ok" in out
    assert out.rstrip().endswith("ksi: error: boom -- fix: fix it")
    assert ctx.outcome is not None and ctx.outcome.step == NAMES[at]


@pytest.mark.parametrize("at", range(len(NAMES)))
def test_a_signal_in_each_step_undoes_the_steps_that_ran(ctx: RunContext, at: int) -> None:
    log: list[str] = []
    sig = Interrupted(signal.SIGTERM, "SIGTERM")
    steps = [Fake(n, log, fail=sig if i == at else None) for i, n in enumerate(NAMES)]
    assert execute(ctx, steps) == 143
    assert log[-(at + 1):] == [f"undo {n}" for n in reversed(NAMES[:at + 1])]
    assert f"phase {NAMES[at]}: interrupted" in output(ctx)


def test_ctrl_c_is_sigint(ctx: RunContext) -> None:
    log: list[str] = []
    assert execute(ctx, [Fake("a", log), Fake("b", log, fail=KeyboardInterrupt())]) == 130
    assert log[-2:] == ["undo b", "undo a"]


def test_a_step_may_name_what_a_signal_during_it_means(ctx: RunContext) -> None:
    class Meeting(Fake):
        def interrupted(self, signum: int) -> Optional[KsiError]:
            return KsiError("interrupted while meeting", "nothing to clean up",
                            code=Exit.RENDEZVOUS_FAILED)

    log: list[str] = []
    code = execute(ctx, [Meeting("rendezvous", log, fail=Interrupted(15, "SIGTERM"))])
    assert code == Exit.RENDEZVOUS_FAILED
    assert ctx.outcome.signal is None and "while meeting" in output(ctx)


def test_teardown_problems_make_the_phase_incomplete_and_the_code_95(ctx: RunContext) -> None:
    log: list[str] = []
    steps = [Fake("reserve", log), Fake("provision", log, problems=("node left",))]
    assert execute(ctx, steps) == 95
    out = output(ctx)
    assert "phase teardown: incomplete" in out and "node left" in out
    assert f"ksi gc --job {ctx.the_plan.env.job_id}" in out.splitlines()[-1]


def test_late_undo_runs_after_the_report(ctx: RunContext) -> None:
    seen: list[bool] = []

    class Leave(Fake):
        def undo(self, ctx: RunContext) -> list[str]:
            seen.append(ctx.the_plan.report_path.exists())
            return []

    log: list[str] = []
    assert execute(ctx, [Leave("rendezvous", log, late=True), Fake("reserve", log)]) == 0
    assert seen == [True] and log[-1] == "undo reserve"


def test_a_failure_before_the_guard_has_no_teardown(ctx: RunContext) -> None:
    log: list[str] = []
    plan_step = Fake("plan", log, fail=KsiError("bad", code=Exit.WORKLOAD_MISSING))
    plan_step.guarded = False
    assert execute(ctx, [plan_step, Fake("preflight", log)]) == Exit.WORKLOAD_MISSING
    assert log == ["run plan"] and "phase teardown" not in output(ctx)


@pytest.mark.parametrize("at", range(10))
def test_the_node_steps_undo_in_reverse_after_a_failure_in_each(ctx: RunContext,
                                                                 at: int) -> None:
    """The real list of a node's run, its steps' run and undo replaced by recorders."""
    from ksi.run.steps import node_steps

    steps = node_steps()
    names = [s.name for s in steps]
    assert names == ["job", "plan", "preflight", "gpus", "reserve", "provision", "ready",
                     "gpu-setup", "access", "workload"]
    log: list[str] = []
    for i, s in enumerate(steps):
        def run(c: RunContext, s: Step = s, i: int = i) -> None:
            log.append(f"run {s.name}")
            if i == at:
                raise KsiError("boom", code=Exit.INTERNAL)

        def undo(c: RunContext, s: Step = s) -> list[str]:
            log.append(f"undo {s.name}")
            return []

        s.run, s.undo = run, undo  # type: ignore[method-assign]
        s.applies = lambda c: True  # type: ignore[method-assign]  # gpu-setup: as with GPUs
    assert execute(ctx, steps) == Exit.INTERNAL
    ran = names[:at + 1]
    undone = [n for n in reversed(ran) if n in ("preflight", "reserve", "provision",
                                                 "gpu-setup")]
    assert log == [f"run {n}" for n in ran] + [f"undo {n}" for n in undone]
    assert ("phase teardown" in output(ctx)) == bool(undone)


def _label(s: Step) -> str:
    return s.name or type(s).__name__


@pytest.mark.parametrize("node", [0, 1], ids=["head", "member"])
def test_the_federated_steps_undo_in_reverse_after_a_failure_in_each(
        ctx: RunContext, node: int) -> None:
    """The real list of a multi-node run (head and member), each step's run and undo replaced
    by recorders, failing in each step in turn: the steps that ran are undone in reverse
    order, in the teardown phase, and the rendezvous is left last, after the report."""
    import dataclasses

    from ksi.federate.steps import run_steps

    env = ctx.the_plan.env
    env.node_id, env.num_nodes, env.nodes = node, 2, ["n0", "n1"]
    plan = dataclasses.replace(ctx.the_plan, mode="federated")
    ctx.plan = plan
    labels = [_label(s) for s in run_steps() if s.applies(ctx)]
    assert labels[:4] == ["job", "plan", "OneTaskPerNode", "rendezvous"]
    assert ("peer" in labels, "serve" in labels, "workload" in labels) == \
        (node == 0, node == 1, node == 0)
    for at in range(len(labels)):
        c = RunContext(ctx.opts, Console(stream=io.StringIO()), Runner(), plan=plan)
        steps = [s for s in run_steps() if s.applies(c)]
        log: list[str] = []
        for i, s in enumerate(steps):
            def run(_c: RunContext, s: Step = s, fail: bool = i == at,
                    log: list[str] = log) -> None:
                log.append(f"run {_label(s)}")
                if fail:
                    raise KsiError("boom", code=Exit.FEDERATION_FAILED)

            def undo(_c: RunContext, s: Step = s, log: list[str] = log) -> list[str]:
                log.append(f"undo {_label(s)}")
                return []

            s.run, s.undo = run, undo  # type: ignore[method-assign]
        assert execute(c, steps) == Exit.FEDERATION_FAILED, labels[at]
        ran = steps[:at + 1]
        undone = [_label(s) for s in reversed(ran) if s.undoes]
        late = [_label(s) for s in reversed(ran) if s.late]
        assert log == [f"run {_label(s)}" for s in ran] + [f"undo {n}" for n in undone + late]
        # what the node made is removed newest first; the rendezvous directory is left last
        assert [n for n in undone if n in ("provision", "reserve", "preflight")] == \
            [n for n in ("provision", "reserve", "preflight") if n in labels[:at + 1]]
        assert late == (["rendezvous"] if at >= 3 else [])
        assert ("phase teardown" in output(c)) == bool(undone)
        assert output(c).rstrip().endswith("ksi: error: boom")


# ------------------------------------------------------------------ --verbose: the cause chain
def _failing_run(ctx: RunContext) -> int:
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as exc:
            raise KsiError("cannot write the kind config", "free space",
                           code=Exit.STATE_UNSAFE) from exc
    except KsiError as err:
        failure = err
    return execute(ctx, [Fake("reserve", [], problems=("port lock left",)),
                         Fake("provision", [], fail=failure)])


def test_verbose_prints_what_the_error_was_raised_from(ctx: RunContext) -> None:
    ctx.console = Console(stream=io.StringIO(), verbose=True)
    assert _failing_run(ctx) == Exit.STATE_UNSAFE
    lines = output(ctx).rstrip().splitlines()
    assert lines[-1].startswith("ksi: error: cannot write the kind config -- fix: free space; "
                                "teardown incomplete: port lock left")
    # the teardown's restated error is not repeated; the OSError is
    assert lines[-2] == "ksi: caused by: OSError: [Errno 28] No space left on device"


def test_without_verbose_the_error_is_one_line(ctx: RunContext) -> None:
    assert _failing_run(ctx) == Exit.STATE_UNSAFE
    out = output(ctx)
    assert "caused by" not in out
    assert out.rstrip().splitlines()[-1].startswith("ksi: error: cannot write the kind config")


def test_a_restated_error_is_new_and_chained() -> None:
    err = KsiError("kind failed", "read the logs", code=Exit.CLUSTER_CREATE_FAILED, detail="d")
    new = err.restated(cause="node1: kind failed")
    assert new is not err and err.cause == "kind failed" and new.__cause__ is err
    assert (new.code, new.fix, new.detail) == (err.code, err.fix, "d")
    assert new.caused_by() == ""   # it says what its cause says
