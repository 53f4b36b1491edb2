"""Entry point of the emulated ``nerdctl`` (see runtime.py)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List


def main(argv: List[str]) -> None:
    from . import runtime

    runtime.main_for("nerdctl", argv)
