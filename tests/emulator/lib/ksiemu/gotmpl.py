"""A tiny subset of Go text/template, enough for the ``--format`` strings kind
and KSI pass to nerdctl/podman (``{{.Names}}``, ``{{.Label "k"}}``,
``{{index .Labels "k"}}``, ``{{json .}}``, ``{{ with (index (index .X "k") 0) }}``,
``{{ printf "%s\\t%s" .A .B }}``, ``{{range}}``)."""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Tuple


class TemplateError(Exception):
    pass


_TOKEN = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


def _split_actions(tmpl: str) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    pos = 0
    for m in _TOKEN.finditer(tmpl):
        if m.start() > pos:
            out.append(("text", tmpl[pos : m.start()]))
        out.append(("action", m.group(1)))
        pos = m.end()
    if pos < len(tmpl):
        out.append(("text", tmpl[pos:]))
    return out


def _lex(expr: str) -> List[str]:
    toks: List[str] = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(c)
            i += 1
        elif c == '"':
            j = i + 1
            while j < len(expr) and expr[j] != '"':
                j += 2 if expr[j] == "\\" else 1
            toks.append(expr[i : j + 1])
            i = j + 1
        else:
            j = i
            while j < len(expr) and not expr[j].isspace() and expr[j] not in "()":
                j += 1
            toks.append(expr[i:j])
            i = j
    return toks


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        # methods exposed as callables under "__m_<name>"
        if "__m_" + name in obj:
            return obj["__m_" + name]
        return None
    return None


class _Eval:
    def __init__(self, methods_err: Optional[Callable[[str], Optional[str]]] = None) -> None:
        self.methods_err = methods_err

    def term(self, toks: List[str], i: int, dot: Any) -> Tuple[Any, int]:
        t = toks[i]
        if t == "(":
            val, j = self.pipeline(toks, i + 1, dot)
            if j >= len(toks) or toks[j] != ")":
                raise TemplateError("unclosed left paren")
            return val, j + 1
        if t.startswith('"'):
            return json.loads(t, strict=False), i + 1
        if t == ".":
            return dot, i + 1
        if t.startswith("."):
            cur = dot
            parts = t[1:].split(".")
            for _k, p in enumerate(parts):
                if self.methods_err:
                    e = self.methods_err(p)
                    if e:
                        raise TemplateError(e)
                v = _field(cur, p)
                if callable(v):
                    # method with following string args
                    args = []
                    j = i + 1
                    while j < len(toks) and toks[j].startswith('"'):
                        args.append(json.loads(toks[j], strict=False))
                        j += 1
                    return v(*args), j
                cur = v
            return cur, i + 1
        if re.fullmatch(r"-?\d+", t):
            return int(t), i + 1
        raise TemplateError(f"function {t!r} not defined")

    def call(self, name: str, args: List[Any]) -> Any:
        if name == "json":
            return json.dumps(args[0], separators=(",", ":"))
        if name == "index":
            cur = args[0]
            for k in args[1:]:
                if isinstance(cur, dict):
                    cur = cur.get(k)
                elif isinstance(cur, list):
                    if not isinstance(k, int) or k >= len(cur):
                        raise TemplateError(f"error calling index: index out of range: {k}")
                    cur = cur[k]
                else:
                    cur = None
            return cur
        if name == "printf":
            fmt = args[0]
            return (
                fmt.replace("%%", "\x00").replace("%v", "%s").replace("%d", "%s")
                % tuple(_str(a) for a in args[1:])
                if args[1:]
                else fmt
            )
        if name == "len":
            return len(args[0] or [])
        if name == "upper":
            return str(args[0]).upper()
        if name == "lower":
            return str(args[0]).lower()
        if name == "join":
            return str(args[1]).join(args[0] or [])
        raise TemplateError(f'function "{name}" not defined')

    def pipeline(self, toks: List[str], i: int, dot: Any) -> Tuple[Any, int]:
        if i < len(toks) and re.fullmatch(r"[a-z][A-Za-z]*", toks[i]):
            name = toks[i]
            i += 1
            args = []
            while i < len(toks) and toks[i] not in (")", "|"):
                v, i = self.term(toks, i, dot)
                args.append(v)
            return self.call(name, args), i
        return self.term(toks, i, dot)


def _str(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_str(x)}" for k, x in sorted(v.items())) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_str(x) for x in v) + "]"
    return str(v)


def _truthy(v: Any) -> bool:
    return bool(v)


def render(
    tmpl: str, data: Any, methods_err: Optional[Callable[[str], Optional[str]]] = None
) -> str:
    """Render ``tmpl`` against ``data``.  ``\\t`` literals (as typed in a shell
    between single quotes) are turned into tabs, as docker/nerdctl/podman do."""
    acts = [
        (k, s.replace("\\t", "\t").replace("\\n", "\n") if k == "text" else s)
        for k, s in _split_actions(tmpl)
    ]
    ev = _Eval(methods_err)

    def run(idx: int, dot: Any, emit: bool) -> Tuple[str, int]:
        buf = []
        while idx < len(acts):
            kind, s = acts[idx]
            if kind == "text":
                if emit:
                    buf.append(s)
                idx += 1
                continue
            if s == "end":
                return "".join(buf), idx + 1
            if s == "else":
                return "".join(buf), idx  # handled by caller
            m = re.match(r"(with|range|if)\s+(.*)$", s, re.S)
            if m:
                kw, expr = m.group(1), m.group(2)
                val = None
                if emit:
                    val, _ = ev.pipeline(_lex(expr), 0, dot)
                if kw == "range":
                    items = (
                        (list(val.values()) if isinstance(val, dict) else list(val or []))
                        if emit
                        else []
                    )
                    start = idx + 1
                    end_idx = None
                    for it in items:
                        txt, end_idx = run(start, it, True)
                        buf.append(txt)
                    if end_idx is None:
                        _, end_idx = run(start, dot, False)
                    idx = end_idx
                    continue
                cond = emit and _truthy(val)
                newdot = val if kw == "with" else dot
                txt, j = run(idx + 1, newdot, cond)
                if cond:
                    buf.append(txt)
                if j < len(acts) and acts[j] == ("action", "else"):
                    txt2, j = run(j + 1, dot, emit and not cond)
                    if emit and not cond:
                        buf.append(txt2)
                idx = j
                continue
            if emit:
                val, _ = ev.pipeline(_lex(s), 0, dot)
                buf.append(val if isinstance(val, str) else _str(val))
            idx += 1
        return "".join(buf), idx

    text, _ = run(0, data, True)
    return text
