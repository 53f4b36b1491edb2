#!/bin/bash
# KSI Slurm epilog: remove what the job's `ksi run`s left on this node (a killed run, a
# teardown cut short by SIGKILL). slurmd runs it as root on every node of the job, after the
# job's processes are gone, with SLURM_JOB_ID and SLURM_JOB_USER set. It runs
#   ksi gc --job $SLURM_JOB_ID --user $SLURM_JOB_USER
# AS THE JOB'S USER (runuser), since a rootless runtime is only reachable as its user.
# `ksi gc` only removes runs whose ksi process is gone: never a running job's cluster, never
# another user's. This script always exits 0 (a failing epilog would drain the node).
#
# Install (see docs/operating.md):
#   install -m 0755 ksi-epilog.sh /etc/slurm/ksi-epilog.sh
#   slurm.conf:  Epilog=/etc/slurm/ksi-epilog.sh   (or add a line to an existing epilog)
#   scontrol reconfigure
# Knobs (environment of slurmd, or /etc/ksi/epilog.env):
#   KSI_EPILOG_KSI      the ksi command (default: ksi on PATH), e.g. "/opt/ksi/bin/ksi"
#   KSI_EPILOG_ENV      file of KEY=VALUE lines passed to ksi (default /etc/ksi/epilog.env)
#   KSI_EPILOG_TIMEOUT  seconds for the gc (default 120; keep below slurm.conf's EpilogMsgTime)
#   KSI_EPILOG_LOG      append the gc's output to this file (default: syslog via logger)
set -u
job=${SLURM_JOB_ID:-}
user=${SLURM_JOB_USER:-}
[ -n "$job" ] && [ -n "$user" ] || exit 0
pw=$(getent passwd "$user") || exit 0
uid=$(printf '%s' "$pw" | cut -d: -f3)
home=$(printf '%s' "$pw" | cut -d: -f6)
ksi=${KSI_EPILOG_KSI:-ksi}
envfile=${KSI_EPILOG_ENV:-/etc/ksi/epilog.env}
envs=("HOME=$home" "USER=$user" "LOGNAME=$user" "XDG_RUNTIME_DIR=/run/user/$uid"
      "PATH=/usr/local/bin:/usr/bin:/bin")
if [ -r "$envfile" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in ''|'#'*) ;; *=*) envs+=("$line") ;; esac
  done < "$envfile"
fi
if [ "$uid" = 0 ]; then
  as_user=()
else
  as_user=(runuser -u "$user" --)
fi
# shellcheck disable=SC2086  # $ksi may be "python3 -m ksi"
out=$(cd / && timeout "${KSI_EPILOG_TIMEOUT:-120}" "${as_user[@]}" env -i "${envs[@]}" \
      $ksi gc --job "$job" --user "$user" 2>&1)
rc=$?
msg="job $job user $user: ksi gc exit $rc: $(printf '%s' "$out" | tr '\n' ';')"
if [ -n "${KSI_EPILOG_LOG:-}" ]; then
  printf '%s\n' "$msg" >> "$KSI_EPILOG_LOG"
elif command -v logger >/dev/null 2>&1; then
  logger -t ksi-epilog -- "$msg"
fi
exit 0
