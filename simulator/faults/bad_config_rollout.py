"""A rollout with a bad configuration: pods run and stay ready, a share of requests fail."""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, Knob, register, service_alert


@register
class BadConfigRollout(Fault):
    name = "bad_config_rollout"
    family = "errors"
    slo_only = True
    effects = {A.ROLLBACK_ROLLOUT: Effect.FIXES, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.SCALE_OUT: Effect.NOTHING, A.RAISE_MEMORY_LIMIT: Effect.NOTHING,
               A.DELETE_POD: Effect.NOTHING, A.RESTART_DEPENDENCY: Effect.NOTHING}
    best = (A.ROLLBACK_ROLLOUT,)
    lead_s = (240.0, 420.0)
    knobs = {"error_ratio": Knob((0.08, 0.5), ceiling=1.0, doc="share of requests the new revision fails")}

    def inject(self, cluster: Cluster) -> None:
        cluster.add_revision(cluster.focus, error_ratio=self.draw("error_ratio"))

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return service_alert(cluster, "ServiceErrorBudgetBurn")
