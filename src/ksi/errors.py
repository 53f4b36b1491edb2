"""Error classes of KSI: each has its own exit code, a one-line cause and a fix.

Exit codes 64-113 are KSI's own; any other code is the workload's (passed through).
128+N means KSI ended on signal N after tearing down.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """Distinct exit code per failure class (documented in the README)."""

    OK = 0
    USAGE = 64
    WORKLOAD_MISSING = 65
    WORKLOAD_UNREADABLE = 66
    SHARED_DIR_MISSING = 67
    SHARED_DIR_UNUSABLE = 68
    PORT_NOT_A_NUMBER = 69
    PORT_OUT_OF_RANGE = 70
    PORT_TAKEN = 71
    NO_FREE_PORT = 72
    PROVIDER_UNKNOWN = 73
    PROVIDER_MISSING = 74
    TOOL_MISSING = 75
    RUNTIME_UNAVAILABLE = 76
    CONFIG_INVALID = 77
    STATE_UNSAFE = 78
    CLUSTER_CREATE_FAILED = 79
    CLUSTER_NODE_START_FAILED = 80
    CLUSTER_NOT_READY = 81
    ACCESS_FAILED = 82
    TOKEN_FAILED = 83
    WORKDIR_UNUSABLE = 84
    COMMAND_TIMEOUT = 85
    TIME_LIMIT = 86
    FEDERATION_FAILED = 87
    PEER_FAILED = 88
    RENDEZVOUS_FAILED = 89
    MEMBER_FAILED = 90
    IMAGE_FAILED = 91
    MANIFEST_FAILED = 92
    PREFLIGHT_FAILED = 93
    RUNTIME_MODE_REFUSED = 94
    TEARDOWN_INCOMPLETE = 95
    DOCTOR_WARNINGS = 96
    GPU_UNAVAILABLE = 97
    GPU_SETUP_FAILED = 98
    WARM_FAILED = 99
    INTERNAL = 113


class KsiError(Exception):
    """A failure with an exit code, a cause and the command or action that fixes it."""

    code: Exit = Exit.INTERNAL

    def __init__(self, cause: str, fix: str = "", *, code: Exit | None = None,
                 detail: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix
        self.detail = detail
        if code is not None:
            self.code = code

    def line(self) -> str:
        """The one line printed last: cause, then fix."""
        cause = " ".join(self.cause.split())
        fix = " ".join(self.fix.split())
        return f"ksi: error: {cause}" + (f" -- fix: {fix}" if fix else "")

    def restated(self, *, cause: str | None = None, fix: str | None = None) -> KsiError:
        """A new error with the same code and detail, its cause or fix reworded, chained to
        this one (an error is never changed once raised)."""
        new = KsiError(self.cause if cause is None else cause, self.fix if fix is None else fix,
                       code=self.code, detail=self.detail)
        new.__cause__ = self
        return new

    def caused_by(self) -> str:
        """What this error was raised from (`raise ... from`), nearest first, as one line
        ('' when nothing): what --verbose prints before the error's line."""
        parts: list[str] = []
        seen = {id(self)}
        last = " ".join(self.cause.split())
        cur = self.__cause__
        while cur is not None and id(cur) not in seen:
            seen.add(id(cur))
            text = _text(cur)
            if text and text not in last:   # a restated error says it again
                parts.append(text)
            last = text
            cur = cur.__cause__
        return "caused by: " + " <- ".join(parts) if parts else ""


def _text(exc: BaseException) -> str:
    if isinstance(exc, CommandFailed) and exc.stderr.strip():
        return " ".join(f"{exc.cause} ({last_line(exc.stderr)})".split())
    if isinstance(exc, KsiError):
        return " ".join(exc.cause.split())
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ToolMissing(KsiError):
    """An external program is not on PATH."""

    code = Exit.TOOL_MISSING


class GpuUnavailable(KsiError):
    """GPUs were expected (Slurm gave some, or gpus = required) but none can be used:
    nvidia-smi missing or failing (the NVIDIA driver), or the job has no GPUs."""

    code = Exit.GPU_UNAVAILABLE


class GpuSetupFailed(KsiError):
    """Putting the job's GPUs into the cluster failed (toolkit, images, device plugin)."""

    code = Exit.GPU_SETUP_FAILED


class CommandFailed(KsiError):
    """An external program exited non-zero; carries its stderr."""

    code = Exit.CLUSTER_CREATE_FAILED

    def __init__(self, cause: str, fix: str = "", *, code: Exit | None = None,
                 argv: list[str] | None = None, returncode: int | None = None,
                 stdout: str = "", stderr: str = "") -> None:
        super().__init__(cause, fix, code=code, detail=stderr)
        self.argv = argv or []
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class CommandTimeout(CommandFailed):
    """An external program ran past its timeout and was killed."""

    code = Exit.COMMAND_TIMEOUT


class Interrupted(Exception):
    """A signal (SIGTERM, SIGINT, SIGHUP) or the job's time limit ended the run."""

    def __init__(self, signum: int, reason: str = "") -> None:
        super().__init__(reason or f"signal {signum}")
        self.signum = signum
        self.reason = reason


def last_line(text: str) -> str:
    """The most telling line of a tool's stderr: the last ERROR line, else the last line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("ERROR", "error", "Error", "FATA", "ERRO")):  # ERRO: liqoctl (pterm)
            return ln
    return lines[-1] if lines else ""
