"""No fault: a short blip trips a noisy alert and passes on its own; the right move is noop."""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, pod_alert, register, service_alert


@register
class NoFault(Fault):
    name = "no_fault"
    family = "no_fault"
    effects = {A.NOOP: Effect.FIXES, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.DELETE_POD: Effect.NOTHING}
    best = (A.NOOP,)
    lead_s = (30.0, 60.0)

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        kind = self.rng.choice(("latency", "errors", "pod"))
        self.kind = kind
        end = cluster.now + self.rng.uniform(90.0, 180.0)
        if kind == "latency":
            extra = self.rng.uniform(0.5, 1.5)
            w.extra_latency_s += extra
            cluster.at(end, lambda: setattr(w, "extra_latency_s", w.extra_latency_s - extra))
        elif kind == "errors":
            pod = self.rng.choice(w.pods)
            pod.slow_s = 0.0
            pod.hung = True
            cluster.at(end, lambda: setattr(pod, "hung", False))
        else:
            pod = self.rng.choice(w.pods)
            pod.stuck = True
            cluster.at(end, lambda: setattr(pod, "stuck", False))
            self.pod = pod.name

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        if self.kind == "latency":
            return service_alert(cluster, "ServiceLatencyHigh")
        if self.kind == "errors":
            return service_alert(cluster, "ServiceErrorBudgetBurn")
        name, labels = pod_alert(cluster, "KubePodNotReady")
        labels["pod"] = self.pod
        return name, labels
