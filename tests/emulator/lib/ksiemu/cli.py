"""A small pflag/cobra-like argument parser shared by the emulated programs."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple


class FlagError(Exception):
    pass


class Spec:
    """Flag specification: ``names`` maps every spelling (``-n``, ``--name``) to a
    destination; ``kinds`` gives the destination kind: "bool", "str", "list"."""

    def __init__(self) -> None:
        self.names: Dict[str, str] = {}
        self.kinds: Dict[str, str] = {}
        self.defaults: Dict[str, object] = {}

    def add(self, dest: str, *spellings: str, kind: str = "str", default: object = None) -> Spec:
        for s in spellings:
            self.names[s] = dest
        self.kinds[dest] = kind
        if default is None:
            default = [] if kind == "list" else (False if kind == "bool" else None)
        self.defaults[dest] = default
        return self


def parse(
    argv: List[str], spec: Spec, interspersed: bool = True
) -> Tuple[Dict[str, object], List[str]]:
    """Parse ``argv``; returns (flags, positional).  Raises FlagError with the
    pflag wording (``unknown flag: --x``, ``flag needs an argument: --x``)."""
    vals: Dict[str, object] = {}
    for k, v in spec.defaults.items():
        vals[k] = list(v) if isinstance(v, list) else v
    pos: List[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            pos.extend(argv[i + 1 :])
            break
        if not a.startswith("-") or a == "-":
            pos.append(a)
            if not interspersed:
                pos.extend(argv[i + 1 :])
                break
            i += 1
            continue
        name, eq, value = a.partition("=")
        has_value = bool(eq)
        if not a.startswith("--") and len(a) > 2 and not has_value:
            # -nNAME form
            name, value, has_value = a[:2], a[2:], True
            if spec.kinds.get(spec.names.get(name, ""), "") == "bool":
                # combined short bools are not needed by the emulator
                raise FlagError(f"unknown shorthand flag: {a[1]!r} in {a}")
        dest = spec.names.get(name)
        if dest is None:
            if name.startswith("--"):
                raise FlagError(f"unknown flag: {name}")
            raise FlagError(f"unknown shorthand flag: {name[1:2]!r} in {a}")
        kind = spec.kinds[dest]
        if kind == "bool":
            if has_value:
                vals[dest] = value.lower() in ("1", "t", "true", "yes")
            else:
                vals[dest] = True
            i += 1
            continue
        if not has_value:
            if i + 1 >= len(argv):
                raise FlagError(
                    "flag needs an argument: {}".format(
                        name if name.startswith("--") else f"'{name[1:]}' in {name}"
                    )
                )
            value = argv[i + 1]
            i += 2
        else:
            i += 1
        if kind == "list":
            lst = vals[dest]
            assert isinstance(lst, list)
            lst.append(value)
        else:
            vals[dest] = value
    return vals, pos


def get_str(vals: Dict[str, object], k: str, default: str = "") -> str:
    v = vals.get(k)
    return default if v is None else str(v)


def opt(vals: Dict[str, object], k: str) -> Optional[str]:
    v = vals.get(k)
    return None if v is None else str(v)


def parse_duration(s: str) -> float:
    """Go time.ParseDuration subset: 1h30m, 90s, 1.5m, 300ms; bare "0" allowed."""
    s = s.strip()
    if s in ("0", ""):
        return 0.0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    i = 0
    neg = False
    if s[0] in "+-":
        neg = s[0] == "-"
        i = 1
    if i >= len(s):
        raise ValueError(f'time: invalid duration "{s}"')
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        if j == i:
            raise ValueError(f'time: invalid duration "{s}"')
        num = float(s[i:j])
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        unit = s[j:k]
        if unit == "":
            raise ValueError(f'time: missing unit in duration "{s}"')
        if unit not in units:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{s}"')
        total += num * units[unit]
        i = k
    return -total if neg else total


def format_duration(sec: float) -> str:
    """Go's Duration.String() for whole-ish seconds (5m0s, 1h0m0s, 30s)."""
    if sec == 0:
        return "0s"
    ms = int(round(sec * 1000))
    h, rem = divmod(ms, 3600_000)
    m, rem = divmod(rem, 60_000)
    s = rem / 1000.0
    s_str = f"{int(s)}" if s == int(s) else f"{s:g}"
    if h:
        return f"{h}h{m}m{s_str}s"
    if m:
        return f"{m}m{s_str}s"
    return f"{s_str}s"
