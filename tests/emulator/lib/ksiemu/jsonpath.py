"""kubectl's JSONPath subset: ``{.a.b[0].c}``, ``[*]``, ``[?(@.k=="v")]``,
``{range .items[*]}...{end}``, literal text and ``{"\\n"}``."""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Tuple


class JSONPathError(Exception):
    pass


_MISSING = object()


def _steps(path: str) -> List[Tuple[str, Any]]:
    steps: List[Tuple[str, Any]] = []
    i = 0
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    while i < len(path):
        c = path[i]
        if c == ".":
            j = i + 1
            while j < len(path) and path[j] not in ".[":
                j += 1
            name = path[i + 1 : j]
            if name:
                steps.append(("field", name))
            i = j
        elif c == "[":
            j = path.index("]", i) if not path.startswith("[?(", i) else path.index(")]", i) + 1
            inner = path[i + 1 : j]
            if inner == "*":
                steps.append(("all", None))
            elif inner.startswith("?("):
                m = re.match(r"\?\(@\.([\w.\-/]+)\s*(==|!=)\s*[\"']?(.*?)[\"']?\)$", inner)
                if not m:
                    raise JSONPathError(f"unsupported filter {inner}")
                steps.append(("filter", (m.group(1), m.group(2), m.group(3))))
            elif ":" in inner:
                a, _, b = inner.partition(":")
                steps.append(("slice", (int(a) if a else None, int(b) if b else None)))
            elif inner.startswith("'") or inner.startswith('"'):
                steps.append(("field", inner[1:-1]))
            else:
                steps.append(("index", int(inner)))
            i = j + 1
        else:
            j = i
            while j < len(path) and path[j] not in ".[":
                j += 1
            steps.append(("field", path[i:j]))
            i = j
    return steps


def _get(obj: Any, dotted: str) -> Any:
    cur = obj
    for p in dotted.split("."):
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            return _MISSING
    return cur


def evaluate(path: str, data: Any) -> List[Any]:
    cur: List[Any] = [data]
    for kind, arg in _steps(path):
        nxt: List[Any] = []
        for v in cur:
            if kind == "field":
                if isinstance(v, dict) and arg in v:
                    nxt.append(v[arg])
            elif kind == "all":
                if isinstance(v, list):
                    nxt.extend(v)
                elif isinstance(v, dict):
                    nxt.extend(v.values())
            elif kind == "index":
                if isinstance(v, list):
                    idx = arg if arg >= 0 else len(v) + arg
                    if idx >= len(v) or idx < 0:
                        raise JSONPathError(
                            f"array index out of bounds: index {arg}, length {len(v)}"
                        )
                    nxt.append(v[idx])
            elif kind == "slice":
                if isinstance(v, list):
                    nxt.extend(v[arg[0] : arg[1]])
            elif kind == "filter":
                key, op, want = arg
                items = v if isinstance(v, list) else []
                for it in items:
                    got = _get(it, key)
                    sval = _fmt(got) if got is not _MISSING else None
                    if (op == "==" and sval == want) or (op == "!=" and sval != want):
                        nxt.append(it)
        cur = nxt
    return cur


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    if v is None:
        return ""
    return str(v)


def render(template: str, data: Any) -> str:
    tmpl = template.strip()
    if "{" not in tmpl:
        tmpl = "{" + tmpl + "}"
    parts = re.split(r"(\{[^{}]*\})", tmpl)

    def run(idx: int, ctx: Any) -> Tuple[str, int]:
        buf = []
        while idx < len(parts):
            p = parts[idx]
            if not (p.startswith("{") and p.endswith("}")):
                buf.append(p)
                idx += 1
                continue
            expr = p[1:-1].strip()
            if expr == "end":
                return "".join(buf), idx + 1
            if expr.startswith("range "):
                items = evaluate(expr[6:], ctx)
                end = idx + 1
                for it in items:
                    txt, end = run(idx + 1, it)
                    buf.append(txt)
                if not items:
                    # skip to matching end
                    depth, j = 1, idx + 1
                    while j < len(parts) and depth:
                        e = parts[j][1:-1].strip() if parts[j].startswith("{") else ""
                        if e.startswith("range "):
                            depth += 1
                        elif e == "end":
                            depth -= 1
                        j += 1
                    end = j
                idx = end
                continue
            if expr.startswith('"') and expr.endswith('"'):
                buf.append(json.loads(expr, strict=False))
            elif expr.startswith("'") and expr.endswith("'"):
                buf.append(expr[1:-1])
            else:
                vals = evaluate(expr, ctx)
                buf.append(" ".join(_fmt(v) for v in vals))
            idx += 1
        return "".join(buf), idx

    return run(0, data)[0]
