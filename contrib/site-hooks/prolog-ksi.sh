#!/bin/bash
# Example Slurm Prolog fragment (root, on every allocated node). Add to the site's Prolog
# script or drop into a Prolog directory (Prolog=/etc/slurm/prolog.d/*). Requires
# cgroup/v2 (CgroupPlugin=cgroup/v2) and, for the pids controller, either
# EnableExtraControllers=pids in cgroup.conf or this hook's own enabling.
# It starts the delegation watcher detached and returns at once: the Prolog must not block.
HOOK=/usr/local/sbin/ksi-delegate-cgroup
if [ -x "$HOOK" ] && [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    SLURM_JOB_ID="$SLURM_JOB_ID" SLURM_JOB_UID="$SLURM_JOB_UID" \
        setsid "$HOOK" --watch </dev/null >/dev/null 2>&1 &
fi
exit 0
