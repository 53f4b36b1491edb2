#!/usr/bin/env python3
"""Multi-node scaling: time of the whole job for N = 1, 2, 4, 8 nodes, against the emulator
with tool delays (kind create 3 s, liqoctl install 2 s, liqoctl peer 1 s by default).

Two one-node baselines: `1` is a plain one-node job (no Liqo at all), `1f` the same job with
Liqo installed (`ksi run --federate`: what every node of a multi-node job does, minus the
peering). time(N)/time(1f) is the scaling of the federation (a sequential design would grow
with N); time(N)/time(1) adds Liqo's fixed cost (install + one round of peering) on top.

Nodes are simulated: one `ksi run` process per node with the Slurm variables of a step
(SLURM_NODEID, SLURM_STEP_NUM_NODES, ...), its own emulated host (KSI_EMU_HOSTNAME) and
its own address (KSI_API_ADDRESS=10.99.0.1x). The addresses must be local for the emulated
port mappings, so the bench runs in a private network namespace (`unshare -n`, as root) with
those addresses on its loopback device; it changes nothing on the host.

    python3 bench/bench_multinode.py [--nodes 1,1f,2,4,8] [--repeat 3]
        [--delay kind:create=3,liqoctl:install=2,liqoctl:peer=1] [--peer-concurrency N]
        [--real] [--keep]

--real uses the durations measured with the real tools on this machine (tests/e2e/
README-realkind.md): kind create 17 s, liqoctl install 35 s (23-28 s, plus loading Liqo's
images ~13 s: a site pulls them instead), liqoctl peer 5.5 s, the virtual node registering
2 s after peer returns.

Prints one line per N: median seconds of the job (launch of all nodes -> last node ended),
and its ratios to both baselines. The emulated tools start with the fastest Python that has
PyYAML (/usr/bin/python3 if it has, not a pyenv shim): the real tools are Go binaries that
start in milliseconds, and 8 simulated nodes share this machine's CPUs.
"""

from __future__ import annotations

import argparse
import os
import resource
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
REAL_DELAYS = "kind:create=17,liqoctl:install=35,liqoctl:peer=5.5"
REAL_VN_AFTER = 2.0
WORKLOAD = 'kubectl --context "$K8S_CLUSTER_NAME" get nodes -l liqo.io/type=virtual-node ' \
           '--no-headers | wc -l > "$KSI_BENCH_OUT"\n'


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "KSI_", "K8S_", "KIND_"))
            and k not in ("KUBECONFIG", "PYTHONDONTWRITEBYTECODE")}


def fast_python() -> str:
    """The quickest-starting python3 that can import yaml (the emulator needs PyYAML)."""
    for exe in ("/usr/bin/python3", sys.executable):
        if subprocess.run([exe, "-c", "import yaml"], capture_output=True).returncode == 0:
            return exe
    return sys.executable


