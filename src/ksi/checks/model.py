"""The check model: a Check (status, detail, fix, admin remedy), the Context the checks
read the host through (a fake root in tests), the worst status and its exit code."""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ksi.errors import Exit, KsiError

if TYPE_CHECKING:
    from ksi.provision.providers import Provider
    from ksi.runner import Runner

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
RANK = {SKIP: 0, PASS: 0, WARN: 1, FAIL: 2}
WARN_EXIT = int(Exit.DOCTOR_WARNINGS)  # doctor found warnings only (no failures)
# the KSI source tree's contrib/ (site hooks, the Slurm epilog), when KSI runs from one
_HERE = Path(__file__).resolve()
CONTRIB = _HERE.parents[3] / "contrib" if len(_HERE.parents) > 3 else None


@dataclass
class Check:
    """One check's result. `admin` holds the bash blocks an admin runs to fix it (empty:
    no admin remedy, the problem is the user's); they are never run by KSI."""

    name: str
    status: str
    detail: str
    fix: str = ""
    code: int = field(default=int(Exit.PREFLIGHT_FAILED), repr=False)
    admin: tuple[str, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("code")
        d.pop("admin")
        return d


@dataclass
class Context:
    """What the checks look at."""

    runner: Runner
    provider: str = "nerdctl"
    root: Path = Path("/")
    clusters: int = 1
    shared_dir: Optional[str] = None
    bypass4netns: str = "auto"
    port_range: tuple[int, int] = (30000, 32767)
    api_port_range: tuple[int, int] = (41000, 41999)
    lock_dir: str = "/tmp/ksi-locks"
    runtime_mode: str = "user"
    liqo_version: str = ""
    liqo_chart: str = ""
    liqo_networking: bool = True
    image_archive_dir: str = ""             # the offline image archive cache (GPU images)
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    uid: int = field(default_factory=os.getuid)

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str) -> Optional[str]:
        try:
            return self.path(absolute).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def release(self) -> str:
        """The kernel release (osrelease under the root, else this kernel's)."""
        return (self.read("/proc/sys/kernel/osrelease") or "").strip() or os.uname().release

    def runtime(self) -> Optional[Provider]:
        """The provider of the runtime checked (None for a name KSI does not know)."""
        from ksi.provision.providers import PROVIDERS

        cls = PROVIDERS.get(self.provider)
        return cls(self.runner) if cls is not None else None

    def contrib(self, rel: str) -> str:
        """Where a contrib/ file is: the source tree's copy, else its path in the source."""
        p = CONTRIB / rel if CONTRIB else None
        return str(p) if p is not None and p.exists() else f"contrib/{rel}"


def linger(ctx: Context) -> str:
    """Admin bash: a systemd user manager for the user, also outside a login."""
    return (f"loginctl enable-linger {ctx.user}   # a systemd user manager (and "
            f"/run/user/{ctx.uid}) for {ctx.user}, also outside a login")


# ------------------------------------------------------------------------ versions
_VER = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> Optional[tuple[int, ...]]:
    """The first 'X.Y[.Z]' in text."""
    m = _VER.search(text or "")
    if not m:
        return None
    return tuple(int(g) for g in m.groups() if g is not None)


def fmt_version(v: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v)


# ------------------------------------------------------------------------ results
def worst(checks: list[Check]) -> str:
    w = PASS
    for c in checks:
        if RANK[c.status] > RANK[w]:
            w = c.status
    return w


def exit_code(checks: list[Check]) -> int:
    """0 all pass, 96 warnings only, 93 something fails."""
    return {PASS: 0, WARN: WARN_EXIT, FAIL: int(Exit.PREFLIGHT_FAILED)}[worst(checks)]


def raise_first_failure(checks: list[Check]) -> None:
    """The first failing check as a KsiError (its detail, fix and exit code)."""
    for c in checks:
        if c.status == FAIL:
            raise KsiError(c.detail, c.fix, code=Exit(c.code))
