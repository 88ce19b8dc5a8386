"""A traffic spike beyond what the autoscaler may add: CPU saturates at the HPA's maximum."""

from dataclasses import replace

from simulator.cluster import Cluster
from simulator.dialect import NO_SLI
from simulator.faults.base import A, Effect, Fault, Knob, register, service_alert
from simulator.topology import ServiceSpec


@register
class TrafficSpike(Fault):
    name = "traffic_spike"
    family = "latency"
    effects = {A.RAISE_HPA_MAX: Effect.FIXES, A.SCALE_OUT: Effect.PARTLY,
               A.RESTART_ROLLOUT: Effect.WORSE, A.ROLLBACK_ROLLOUT: Effect.NOTHING,
               A.RESTART_DEPENDENCY: Effect.NOTHING, A.DELETE_POD: Effect.NOTHING}
    best = (A.RAISE_HPA_MAX,)
    fallback = (A.RAISE_CPU_LIMIT,)
    knobs = {"load_at_max": Knob((1.15, 1.45), positive=True, doc="a pod's CPU use at the HPA's maximum / its limit")}

    def suits(self, spec: ServiceSpec) -> bool:
        return spec.hpa_max > 0

    def adapt(self, spec: ServiceSpec) -> ServiceSpec:
        return replace(spec, hpa_max=spec.replicas * 2)

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        base_u = w.spec.cpu_per_request * w.spec.base_rps / w.spec.replicas / w.current.cpu_limit
        # Even at the HPA's maximum each pod runs 115-145% of its CPU limit.
        u_at_max = self.draw("load_at_max")
        w.traffic_factor = u_at_max * w.hpa_max / (w.spec.replicas * base_u)

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        # The kube-prometheus alert, else the SLO one; without request metrics no SLO rule can fire,
        # so the kube-prometheus rule's alert is what fires (the coin is still drawn: later draws stay).
        if self.coin("kube_alert", 0.5) or cluster.sli == NO_SLI:
            return "KubeHpaMaxedOut", {"namespace": cluster.focus.namespace,
                                       "horizontalpodautoscaler": cluster.focus.name}
        return service_alert(cluster, "ServiceLatencyHigh")
