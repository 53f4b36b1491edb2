"""pytest fixtures and marker for the KSI Slurm test bed.

Load it from the top-level conftest with ``pytest_plugins = ["tests.slurm.fixtures"]``
(or from a test module the same way).

Fixtures
    slurm_testbed  session scope: the bed is brought up once (idempotent; node count from
                   KSI_TESTBED_NODES, default 3) and a :class:`Testbed` is returned. Tests
                   are skipped with the reason when the bed cannot run here.

Session end: the bed is taken down only if this session started it and no other live
pytest session is still using it (sessions register under $STATE/sessions/<pid>).
KSI_TESTBED_KEEP=1 never takes it down; KSI_TESTBED_KEEP=0 takes it down even if it was
already up (unless another live session uses it).

Every test that uses ``slurm_testbed`` gets the ``slurm`` marker, so ``-m "not slurm"``
deselects them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .harness import Testbed, live_sessions, sessions_dir, testbed_unavailable_reason

__all__ = ["pytest_collection_modifyitems", "pytest_configure", "slurm_testbed"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slurm: needs the Slurm test bed (tests/slurm/testbed; root, Linux)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "slurm_testbed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def slurm_testbed() -> Iterator[Testbed]:
    reason = testbed_unavailable_reason()
    if reason:
        pytest.skip(f"Slurm test bed unavailable: {reason}")
    bed = Testbed()
    nodes = int(os.environ.get("KSI_TESTBED_NODES", "3"))

    # register before looking at the state so that a concurrent session sees us
    sessions = sessions_dir(bed)
    sessions.mkdir(parents=True, exist_ok=True)
    me = sessions / str(os.getpid())
    me.touch()

    was_up = bed.is_up()
    bed.up(nodes)
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(bed.conf)  # for tests that call Slurm clients directly
    try:
        yield bed
    finally:
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
        me.unlink(missing_ok=True)
        keep = os.environ.get("KSI_TESTBED_KEEP", "")
        if keep == "1":
            take_down = False
        elif keep == "0":
            take_down = True
        else:
            take_down = not was_up
        if take_down and not live_sessions(bed):
            bed.down()
