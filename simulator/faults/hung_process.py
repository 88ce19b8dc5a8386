"""Processes that hang: they pass a shallow readiness probe and never answer (no liveness probe)."""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, register, service_alert


@register
class HungProcess(Fault):
    name = "hung_process"
    family = "latency"
    slo_only = True
    effects = {A.RESTART_ROLLOUT: Effect.FIXES, A.DELETE_POD: Effect.PARTLY,
               A.SCALE_OUT: Effect.PARTLY, A.RAISE_CPU_LIMIT: Effect.FIXES,
               A.ROLLBACK_ROLLOUT: Effect.NOTHING, A.RESTART_DEPENDENCY: Effect.NOTHING,
               A.RAISE_HPA_MAX: Effect.NOTHING}
    best = (A.RESTART_ROLLOUT,)

    def inject(self, cluster: Cluster) -> None:
        pods = cluster.focus.pods
        for pod in self.rng.sample(pods, k=min(len(pods), max(2, len(pods) // 2))):
            pod.hung = True

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return service_alert(cluster, "ServiceLatencyHigh")
