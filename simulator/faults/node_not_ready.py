"""A node stops reporting: its pods turn NotReady and are evicted only after five minutes."""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, register


@register
class NodeNotReady(Fault):
    name = "node_not_ready"
    family = "capacity"
    effects = {A.CORDON_DRAIN_NODE: Effect.FIXES, A.RESTART_ROLLOUT: Effect.FIXES,
               A.DELETE_POD: Effect.PARTLY, A.SCALE_OUT: Effect.PARTLY,
               A.ROLLBACK_ROLLOUT: Effect.NOTHING, A.RAISE_MEMORY_LIMIT: Effect.FIXES}
    best = (A.CORDON_DRAIN_NODE,)
    fallback = (A.RESTART_ROLLOUT,)
    lead_s = (75.0, 120.0)

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        counts: dict[str, int] = {}
        for pod in w.pods:
            counts[pod.node] = counts.get(pod.node, 0) + 1
        name = max(sorted(counts), key=lambda n: counts[n])
        cluster.nodes[name].ready = False
        self.node = name

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return "KubeNodeNotReady", {"node": self.node}
