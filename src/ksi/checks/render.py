"""How checks are shown: the text table, JSON, and the admin script (bash an admin reviews
and runs; KSI never runs it)."""

from __future__ import annotations

import json
import socket

from ksi.checks.model import FAIL, PASS, WARN, Check, Context, worst


def render(checks: list[Check]) -> str:
    width = max((len(c.name) for c in checks), default=10)
    lines = []
    for c in checks:
        lines.append(f"{c.status.upper():4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in (WARN, FAIL):
            lines.append(f"{'':4}  {'':<{width}}  fix: {c.fix}")
    counts = {s: sum(1 for c in checks if c.status == s) for s in (PASS, WARN, FAIL)}
    lines.append(f"doctor: {counts[PASS]} pass, {counts[WARN]} warn, {counts[FAIL]} fail")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> str:
    return json.dumps({"result": worst(checks), "checks": [c.as_dict() for c in checks]},
                      indent=2)


def _comment(text: str) -> str:
    return "\n".join(f"# {ln}".rstrip() for ln in text.splitlines())


def admin_script(checks: list[Check], ctx: Context) -> str:
    """The admin commands for the checks that fail or warn, as a commented, idempotent bash
    script; one comment saying nothing is needed when every check passes."""
    host = socket.gethostname()
    bad = [c for c in checks if c.status in (WARN, FAIL)]
    if not bad:
        return (f"# ksi doctor --admin-script on {host} (user {ctx.user}): nothing is "
                "needed, no check fails or warns.\n")
    out = ["#!/bin/bash",
           f"# ksi doctor --admin-script on {host}, for user {ctx.user} (uid {ctx.uid}).",
           "# Admin commands for the checks that fail or warn on this node (docs/site-"
           "setup.md).", "# Review it, then run it as root: KSI ran none of it. Each step "
                         "is idempotent (a second run",
           f"# changes nothing). Afterwards {ctx.user} runs 'ksi doctor' again.",
           "set -euo pipefail"]
    done: set[str] = set()
    for c in bad:
        out.append("")
        out.append(_comment(f"--- {c.status.upper()} {c.name}: {c.detail}"))
        if not c.admin:
            out.append(_comment("no admin command: the user fixes this one: "
                                + (c.fix or "see 'ksi doctor'")))
            continue
        fresh = [b for b in c.admin if b not in done]
        for block in fresh:
            out.append(block)
            done.add(block)
        if not fresh:
            out.append("# (the commands above cover this check)")
    if not any(c.admin for c in bad):
        out.append("")
        out.append("# no admin command is needed: the problems above are the user's to fix")
    return "\n".join(out) + "\n"
