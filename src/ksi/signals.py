"""Signals and the job's time limit.

While setting up, SIGTERM/SIGINT/SIGHUP (and the deadline, via SIGALRM) interrupt the current
step so that teardown can run. While the workload runs they are forwarded to its process group.
During teardown they are noted and otherwise ignored: teardown must finish before Slurm's
SIGKILL.

SIGUSR1/SIGUSR2 (`sbatch --signal=USR1@60`, `scancel --signal=USR1`) never stop KSI: they are
meant for the workload. Under Slurm the step's every process receives them from slurmstepd
(proctrack signals the whole step), so KSI passes them on only outside Slurm."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
from typing import Any

from ksi.errors import Interrupted
from ksi.runner import signal_group

log = logging.getLogger("ksi.signals")
HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
NOTICES = (signal.SIGUSR1, signal.SIGUSR2)
DEADLINE = "the job's time limit is near"


class Guard:
    """Installs the handlers; `mode` is 'setup', 'workload' or 'teardown'."""

    def __init__(self, grace: float = 15.0, relay_notices: bool = True) -> None:
        self.grace = grace
        self.relay_notices = relay_notices
        self.notices: list[str] = []
        self.mode = "setup"
        self.received: int | None = None
        self.reason = ""
        self.workload: subprocess.Popen | None = None
        self._old: dict[int, Any] = {}
        self._killer: threading.Timer | None = None

    def __enter__(self) -> Guard:
        for s in (*HANDLED, signal.SIGALRM):
            self._old[s] = signal.signal(s, self._handle)
        for s in NOTICES:
            self._old[s] = signal.signal(s, self._notice)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)
        if self._killer:
            self._killer.cancel()
        for s, h in self._old.items():
            signal.signal(s, h)

    def set_deadline(self, seconds: float | None) -> None:
        """Interrupt (like SIGTERM) after seconds; None clears it."""
        signal.alarm(0 if seconds is None else max(1, int(seconds)))

    def _notice(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        self.notices.append(name)
        if self.mode == "workload" and self.workload is not None and self.relay_notices:
            log.info("%s: passed on to the workload", name)
            signal_group(self.workload, signum)
            return
        log.info("%s received: not a reason to stop; %s", name,
                 "the workload gets it from Slurm" if self.mode == "workload"
                 else "ignored (no workload runs now)")

    def _handle(self, signum: int, _frame: Any) -> None:
        reason = DEADLINE if signum == signal.SIGALRM else signal.Signals(signum).name
        if self.received is None:
            self.received = signal.SIGTERM if signum == signal.SIGALRM else signum
            self.reason = reason
        if self.mode == "teardown":
            log.info("%s received during teardown: finishing teardown first", reason)
            return
        if self.mode == "workload" and self.workload is not None:
            log.info("%s: forwarding SIGTERM to the workload (SIGKILL in %.0fs)", reason,
                     self.grace)
            fwd = signal.SIGTERM if signum == signal.SIGALRM else signum
            signal_group(self.workload, fwd)
            if self._killer is None:
                proc = self.workload
                self._killer = threading.Timer(self.grace, signal_group,
                                               (proc, signal.SIGKILL))
                self._killer.daemon = True
                self._killer.start()
            return
        raise Interrupted(self.received, reason)
