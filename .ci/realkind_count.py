"""pytest plugin for CI (`-p realkind_count` with .ci on sys.path): counts the tests marked
`realkind` by outcome, prints one line in the terminal summary and, when
KSI_CI_REALKIND_JSON names a file, writes the counts there for .ci/run to check."""

from __future__ import annotations

import json
import os

import pytest

_REALKIND: set[str] = set()
_OUTCOME: dict[str, str] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _REALKIND.update(i.nodeid for i in items if i.get_closest_marker("realkind"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _REALKIND:
        return
    prev = _OUTCOME.get(report.nodeid)
    if report.failed:
        _OUTCOME[report.nodeid] = "failed"
    elif report.skipped and prev != "failed":
        _OUTCOME[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and prev is None:
        _OUTCOME[report.nodeid] = "passed"


def counts() -> dict[str, object]:
    """Selected realkind tests and how each ended; `ran` = passed + failed."""
    vals = list(_OUTCOME.values())
    c = {k: vals.count(k) for k in ("passed", "failed", "skipped")}
    return {"selected": len(_REALKIND), "ran": c["passed"] + c["failed"], **c,
            "skipped_ids": sorted(k for k, v in _OUTCOME.items() if v == "skipped")}


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 (pytest's object)
    c = counts()
    terminalreporter.write_line(
        f"realkind tests: {c['ran']} ran ({c['passed']} passed, {c['failed']} failed), "
        f"{c['skipped']} skipped, of {c['selected']} selected")
    out = os.environ.get("KSI_CI_REALKIND_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(c, f)
