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
    from ksi.cluster import NodeCluster
    from ksi.lifecycle import Outcome
    from ksi.output import Console
    from ksi.plan.plan import Plan
    from ksi.runner import Runner


def build(plan: Plan, console: Console, runner: Runner, outcome: Outcome, started: float,
          cluster: Optional[NodeCluster]) -> dict[str, Any]:
    total = time.monotonic() - started
    return {
        "ksi_version": __version__,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "job": plan.env.as_dict(),
        "mode": plan.mode,
        "cluster": plan.cluster,
        "context": plan.context,
        "provider": plan.provider,
        "image": plan.image or "kind default",
        "workdir": str(plan.workdir),
        "workload": str(plan.workload) if plan.workload else None,
        "ports": {
            "k8s": cluster.k8s_port if cluster else plan.k8s_port,
            "api": cluster.api_port if cluster else None,
            "gateway_host": cluster.gateway_host_port if cluster else None,
        },
        "api_url": cluster.api_url if cluster else "",
        "time_left_at_start": plan.extra.get("time_left"),
        "token_seconds": plan.extra.get("token_seconds"),
        "phases": console.phases,
        "exit_code": int(outcome.code),
        "error": outcome.error.line() if outcome.error else None,
        "signal": outcome.signal,
        "teardown_problems": outcome.problems,
        "total_seconds": round(total, 3),
        "external_seconds": round(runner.external_seconds, 3),
        "external_calls": runner.calls,
        "ksi_overhead_seconds": round(total - runner.external_seconds, 3),
        **outcome.extra,
    }


def write(plan: Plan, console: Console, runner: Runner, outcome: Outcome, started: float,
          cluster: Optional[NodeCluster] = None) -> Optional[Path]:
    data = build(plan, console, runner, outcome, started, cluster)
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
