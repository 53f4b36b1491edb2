"""What NodeCluster does around `kind create` for issue 6, in one place:

preflight()     runtime_mode=job: refuse with the reason unless the task cgroup is delegated
before_create() start the job-scoped runtime; bypass4netns shim first on PATH
node_image()    (after the runtime's check) node image from the archive cache when missing
after_create()  preload workload archives; record where the node containers' cgroups are
teardown()      stop the job-scoped runtime (after kind delete)
report()        what goes into the run report

The environment kind, kubectl and the provider need (private runtime, shim PATH) is put into
runner.extra_env, which every command KSI runs inherits.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ksi.errors import Exit, KsiError
from ksi.runtime import bypass, cgroups

if TYPE_CHECKING:
    from ksi.plan.plan import Plan
    from ksi.provision.kind import Kind
    from ksi.provision.providers import Provider
    from ksi.runner import Runner
    from ksi.runtime.jobruntime import JobRuntime

log = logging.getLogger("ksi.runtime")

HOST_ROOT_ENV = "KSI_HOST_ROOT"       # tests: read /proc, /sys, /etc under a fake root
JOB_BASE_ENV = "KSI_JOB_RUNTIME_BASE"  # tests: where /tmp/ksi-<job>.<step> goes


def _split(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v)]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


class RuntimeSetup:
    def __init__(self, plan: Plan, runner: Runner, provider: Provider, kind: Kind) -> None:
        self.plan = plan
        self.runner = runner
        self.provider = provider
        self.kind = kind
        self.environ = dict(os.environ)
        self.host_root = self.environ.get(HOST_ROOT_ENV, "/")
        self.mode = plan.settings.runtime_mode
        self.job: Optional[JobRuntime] = None
        self.image: str = plan.image  # node_image(): an archive's tag when only that is given
        self.info: dict[str, Any] = {"runtime_mode": self.mode}
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ preflight
    def preflight(self) -> None:
        if self.mode != "job":
            return
        from ksi.runtime import preflight

        if self.provider.name not in ("nerdctl", "podman"):
            raise KsiError(f"runtime_mode=job refused: it supports nerdctl and podman, not "
                           f"{self.provider.name}", "use --provider nerdctl or podman, or "
                           "--runtime-mode user", code=Exit.RUNTIME_MODE_REFUSED)
        found = preflight.require(self.provider.name, root=self.host_root,
                                  wait=3.0 if self.host_root == "/" else 0.0,
                                  which=lambda b: self.runner.which(b))
        self.info["task_cgroup"] = found.task_cgroup
        self.info["job_cgroup"] = found.job_cgroup

    # ------------------------------------------------------------------ before create
    def before_create(self) -> None:
        if self.mode == "job":
            self._start_job_runtime()
        self._network()

    def _start_job_runtime(self) -> None:
        from ksi.runtime.jobruntime import JobRuntime

        env = self.plan.env
        self.job = JobRuntime(
            self.provider.name, self.runner, job_id=env.job_id, step_id=env.step_id,
            base=self.environ.get(JOB_BASE_ENV, "/tmp"), environ=self.environ,
            cgroup_root=str(Path(self.host_root) / cgroups.CGROUP_ROOT.lstrip("/")),
            task_cgroup=self.info.get("task_cgroup"))
        self.info["job_runtime"] = self.job.info
        self.job.start()
        self.runner.extra_env.update(self.job.env())

    def _network(self) -> None:
        env = {**self.environ, **self.runner.extra_env}
        d = bypass.decide(self.plan.settings.bypass4netns, self.provider.name, env,
                          proc_root=str(Path(self.host_root) / "proc"))
        self.info["bypass4netns"] = {"used": d.use, "reason": d.reason}
        if d.use:
            real = self.runner.which(self.provider.binary)
            if not real:
                raise KsiError("nerdctl is not on PATH", "install nerdctl",
                               code=Exit.PROVIDER_MISSING)
            shim_dir = self.plan.state_dir / "shim"
            found = self.provider.versions()
            flag = bypass.run_flag(found.client if found else "")
            bypass.write_shim(shim_dir, os.path.abspath(real), flag)
            path = env.get("PATH", os.defpath)
            self.runner.extra_env["PATH"] = f"{shim_dir}{os.pathsep}{path}"
            self.info["bypass4netns"]["shim"] = str(shim_dir / "nerdctl")
            self.info["bypass4netns"]["flag"] = flag
            log.info("bypass4netns: node containers get %s %s (nerdctl %s; %s)", flag,
                     bypass.ANNOTATION, found.client if found else "version unknown", d.reason)
        elif self.provider.name == "nerdctl":
            self.warn(bypass.SLIRP_WARNING + f" ({d.reason})")

    def node_image(self) -> None:
        """After the runtime answers: load the node image archive when the image is missing."""
        from ksi import images

        archive_opt = self.plan.settings.image_archive
        archive_dir = self.plan.settings.image_archive_dir
        archive: Optional[Path] = None
        image = self.image
        if archive_opt:
            archive = images.check_archive(archive_opt)
            if not image:
                tags = images.archive_tags(archive)
                if not tags:
                    raise KsiError(f"image archive {archive} names no image",
                                   "re-create it with 'ksi images save IMAGE' or pass --image",
                                   code=Exit.IMAGE_FAILED)
                image = self.image = tags[0]
        elif image and archive_dir:
            archive = images.find_archive(archive_dir, image)
        if archive is None:
            return
        how = images.ensure_node_image(self.provider, image, archive)
        self.info["node_image"] = {"image": image, "archive": str(archive), "action": how}
        log.info("node image %s: %s", image, "already in the runtime" if how == "present"
                 else f"loaded from {archive}")

    # ------------------------------------------------------------------ after create
    def after_create(self, cluster: str) -> None:
        from ksi import images

        archives = _split(self.plan.settings.preload)
        if archives:
            self.info["preloaded"] = images.preload(self.kind, cluster, archives)
        self.record_placement(cluster)

    def preload_liqo(self, cluster: str, version: str = "",
                     components: Sequence[str] = ()) -> list[str]:
        """Multi-node: call right before `liqoctl install`; loads the images of the Liqo
        components that will run, from the archive cache (image_archive_dir), into the
        cluster. Missing ones are pulled."""
        from ksi import images

        directory = self.plan.settings.image_archive_dir
        done = images.preload_liqo(self.kind, cluster, directory,
                                   version or images.DEFAULT_LIQO_VERSION,
                                   components or images.LIQO_COMPONENTS) if directory else []
        self.info["liqo_preloaded"] = done
        return done

    def record_placement(self, cluster: str) -> None:
        """Where the node containers' cgroups are (best effort: never fails the run)."""
        proc_root = str(Path(self.host_root) / "proc")
        job = cgroups.job_cgroup(proc_root)
        nodes: dict[str, Any] = {}
        try:
            names = self.provider.node_containers(cluster)
        except KsiError:
            names = []
        for name in names:
            pid = self.provider.container_pid(name)
            if pid is None:
                continue
            if self.job is not None and self.job.info.get("child_pid"):
                mapped = cgroups.host_pid(pid, int(self.job.info["child_pid"]), proc_root)
                pid = mapped or pid
            cg_root = str(Path(self.host_root) / cgroups.CGROUP_ROOT.lstrip("/"))
            nodes[name] = cgroups.describe(pid, job=job, proc_root=proc_root,
                                           cgroup_root=cg_root)
        self.info["node_cgroups"] = nodes
        outside = [n for n, d in nodes.items() if d["placement"] != cgroups.INSIDE_JOB]
        if self.mode == "job" and outside:
            self.warn(f"node containers outside the job's cgroup: {', '.join(outside)}")

    # ------------------------------------------------------------------ teardown
    def teardown(self) -> list[str]:
        if self.job is None:
            return []
        problems = self.job.stop()
        if not problems:
            for k in self.job.env():
                self.runner.extra_env.pop(k, None)
        return problems

    # ------------------------------------------------------------------ report
    def warn(self, text: str) -> None:
        self.warnings.append(text)
        log.warning("warning: %s", text)

    def report(self) -> dict[str, Any]:
        """The run report's "runtime" field."""
        return {**self.info, "warnings": list(self.warnings)}
