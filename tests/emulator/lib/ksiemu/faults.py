"""Fault and delay injection, version overrides (see README "Knobs").

KSI_EMU_FAIL   comma list of ``tool:point[@N]`` (``@N``: only the first N hits fail;
               the counter lives in ``$KSI_EMU_STATE/faults/``).
KSI_EMU_DELAY  comma list of ``tool:point=seconds``.
"""

from __future__ import annotations

import os
import time

from . import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple


def _parse_fail() -> Dict[str, Optional[int]]:
    res: Dict[str, Optional[int]] = {}
    for raw in os.environ.get("KSI_EMU_FAIL", "").split(","):
        item = raw.strip()
        if not item:
            continue
        limit: Optional[int] = None
        if "@" in item:
            item, n = item.rsplit("@", 1)  # noqa: PLW2901
            try:
                limit = int(n)
            except ValueError:
                limit = None
        res[item] = limit
    return res


def configured(tool: str, point: str) -> bool:
    return (f"{tool}:{point}") in _parse_fail()


def should_fail(tool: str, point: str) -> bool:
    """True when the fault ``tool:point`` fires now (consumes one ``@N`` credit)."""
    key = f"{tool}:{point}"
    faults = _parse_fail()
    if key not in faults:
        return False
    limit = faults[key]
    if limit is None:
        return True
    p = state.path("faults", key.replace(":", "_").replace("/", "_") + ".count", shared_levels=1)
    fired = []

    def bump(cur: Optional[int]) -> int:
        cur = cur or 0
        fired.append(cur < limit)
        return cur + 1

    state.update_json(p, bump, 0)
    return fired[0]


def _parse_delay() -> Dict[str, float]:
    res: Dict[str, float] = {}
    for raw in os.environ.get("KSI_EMU_DELAY", "").split(","):
        item = raw.strip()
        if not item or "=" not in item:
            continue
        k, v = item.split("=", 1)
        try:
            res[k.strip()] = float(v)
        except ValueError:
            pass
    return res


def delay(tool: str, point: str) -> None:
    """Sleep as long as KSI_EMU_DELAY asks for ``tool:point`` (the emulated
    program is slow: sleeping is its job)."""
    d = _parse_delay().get(f"{tool}:{point}", 0.0)
    if d > 0:
        time.sleep(d)


def version(tool: str, default: str) -> str:
    v = os.environ.get("KSI_EMU_VERSION_" + tool.upper(), "")
    return (v or default).lstrip("v")


def version_tuple(v: str) -> Tuple[int, ...]:
    parts = []
    for p in v.lstrip("v").split("."):
        num = ""
        for ch in p:
            if ch.isdigit():
                num += ch
            else:
                break
        parts.append(int(num or 0))
    return tuple(parts)
