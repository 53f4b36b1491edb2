"""`ksi run job.yaml [more.yaml …] [WORKLOAD.sh]`: apply the manifests and run them with
Kubernetes' own semantics.

1. The files are read and checked against the cluster before anything is applied
   (ksi.workload.precheck: unknown kind, missing CRD, missing namespace), then applied.
2. Batch targets (Jobs; Pods with restartPolicy Never/OnFailure) are done when Kubernetes
   says so: a Job's Complete/Failed condition, a Pod's phase. Retried states (BackOff,
   CrashLoopBackOff, pulls) are not failures; ErrImageNeverPull/InvalidImageName are at
   once, CreateContainer(Config)Error after a short grace, a failing image pull after
   `image_pull_timeout`.
3. Service targets (Deployments, StatefulSets, DaemonSets, Pods with restartPolicy Always)
   are waited for until ready; they are served until the batch targets finish, or, without
   any, until scancel/the time limit (exit 0: that is how such a run ends), or, when a
   script follows, until they are ready (the script runs while they serve).
4. Logs stream live (`logs`: follow | end | none; ksi.workload.podlogs); at the end one table
   of the targets' pods. A failure exits 92 with one line naming the object, the pod, its
   container, its reason and its exit code.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ksi.errors import Interrupted, KsiError
from ksi.workload import precheck
from ksi.workload.objects import Target, read_manifests
from ksi.workload.podlogs import PodLogs
from ksi.workload.watch import Clock, Watch

if TYPE_CHECKING:
    from ksi.run.context import RunContext as NodeCluster
    from ksi.signals import Guard

log = logging.getLogger("ksi.manifests")
__all__ = ["Target", "read_manifests", "run_manifests", "serve"]


def run_manifests(cluster: NodeCluster, guard: Guard, paths: list[Path], *,
                  clock: Optional[Clock] = None) -> int:
    """Check, apply, wait as Kubernetes does, stream logs. Returns 0; a failure raises
    KsiError(MANIFEST_FAILED)."""
    m = read_manifests(paths)
    precheck.check(cluster.kubectl, m)
    precheck.apply(cluster.kubectl, m, log)
    if not m.targets:
        return 0
    s = cluster.plan.settings
    watch = Watch(cluster.kubectl, m.targets, PodLogs(cluster.kubectl, s.logs),
                  clock=clock or Clock(), pull_timeout=float(s.image_pull_timeout))
    return serve(watch, guard, interval=max(0.01, float(s.poll_interval)),
                 script_follows=cluster.plan.workload is not None)


def _finished(targets: list[Target], script_follows: bool) -> bool:
    batch = [t for t in targets if t.batch]
    if batch:
        return all(t.done for t in batch)
    return script_follows and all(t.ready for t in targets)


def serve(watch: Watch, guard: Guard, *, interval: float, script_follows: bool) -> int:
    """Poll until the targets are done (see the module's doc); always end with the pods'
    table; the log streams never outlive this call."""
    targets = watch.targets
    serving = not any(t.batch for t in targets) and not script_follows
    log.info("waiting for %s", ", ".join(t.ref for t in targets))
    announced = False
    try:
        while True:
            watch.poll()
            if _finished(targets, script_follows):
                break
            if serving and not announced and all(t.ready for t in targets):
                log.info("all ready; serving until scancel or the job's time limit")
                announced = True
            watch.clock.sleep(interval)
    except Interrupted as exc:
        watch.logs.stop()  # teardown must fit in KillWait: no log fetching now
        _print_table(watch)
        if serving and exc.signum == signal.SIGTERM:
            log.info("served until %s: a service run ends this way (exit 0)", exc.reason)
            guard.received = None  # the cancel was this run's normal end, not an interruption
            return 0
        raise
    except KsiError:
        watch.logs.finish(watch.current, wait=2.0, look=watch.look)
        _print_table(watch)
        raise
    watch.logs.finish(watch.current, look=watch.look)
    _print_table(watch)
    return 0


def _print_table(watch: Watch) -> None:
    rows = watch.table()
    if rows:
        log.info("pods of the manifests:")
        for row in rows:
            log.info("  %s", row)
