"""One pod never becomes ready (a stuck init, a bad mount): capacity short by one."""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, register


@register
class PodStuckNotReady(Fault):
    name = "pod_stuck_not_ready"
    family = "capacity"
    effects = {A.DELETE_POD: Effect.FIXES, A.RESTART_ROLLOUT: Effect.FIXES,
               A.SCALE_OUT: Effect.PARTLY, A.RAISE_MEMORY_LIMIT: Effect.FIXES,
               A.RESTART_DEPENDENCY: Effect.NOTHING}
    best = (A.DELETE_POD,)
    fallback = (A.RESTART_ROLLOUT,)

    def inject(self, cluster: Cluster) -> None:
        pod = self.rng.choice(cluster.focus.pods)
        pod.stuck = True
        self.pod = pod.name

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return "KubePodNotReady", {"namespace": cluster.focus.namespace, "pod": self.pod}
