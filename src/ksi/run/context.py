"""What every step of a run sees (kind's ActionContext): the options, the console, the runner,
the plan once made, the run state, the signal guard and this node's cluster tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ksi.run.state import RunState

if TYPE_CHECKING:
    from ksi.access.kubectl import Kubectl
    from ksi.jobenv import JobEnvironment
    from ksi.output import Console
    from ksi.plan.plan import Plan
    from ksi.provision.kind import Kind
    from ksi.provision.providers import Provider
    from ksi.run.options import RunOptions
    from ksi.run.outcome import Outcome
    from ksi.runner import Runner
    from ksi.runtime.setup import RuntimeSetup
    from ksi.settings import Settings
    from ksi.signals import Guard


@dataclass
class RunContext:
    opts: RunOptions
    console: Console
    runner: Runner
    state: RunState = field(default_factory=RunState)
    settings: Optional[Settings] = None       # the job step loads them
    env: Optional[JobEnvironment] = None      # the job step detects it
    plan: Optional[Plan] = None               # the plan step makes it (federation: placed)
    guard: Optional[Guard] = None             # installed before the first guarded step
    shell: str = ""                           # `ksi shell`: the shell instead of a workload
    outcome: Optional[Outcome] = None         # the executor's, once it runs
    _tools: Optional[tuple[Provider, Kind, Kubectl, RuntimeSetup]] = None

    @property
    def the_plan(self) -> Plan:
        assert self.plan is not None, "the plan step has not run"
        return self.plan

    def tools(self, runner: Optional[Runner] = None
              ) -> tuple[Provider, Kind, Kubectl, RuntimeSetup]:
        """This node's provider, kind, kubectl and runtime setup for the plan (made once;
        with another runner, e.g. the dry run's recorder: a fresh set)."""
        if self._tools is not None and runner is None and self._tools[3].plan is self.plan:
            return self._tools
        from ksi.access.kubectl import Kubectl
        from ksi.provision import providers
        from ksi.provision.kind import Kind
        from ksi.runtime.setup import RuntimeSetup

        p, r = self.the_plan, runner or self.runner
        provider = providers.get(p.provider, r)
        kind = Kind(r, provider, systemd_scope=p.settings.systemd_scope)
        made = (provider, kind, Kubectl(r, p.kubeconfig, p.context),
                RuntimeSetup(p, r, provider, kind))
        if runner is None:
            self._tools = made
        return made

    @property
    def provider(self) -> Provider:
        return self.tools()[0]

    @property
    def kind(self) -> Kind:
        return self.tools()[1]

    @property
    def kubectl(self) -> Kubectl:
        return self.tools()[2]

    @property
    def rt(self) -> RuntimeSetup:
        return self.tools()[3]

    @property
    def failed(self) -> bool:
        """The run failed with an error (not a signal): teardown exports the cluster logs."""
        o = self.outcome
        return o is not None and o.error is not None and o.signal is None

    @property
    def has_tools(self) -> bool:
        return self._tools is not None

    def variables(self) -> dict[str, str]:
        """What the workload sees (the original's contract plus KUBECONFIG)."""
        p, s = self.the_plan, self.state
        return {
            "K8S_CLUSTER_NAME": p.context,
            "K8S_CLUSTER_API": s.api_url,
            "K8S_CLUSTER_API_TOKEN": s.token,
            "K8S_PORT": str(s.k8s_port),
            "KUBECONFIG": str(p.kubeconfig),
            "KSI_CLUSTER": p.cluster,
            "KSI_NODE_COUNT": "1",
            **s.variables,
        }