def cpu_seconds() -> float:
    """CPU time (user + system) of every finished child process and their descendants."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def one_job(n: int, args: argparse.Namespace, job: int,
            federate: bool = False) -> tuple[float, list[int], int, float]:
    """Run one n-node job; returns (seconds, exit codes, virtual nodes the workload saw,
    CPU seconds the whole job used: KSI and every emulated tool call)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"ksi-bench-{n}-"))
    for d in ("emu", "home", "shared", "work", "locks", "fakebin"):
        (tmp / d).mkdir()
    squeue = tmp / "fakebin" / "squeue"   # no slurmctld here: time limit unknown, at once
    squeue.write_text("#!/bin/sh\nexit 1\n")
    squeue.chmod(0o755)
    (tmp / "fakebin" / "python3").symlink_to(args.python)
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
        "KSI_EMU_VN_AFTER": str(args.vn_after),
        "KSI_BENCH_OUT": str(tmp / "seen"),
        # bytecode cached (outside the tree) once for all jobs: the real tools are Go
        # binaries, and compiling the emulator on every call would be CPU they never use
        "PYTHONPYCACHEPREFIX": args.pycache,
    })
    nodelist = f"sim[0-{n - 1}]" if n > 1 else "sim0"
    procs = []
    cpu0 = cpu_seconds()
    start = time.monotonic()
    for i in range(n):
        env = dict(base, SLURM_JOB_ID=str(job), SLURM_STEP_ID="0", SLURM_NODEID=str(i),
                   SLURM_PROCID=str(i), SLURM_LOCALID="0", SLURM_STEP_NUM_NODES=str(n),
                   SLURM_STEP_NODELIST=nodelist, KSI_EMU_HOSTNAME=f"sim{i}",
                   KSI_API_ADDRESS=f"10.99.0.{10 + i}", KSI_STATE_DIR=str(tmp / f"state{i}"),
                   KSI_REPORT=str(tmp / f"report{i}.json"))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ksi", "run", *(["--federate"] if federate else []),
             str(wl), str(tmp / "shared")], env=env,
            cwd=str(tmp / "work"), stdout=subprocess.DEVNULL,
            stderr=open(tmp / f"out{i}", "w")))  # noqa: SIM115
    codes = [p.wait() for p in procs]
    seconds = time.monotonic() - start
    cpu = cpu_seconds() - cpu0
    seen = int((tmp / "seen").read_text().strip() or 0) if (tmp / "seen").exists() else -1
    if args.keep or (any(codes) and args.keep_failed):
        print(f"  logs in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return seconds, codes, seen, cpu


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
    ap.add_argument("--nodes", default="1,1f,2,4,8",
                    help="node counts; 1f: one node with Liqo installed (--federate)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--delay", default="kind:create=3,liqoctl:install=2,liqoctl:peer=1")
    ap.add_argument("--peer-concurrency", type=int, default=None,
                    help="KSI_PEER_CONCURRENCY (default: KSI's default setting)")
    ap.add_argument("--vn-after", type=float, default=0.0,
                    help="seconds after liqoctl peer before the virtual node registers")
    ap.add_argument("--real", action="store_true",
                    help="the tool durations measured with the real tools here")
    ap.add_argument("--keep-failed", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep every job's logs and state")
    args = ap.parse_args()
    if os.environ.get(INNER) != "1":
        return in_netns([str(Path(__file__).resolve()), *sys.argv[1:]])
    if args.real:
        args.delay, args.vn_after = REAL_DELAYS, REAL_VN_AFTER
    if args.peer_concurrency is None:
        sys.path.insert(0, str(ROOT / "src"))
        from ksi.settings import BY_NAME

        args.peer_concurrency = BY_NAME["peer_concurrency"].default
    counts = [x.strip() for x in args.nodes.split(",") if x.strip()]
    args.counts = counts
    args.python = fast_python()
    args.pycache = tempfile.mkdtemp(prefix="ksi-bench-pycache-")
    try:
        return run_all(args)
    finally:
        shutil.rmtree(args.pycache, ignore_errors=True)


def run_all(args: argparse.Namespace) -> int:
    """Every N of --nodes, --repeat times each; one line per N."""
    print(f"delays: {args.delay}, virtual node after {args.vn_after} s; "
          f"peer_concurrency={args.peer_concurrency}; "
          f"repeat={args.repeat}; cpus={os.cpu_count()}; emulator python: {args.python}")
    results: dict[str, float] = {}
    job = 7000
    for label in args.counts:
        n, federate = int(label.rstrip("f")), label.endswith("f")
        times, cpus = [], []
        for _ in range(args.repeat):
            job += 1
            seconds, codes, seen, cpu = one_job(n, args, job, federate=federate)
            if any(codes) or (n > 1 and seen != n - 1):
                print(f"N={label}: job failed (exit codes {codes}, virtual nodes seen {seen})")
                return 1
            times.append(seconds)
            cpus.append(cpu)
        results[label] = statistics.median(times)
        ratios = [f"time(N)/time({b}) = {results[label] / results[b]:.2f}"
                  for b in ("1", "1f") if b in results and label != b]
        print(f"N={label:>2}: {results[label]:6.2f} s  (runs: "
              f"{', '.join(f'{t:.2f}' for t in times)}; CPU {statistics.median(cpus):.1f} s)  "
              + "  ".join(ratios), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
