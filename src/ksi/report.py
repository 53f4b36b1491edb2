"""The JSON run report written next to the job's output: phases, durations, cluster, ports,
exit status. It never contains the token."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ksi import __version__

if TYPE_CHECKING:
    from ksi.output import Console
    from ksi.plan.plan import Plan
    from ksi.run.outcome import Outcome
    from ksi.run.state import RunState
    from ksi.runner import Runner


def build(plan: Plan, console: Console, runner: Runner, outcome: Outcome,
          state: RunState) -> dict[str, Any]:
    total = time.monotonic() - state.started
    return {
        "ksi_version": __version__,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "job": plan.env.as_dict(),
        "mode": plan.mode,
        "cluster": plan.cluster,
        "context": plan.context,
        "provider": plan.provider,
        "image": state.image or plan.image or "kind default",
        "start": {"how": state.start or None, "template": state.warm_template or None,
                  "cold_because": state.warm_reason or None},
        "workdir": str(plan.workdir),
        "workload": str(plan.workload) if plan.workload else None,
        "ports": {
            "k8s": state.k8s_port if state.k8s_port is not None else plan.k8s_port,
            "api": state.api_port,
            "gateway_host": state.gateway_host_port,
        },
        "api_url": state.api_url,
        "time_left_at_start": state.time_left,
        "token_seconds": state.token_seconds,
        "gpus": state.gpus.uuids if state.gpus is not None else [],
        "gpus_lost": state.gpus_lost,
        "phases": console.phases,
        "exit_code": int(outcome.code),
        "error": outcome.error.line() if outcome.error else None,
        "signal": outcome.signal,
        "teardown_problems": outcome.problems,
        "total_seconds": round(total, 3),
        "external_seconds": round(runner.external_seconds, 3),
        "external_calls": runner.calls,
        "ksi_overhead_seconds": round(total - runner.external_seconds, 3),
        **({"runtime": state.runtime} if state.runtime is not None else {}),
    }


def write(plan: Plan, console: Console, runner: Runner, outcome: Outcome,
          state: RunState) -> Optional[Path]:
    data = build(plan, console, runner, outcome, state)
    path = plan.report_path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        console.warn(f"could not write the run report {path}: {exc.strerror}")
        return None
    return path
