#!/usr/bin/env python3
"""Multi-node scaling: time of the whole job for N = 1, 2, 4, 8 nodes, against the emulator
with tool delays (kind create 3 s, liqoctl install 2 s, liqoctl peer 1 s by default).

Nodes are simulated: one `ksi run` process per node with the Slurm variables of a step
(SLURM_NODEID, SLURM_STEP_NUM_NODES, ...), its own emulated host (KSI_EMU_HOSTNAME) and
its own address (KSI_API_ADDRESS=10.99.0.1x). The addresses must be local for the emulated
port mappings, so the bench runs in a private network namespace (`unshare -n`, as root) with
those addresses on its loopback device; it changes nothing on the host.

    python3 bench/bench_multinode.py [--nodes 1,2,4,8] [--repeat 3]
        [--delay kind:create=3,liqoctl:install=2,liqoctl:peer=1] [--peer-concurrency 4]

Prints one line per N: median seconds of the job (launch of all nodes -> last node ended),
ratio to N=1, and ratio to N=2 (the smallest multi-node job: Liqo is installed only when
there is more than one node).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMU_BIN = ROOT / "tests" / "emulator" / "bin"
INNER = "KSI_BENCH_IN_NETNS"
WORKLOAD = 'kubectl --context "$K8S_CLUSTER_NAME" get nodes -l liqo.io/type=virtual-node ' \
           '--no-headers | wc -l > "$KSI_BENCH_OUT"\n'


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "KSI_", "K8S_", "KIND_")) and k != "KUBECONFIG"}


def one_job(n: int, args: argparse.Namespace, job: int) -> tuple[float, list[int], int]:
    """Run one n-node job; returns (seconds, exit codes, virtual nodes the workload saw)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"ksi-bench-{n}-"))
    for d in ("emu", "home", "shared", "work", "locks", "fakebin"):
        (tmp / d).mkdir()
    squeue = tmp / "fakebin" / "squeue"   # no slurmctld here: time limit unknown, at once
    squeue.write_text("#!/bin/sh\nexit 1\n")
    squeue.chmod(0o755)
    wl = tmp / "work" / "wl.sh"
    wl.write_text(WORKLOAD)
    base = clean_env()
    base.update({
        "PATH": f"{tmp / 'fakebin'}:{EMU_BIN}:{base.get('PATH', '')}",
        "PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp / "home"),
        "KSI_EMU_STATE": str(tmp / "emu"), "KSI_LOCK_DIR": str(tmp / "locks"),
        "KSI_SITE_CONFIG": str(tmp / "none"), "KSI_USER_CONFIG": str(tmp / "none"),
        "KSI_GC_ON_START": "false", "KSI_EMU_READY_AFTER": "0",
        "KSI_EMU_DELAY": args.delay, "KSI_PEER_CONCURRENCY": str(args.peer_concurrency),
        "KSI_BENCH_OUT": str(tmp / "seen"),
    })
    nodelist = f"sim[0-{n - 1}]" if n > 1 else "sim0"
    procs = []
    start = time.monotonic()
    for i in range(n):
        env = dict(base, SLURM_JOB_ID=str(job), SLURM_STEP_ID="0", SLURM_NODEID=str(i),
                   SLURM_PROCID=str(i), SLURM_LOCALID="0", SLURM_STEP_NUM_NODES=str(n),
                   SLURM_STEP_NODELIST=nodelist, KSI_EMU_HOSTNAME=f"sim{i}",
                   KSI_API_ADDRESS=f"10.99.0.{10 + i}", KSI_STATE_DIR=str(tmp / f"state{i}"),
                   KSI_REPORT=str(tmp / f"report{i}.json"))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ksi", "run", str(wl), str(tmp / "shared")], env=env,
            cwd=str(tmp / "work"), stdout=subprocess.DEVNULL,
            stderr=open(tmp / f"out{i}", "w")))  # noqa: SIM115
    codes = [p.wait() for p in procs]
    seconds = time.monotonic() - start
    seen = int((tmp / "seen").read_text().strip() or 0) if (tmp / "seen").exists() else -1
    if any(codes) and args.keep_failed:
        print(f"  job failed, logs in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return seconds, codes, seen


def in_netns(argv: list[str]) -> int:
    """Re-run this script in a private network namespace with 10.99.0.10-41 on lo."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        print("bench_multinode: needs root, unshare and ip (a private network namespace "
              "with the simulated nodes' addresses)", file=sys.stderr)
        return 2
    script = ("set -e; ip link set lo up; for i in $(seq 10 41); do "
              "ip addr add 10.99.0.$i/32 dev lo; done; exec \"$@\"")
    return subprocess.call(["unshare", "-n", "bash", "-c", script, "bash", sys.executable,
                            *argv], env=dict(os.environ, **{INNER: "1"}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="1,2,4,8")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--delay", default="kind:create=3,liqoctl:install=2,liqoctl:peer=1")
    ap.add_argument("--peer-concurrency", type=int, default=None,
                    help="KSI_PEER_CONCURRENCY (default: KSI's default setting)")
    ap.add_argument("--keep-failed", action="store_true")
    args = ap.parse_args()
    if os.environ.get(INNER) != "1":
        return in_netns([str(Path(__file__).resolve()), *sys.argv[1:]])
    if args.peer_concurrency is None:
        sys.path.insert(0, str(ROOT / "src"))
        from ksi.settings import BY_NAME

        args.peer_concurrency = BY_NAME["peer_concurrency"].default
    counts = [int(x) for x in args.nodes.split(",")]
    print(f"delays: {args.delay}; peer_concurrency={args.peer_concurrency}; "
          f"repeat={args.repeat}; cpus={os.cpu_count()}")
    results: dict[int, float] = {}
    job = 7000
    for n in counts:
        times = []
        for _ in range(args.repeat):
            job += 1
            seconds, codes, seen = one_job(n, args, job)
            if any(codes) or (n > 1 and seen != n - 1):
                print(f"N={n}: job failed (exit codes {codes}, virtual nodes seen {seen})")
                return 1
            times.append(seconds)
        results[n] = statistics.median(times)
        base1 = results.get(counts[0])
        base2 = results.get(2)
        print(f"N={n}: {results[n]:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})"
              + (f"  time(N)/time(1) = {results[n] / base1:.2f}" if base1 else "")
              + (f"  time(N)/time(2) = {results[n] / base2:.2f}" if base2 and n >= 2 else ""),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
