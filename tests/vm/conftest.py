"""The VM test bed fixture: one boot of the cached image per session (tests/vm/vmctl.py).

Tests marked `vm` run only with KSI_VM_TESTS=1; they skip, naming the missing piece, when the
image is absent or half-built (tests/vm/check-image.sh), or when we are not root (QEMU user
networking needs no root, but the image cache and the harness's root key are root's).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import vmctl  # noqa: E402

TIMINGS: dict[str, float] = {}


def image_missing() -> str | None:
    if os.environ.get("KSI_VM_TESTS") != "1":
        # one session boots a VM under TCG for many minutes: not in every broad pytest run
        # on a machine where the image happens to exist; CI's VM step sets it
        return "opt-in: set KSI_VM_TESTS=1 to boot the VM (README: timings)"
    if os.geteuid() != 0:
        return "needs root (the VM cache and the harness key are root's)"
    missing = vmctl.check_image()
    return "; ".join(missing) if missing else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.vm)
    # the doctor tests restart the user's manager and unload modules: the real kind runs go
    # first, on the freshly booted VM
    items.sort(key=lambda item: Path(str(item.fspath)).name == "test_vm_doctor.py")


@pytest.fixture(scope="session")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[vmctl.VM]:
    """The booted VM (shut down at the end of the session). KSI_VM_ATTACH=WORKDIR uses a VM
    already started with `KSI_VM_STATE=WORKDIR vmctl.py up` and leaves it running."""
    attach = os.environ.get("KSI_VM_ATTACH")
    if attach:
        running = vmctl.VM(workdir=Path(attach))
        if not running.alive():
            pytest.skip(f"KSI_VM_ATTACH={attach}: no VM running there")
        yield running
        return
    missing = image_missing()
    if missing:
        pytest.skip(f"VM image: {missing}")
    t0 = time.monotonic()
    machine = vmctl.VM(workdir=tmp_path_factory.mktemp("vm"),
                       boot_timeout=float(os.environ.get("KSI_VM_BOOT_TIMEOUT", "1500")))
    try:
        TIMINGS["boot"] = machine.up()
        yield machine
    finally:
        machine.down()
        TIMINGS["session"] = time.monotonic() - t0
        print(f"\nVM timings: {TIMINGS}")
