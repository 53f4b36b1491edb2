"""`ksi submit`: write a batch script that runs `ksi run` so that the cluster is deleted before
the time limit, and submit it with sbatch.

Signals: `#SBATCH --signal=B:TERM@<margin>` sends TERM to the batch shell only. On one node
the batch shell *is* ksi (exec), so ksi gets it directly. On several nodes ksi runs as an
srun step; the batch shell traps TERM and forwards it to the step with
`scancel --signal=TERM $SLURM_JOB_ID` (steps only, not the batch shell), then waits for the
step to finish its teardown. ksi also tears down on its own at time left - teardown_margin;
the signal is the second line of defence."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.runner import Runner



def node_count(sbatch_args: Sequence[str]) -> int:
    """The largest node count asked for with -N/--nodes (1 when not given)."""
    n = 1
    args = list(sbatch_args)
    for i, a in enumerate(args):
        value = None
        if a in ("-N", "--nodes"):
            value = args[i + 1] if i + 1 < len(args) else ""
        elif a.startswith("--nodes="):
            value = a.split("=", 1)[1]
        elif a.startswith("-N") and len(a) > 2:
            value = a[2:]
        if value is not None:
            nums = [int(x) for x in re.findall(r"\d+", value)]
            if nums:
                n = max(nums)
    return n


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(sbatch options, ksi run arguments). The ksi arguments are everything after `--`, else
    the trailing workload files (script, *.yaml manifests) and an optional shared directory."""
    args = list(args)
    if "--" in args:
        i = args.index("--")
        return args[:i], args[i + 1:]
    tail: list[str] = []
    i = len(args)
    while i > 0:
        a = args[i - 1]
        prev = args[i - 2] if i >= 2 else ""
        if a.startswith("-") or (prev.startswith("-") and "=" not in prev
                                 and not _is_flag(prev)):
            break
        if (os.path.isdir(a) and not tail) or os.path.isfile(a):
            tail.insert(0, a)
        else:
            break
        i -= 1
    return args[:i], tail


_FLAGS = {"--exclusive", "--requeue", "--no-requeue", "--parsable", "--hold", "--wait",
          "-W", "-H", "--test-only", "--overcommit", "-O", "--contiguous", "--spread-job",
          "--use-min-nodes", "--ignore-pbs", "-Q", "--quiet", "-v", "--verbose"}


def _is_flag(opt: str) -> bool:
    return opt in _FLAGS


def batch_script(ksi_cmd: Sequence[str], run_args: Sequence[str], *, nodes: int, margin: int,
                 job_name: Optional[str] = "ksi") -> str:
    ksi = " ".join(shlex.quote(a) for a in ksi_cmd)
    run = " ".join(shlex.quote(a) for a in run_args)
    head = ["#!/bin/bash",
            f"#SBATCH --signal=B:TERM@{margin}"]
    if job_name:
        head.append(f"#SBATCH --job-name={job_name}")
    head.append("# written by 'ksi submit': ksi deletes the cluster before the time limit; "
                "TERM reaches it")
    if nodes <= 1:
        body = ["# one node: the batch shell becomes ksi, so the batch signal reaches it",
                f"exec {ksi} run {run}"]
    else:
        body = [
            "# several nodes: ksi runs as an srun step; forward the batch shell's TERM to it",
            "forward() {",
            '  echo "ksi submit: TERM received; forwarding it to the ksi step" >&2',
            '  scancel --signal=TERM "$SLURM_JOB_ID"',
            "}",
            "trap forward TERM",
            f"srun --ntasks-per-node=1 {ksi} run {run} &",
            "step=$!",
            'while kill -0 "$step" 2>/dev/null; do wait "$step"; done',
            'wait "$step"',
        ]
    return "\n".join(head + body) + "\n"


def submit(args: Sequence[str], runner: Runner, *, margin: int, dry_run: bool,
           ksi_cmd: Optional[Sequence[str]] = None, each: bool = False,
           out=None) -> int:
    out = out or sys.stdout
    sbatch_args, run_args = split_args(args)
    if not run_args:
        raise KsiError("no WORKLOAD given (a workload script or manifest files at the end of "
                       "the command line)", "ksi submit [SBATCH OPTIONS] WORKLOAD [SHARED_DIR]"
                       " (or put ksi's arguments after --)", code=Exit.USAGE)
    run_args = [str(Path(a).resolve()) if os.path.exists(a) else a for a in run_args]
    first = run_args[0]
    if not first.startswith("-") and not os.path.exists(first):
        raise KsiError(f"workload script {first} does not exist",
                       "pass the path of your workload script", code=Exit.WORKLOAD_MISSING)
    if each:
        run_args = ["--each", *run_args]
    nodes = node_count(sbatch_args)
    named = any(a in ("-J", "--job-name") or a.startswith(("--job-name=", "-J"))
                for a in sbatch_args)
    cmd = list(ksi_cmd or [sys.executable, "-m", "ksi"])
    script = batch_script(cmd, run_args, nodes=nodes, margin=margin,
                          job_name=None if named else "ksi")
    argv = ["sbatch", "--parsable", *sbatch_args]
    if dry_run:
        print(f"# {' '.join(shlex.quote(a) for a in argv)} < script", file=out)
        print(script, end="", file=out)
        return 0
    res = runner.run(argv, input=script, timeout=120, what="sbatch", code=Exit.USAGE,
                     fix="check the sbatch options (see 'man sbatch')")
    job = res.stdout.strip().split(";", 1)[0]
    print(job, file=out)
    return 0
