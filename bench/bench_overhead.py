#!/usr/bin/env python3
"""KSI's own overhead per `ksi run`: wall time minus time inside external programs minus the
workload, measured through the contract emulator. Goal: <= 0.5 s.

    python3 bench/bench_overhead.py [--runs 10]

Prints per-run figures and the median. External time is what KSI's runner measured around
each external program (process start to exit), so the emulator's own start-up is not
counted against KSI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one_run(base: Path, i: int) -> dict:
    work = base / f"w{i}"
    work.mkdir()
    (work / "wl.sh").write_text("true\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "KSI_"))}
    env.update({
        "PATH": f"{ROOT / 'tests' / 'emulator' / 'bin'}{os.pathsep}{env['PATH']}",
        "KSI_EMU_STATE": str(base / "emu"), "KSI_STATE_DIR": str(base / "state"),
        "KSI_LOCK_DIR": str(base / "locks"), "KSI_EMU_READY_AFTER": "0",
        "KSI_SITE_CONFIG": "/nonexistent", "KSI_USER_CONFIG": "/nonexistent",
        "PYTHONPATH": str(ROOT / "src"),
    })
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "ksi", "run", "wl.sh"], cwd=work, env=env,
                         capture_output=True, text=True)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"run {i} failed: {res.stderr}")
    rep = json.loads(next(work.glob("ksi-report-*.json")).read_text())
    workload = next(p["seconds"] for p in rep["phases"] if p["phase"] == "workload")
    return {"wall": wall, "external": rep["external_seconds"], "calls": rep["external_calls"],
            "workload": workload, "overhead": wall - rep["external_seconds"] - workload}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        (base / "emu").mkdir()
        rows = [one_run(base, i) for i in range(args.runs)]
    print(f"{'run':>4} {'wall s':>8} {'external s':>11} {'calls':>6} {'workload s':>11} "
          f"{'ksi overhead s':>15}")
    for i, r in enumerate(rows):
        print(f"{i:>4} {r['wall']:>8.3f} {r['external']:>11.3f} {r['calls']:>6} "
              f"{r['workload']:>11.3f} {r['overhead']:>15.3f}")
    med = statistics.median(r["overhead"] for r in rows)
    print(f"median KSI overhead per run: {med:.3f} s (goal <= 0.5 s): "
          f"{'MET' if med <= 0.5 else 'NOT MET'}")


if __name__ == "__main__":
    main()
