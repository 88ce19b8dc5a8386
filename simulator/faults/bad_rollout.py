"""A rollout whose new image exits with an error shortly after it starts."""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, pod_alert, register


@register
class BadRollout(Fault):
    name = "bad_rollout"
    family = "crashloop"
    effects = {A.ROLLBACK_ROLLOUT: Effect.FIXES, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.RAISE_MEMORY_LIMIT: Effect.NOTHING, A.SCALE_OUT: Effect.NOTHING,
               A.DELETE_POD: Effect.NOTHING, A.RESTART_DEPENDENCY: Effect.NOTHING}
    best = (A.ROLLBACK_ROLLOUT,)
    lead_s = (420.0, 600.0)

    def inject(self, cluster: Cluster) -> None:
        cluster.add_revision(cluster.focus, crash_after_s=self.rng.uniform(15.0, 45.0))

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return pod_alert(cluster, "KubePodCrashLooping")
