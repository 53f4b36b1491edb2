"""What KSI prints: one line per phase with its duration, plain in job logs, coloured on a TTY.

Lines go to stderr so that the workload's stdout stays its own.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from ksi.runner import mask

if TYPE_CHECKING:
    from ksi.errors import KsiError


class Console:
    """Prints phase lines; uses rich only when stderr is a terminal."""

    def __init__(self, *, verbose: bool = False, stream: Any = None, prefix: str = "ksi") -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.prefix = prefix
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._rich: Any = None
        self.phases: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self._setup_logging()

    def _setup_logging(self) -> None:
        logger = logging.getLogger("ksi")
        logger.handlers[:] = []
        handler = logging.StreamHandler(self.stream)
        handler.setFormatter(_MaskingFormatter(f"{self.prefix}:   %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if self.verbose else logging.INFO)
        logger.propagate = False

    def _emit(self, text: str, style: str = "") -> None:
        text = mask(text)
        if self.tty:
            if self._rich is None:
                from rich.console import Console as RichConsole

                self._rich = RichConsole(file=self.stream, highlight=False, soft_wrap=True)
            self._rich.print(f"[bold]{self.prefix}:[/bold] " + (
                f"[{style}]{_escape(text)}[/{style}]" if style else _escape(text)))
        else:
            print(f"{self.prefix}: {text}", file=self.stream, flush=True)

    def info(self, text: str) -> None:
        self._emit(text)

    def warn(self, text: str) -> None:
        self._emit(f"warning: {text}", "yellow")

    def failed(self, exc: KsiError) -> None:
        """A command ends with exc: its one line; verbose, first what it was raised from."""
        why = exc.caused_by() if self.verbose else ""
        if why:
            self._emit(why)
        self.error(exc.line())

    def error(self, line: str) -> None:
        """The final one-line error (already prefixed 'ksi: error:')."""
        line = mask(line)
        if self.tty:
            self._emit(line.removeprefix(f"{self.prefix}: "), "bold red")
        else:
            print(line, file=self.stream, flush=True)

    @contextmanager
    def phase(self, name: str, detail: str = "") -> Iterator[dict[str, Any]]:
        """Time a phase and print its outcome as one line."""
        record: dict[str, Any] = {"phase": name, "status": "running", "detail": detail}
        self.phases.append(record)
        start = time.monotonic()
        record["start_offset"] = round(start - self.t0, 3)
        try:
            yield record
        except BaseException as exc:
            record["seconds"] = round(time.monotonic() - start, 3)
            record["status"] = "interrupted" if _is_interrupt(exc) else "failed"
            self._emit(f"phase {name}: {record['status']} after {record['seconds']:.2f}s",
                       "red")
            raise
        record["seconds"] = round(time.monotonic() - start, 3)
        if record["status"] == "running":
            record["status"] = "ok"
        extra = record.get("detail") or ""
        self._emit(f"phase {name}: {record['status']} in {record['seconds']:.2f}s"
                   + (f"  {extra}" if extra else ""), "green" if record["status"] == "ok" else "")


def _is_interrupt(exc: BaseException) -> bool:
    from ksi.errors import Interrupted

    return isinstance(exc, (Interrupted, KeyboardInterrupt))


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))
