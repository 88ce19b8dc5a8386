"""A CPU limit set too low for normal traffic: the container is throttled and slow."""

from dataclasses import replace

from simulator.cluster import Cluster
from simulator.dialect import NO_SLI
from simulator.faults.base import A, Effect, Fault, Knob, pod_alert, register, service_alert
from simulator.topology import ServiceSpec


@register
class CpuLimitLow(Fault):
    name = "cpu_limit_low"
    family = "latency"
    effects = {A.RAISE_CPU_LIMIT: Effect.FIXES, A.SCALE_OUT: Effect.FIXES,
               A.RESTART_ROLLOUT: Effect.WORSE, A.ROLLBACK_ROLLOUT: Effect.NOTHING,
               A.RESTART_DEPENDENCY: Effect.NOTHING, A.RAISE_MEMORY_LIMIT: Effect.WORSE}
    best = (A.RAISE_CPU_LIMIT,)
    fallback = (A.SCALE_OUT,)
    knobs = {"demand_over_limit": Knob((1.1, 1.25), positive=True, doc="normal CPU demand / the new limit")}

    def suits(self, spec: ServiceSpec) -> bool:
        return spec.hpa_max == 0  # an HPA on CPU would scale this away by itself

    def adapt(self, spec: ServiceSpec) -> ServiceSpec:
        return replace(spec, hpa_max=0)

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        demand = w.spec.cpu_per_request * w.spec.base_rps / w.spec.replicas
        limit = demand / self.draw("demand_over_limit")
        w.revisions = [replace(r, cpu_limit=limit) for r in w.revisions]

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        # The kube-prometheus alert, else the SLO one; without request metrics no SLO rule can fire,
        # so the kube-prometheus rule's alert is what fires (the coin is still drawn: later draws stay).
        if self.coin("kube_alert", 0.5) or cluster.sli == NO_SLI:
            return pod_alert(cluster, "CPUThrottlingHigh")
        return service_alert(cluster, "ServiceLatencyHigh")
