"""Someone scaled the workload to zero: every request through the ingress gets a 503."""

from dataclasses import replace

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, register, service_alert
from simulator.topology import ServiceSpec


@register
class ScaledToZero(Fault):
    name = "scaled_to_zero"
    family = "capacity"
    slo_only = True
    effects = {A.RESTORE_REPLICAS: Effect.FIXES, A.SCALE_OUT: Effect.NOTHING,
               A.RESTART_ROLLOUT: Effect.NOTHING, A.ROLLBACK_ROLLOUT: Effect.NOTHING}
    best = (A.RESTORE_REPLICAS,)

    def suits(self, spec: ServiceSpec) -> bool:
        return spec.hpa_max == 0  # scaling to zero disables an HPA; keep it simple

    def adapt(self, spec: ServiceSpec) -> ServiceSpec:
        return replace(spec, hpa_max=0)

    def inject(self, cluster: Cluster) -> None:
        cluster.focus.desired = 0

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return service_alert(cluster, "ServiceErrorBudgetBurn")
