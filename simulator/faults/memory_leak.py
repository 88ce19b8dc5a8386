"""A memory leak in the application: pods climb to their limit and are OOMKilled."""

from dataclasses import replace

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, Knob, pod_alert, register


@register
class MemoryLeak(Fault):
    name = "memory_leak"
    family = "crashloop"
    effects = {A.RAISE_MEMORY_LIMIT: Effect.FIXES, A.RESTART_ROLLOUT: Effect.PARTLY,
               A.ROLLBACK_ROLLOUT: Effect.NOTHING, A.SCALE_OUT: Effect.PARTLY,
               A.DELETE_POD: Effect.PARTLY, A.RESTART_DEPENDENCY: Effect.NOTHING}
    best = (A.RAISE_MEMORY_LIMIT,)
    lead_s = (540.0, 720.0)
    knobs = {"plateau": Knob((1.1, 1.35), doc="where the working set settles, as a multiple of the memory limit"),
             "tau_s": Knob((90.0, 200.0), positive=True, doc="time constant of the climb, seconds")}

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        # The working set settles 10-35% above the limit: a 1.5x limit holds it.
        plateau = w.current.mem_limit * self.draw("plateau")
        tau = self.draw("tau_s")
        w.revisions = [replace(r, leak_plateau=plateau * r.mem_limit / w.current.mem_limit, leak_tau_s=tau)
                       for r in w.revisions]

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return pod_alert(cluster, "KubePodCrashLooping")
