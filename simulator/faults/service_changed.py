"""Someone changed the Service in front of the workload: it routes to no ready pod.

The pods are fine (Running, Ready, no restarts); the Service's selector no longer matches their
labels, or its targetPort names a port no container has, so its endpoints are empty and every
request through it fails. Scaling, restarting or rolling back the pods changes nothing; putting
the Service's last-known-good selector and ports back does.
"""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, register, service_alert


class _ServiceFault(Fault):
    family = "routing"
    slo_only = True
    effects = {A.RESTORE_SERVICE: Effect.FIXES, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.ROLLBACK_ROLLOUT: Effect.NOTHING, A.SCALE_OUT: Effect.NOTHING, A.RESTART_DEPENDENCY: Effect.NOTHING}
    best = (A.RESTORE_SERVICE,)
    lead_s = (120.0, 300.0)

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return service_alert(cluster, "ServiceErrorBudgetBurn")


@register
class ServiceSelectorChanged(_ServiceFault):
    name = "service_selector_changed"

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        extra = self.rng.choice(({"version": "v2"}, {"app": f"{w.name}-v2"}, {"tier": "backend"}))
        cluster.edit_service(w, selector={"app": w.name, **extra})


@register
class ServiceTargetPortChanged(_ServiceFault):
    name = "service_target_port_changed"

    def inject(self, cluster: Cluster) -> None:
        cluster.edit_service(cluster.focus, target_port=self.rng.choice(("metrics", "grpc", 9090)))
