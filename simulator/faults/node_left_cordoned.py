"""A node came back from maintenance Ready but still cordoned, and the others are full.

The pods drained off it for the maintenance wait Pending: no schedulable node has room. The
node itself is healthy. Uncordoning it lets them schedule; restarting or draining only makes
more pods wait, and scaling out adds Pending pods.
"""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, pod_alert, register


@register
class NodeLeftCordoned(Fault):
    name = "node_left_cordoned"
    family = "capacity"
    effects = {A.UNCORDON_NODE: Effect.FIXES, A.DELETE_POD: Effect.NOTHING, A.SCALE_OUT: Effect.NOTHING,
               A.RESTART_ROLLOUT: Effect.WORSE, A.ROLLBACK_ROLLOUT: Effect.NOTHING}
    best = (A.UNCORDON_NODE,)
    lead_s = (180.0, 300.0)

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        counts: dict[str, int] = {}
        for pod in w.pods:
            counts[pod.node] = counts.get(pod.node, 0) + 1
        self.node = max(sorted(counts), key=lambda n: counts[n])
        cluster.leave_cordoned(self.node)

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return pod_alert(cluster, "KubePodNotReady")
