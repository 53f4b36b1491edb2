"""Text about a GPU discovery: the dry run's lines, and the report of
`python3 -m ksi.gpu --report` (stdlib only; parsed by tests/gpu/check-discovery.sh).
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from ksi.gpu.discovery import Discovery, Gpu, GpuRequest, discover


def _gpu(g: Gpu) -> str:
    files = ", ".join(g.device_files) or "no device file (minor number unknown)"
    kind = f"MIG device of {g.parent}" if g.is_mig else (g.name or "GPU")
    return f"index {g.index}  {g.uuid}  ({kind}, bus {g.bus_id or '-'})  {files}"


def dry_run_lines(d: Discovery, mode: str = "auto") -> list[str]:
    """What --dry-run prints: the GPUs passed into the node and the ones that are not."""
    if mode == "none":
        return ["gpus: none (--gpus none / gpus = \"none\"): no GPU is passed"]
    if not d.job and not d.others:
        return [f"gpus: none found ({d.selected_by or 'no GPUs'})"]
    lines = [f"gpus: {len(d.job)} passed into the node (driver {d.driver_version or '?'}; "
             f"selected by {d.selected_by})"]
    lines += [f"  pass     {_gpu(g)}" for g in d.job]
    if d.job:
        lines.append(f"  control  {', '.join(d.control_files)}")
    lines += [f"  NOT      {_gpu(g)}  (not this job's)" for g in d.others]
    foreign = d.foreign_device_files()
    if foreign:
        lines.append(f"  removed from the node: {', '.join(foreign)}")
    lines += [f"  missing  {f} (not on this node)" for f in d.missing_files]
    lines += [f"  note     {n}" for n in d.notes]
    return lines


def report_lines(d: Discovery) -> list[str]:
    """One fact per line: driver, selected-by, job/other GPUs, control files, missing."""
    lines = [f"driver {d.driver_version or '-'}", f"selected-by {d.selected_by}"]
    for g in d.job:
        lines.append(f"job {g.uuid} index={g.index} minor={g.minor} bus={g.bus_id or '-'} "
                     f"files={','.join(g.device_files) or '-'}")
    for g in d.others:
        lines.append(f"other {g.uuid} index={g.index} minor={g.minor}")
    lines.append(f"control {','.join(d.control_files) or '-'}")
    lines += [f"missing {f}" for f in d.missing_files]
    lines += [f"note {n}" for n in d.notes]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """`python3 -m ksi.gpu --report [--json] [--root R] [--gpus MODE]`."""
    import argparse
    import json

    from ksi.errors import KsiError
    from ksi.runner import Runner

    ap = argparse.ArgumentParser(prog="python3 -m ksi.gpu",
                                 description="Print the GPUs KSI's discovery finds here.")
    ap.add_argument("--report", action="store_true", help="plain report lines (default)")
    ap.add_argument("--json", action="store_true", help="JSON instead of report lines")
    ap.add_argument("--root", default="/", help="prefix for /dev and /proc (tests)")
    ap.add_argument("--gpus", default="auto", choices=("auto", "none", "required"))
    args = ap.parse_args(argv)
    try:
        d = discover(Runner(), GpuRequest.from_environ(os.environ), mode=args.gpus,
                     root=args.root)
    except KsiError as exc:
        print(exc.line(), file=sys.stderr)
        return int(exc.code)
    print(json.dumps(d.as_dict(), indent=2) if args.json else "\n".join(report_lines(d)))
    return 0
