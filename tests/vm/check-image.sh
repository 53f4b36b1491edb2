#!/usr/bin/env bash
# Exit 0 when the VM image built by tests/vm/build-image.sh is complete and unchanged since
# its manifest (image.json, written last) was written; else print the missing piece, exit 1.
# Cheap: no boot, no network.   KSI_VM_CACHE=/var/cache/ksi-vm tests/vm/check-image.sh
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec python3 "$HERE/vmctl.py" check
