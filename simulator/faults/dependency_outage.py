"""A direct dependency hangs: the caller sees errors and, if it checks its dependencies
on start, crash-loops. Restarting the dependency fixes it; restarting the caller does not."""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, Knob, pod_alert, register, service_alert
from simulator.topology import ServiceSpec


class _DependencyFault(Fault):
    def suits(self, spec: ServiceSpec) -> bool:
        return bool(spec.deps)

    def broken(self, cluster: Cluster) -> str:
        return self.rng.choice(cluster.focus.spec.deps)


@register
class DependencyOutage(_DependencyFault):
    name = "dependency_outage"
    family = "crashloop"
    effects = {A.RESTART_DEPENDENCY: Effect.FIXES, A.RESTART_ROLLOUT: Effect.PARTLY,
               A.ROLLBACK_ROLLOUT: Effect.NOTHING, A.RAISE_MEMORY_LIMIT: Effect.PARTLY,
               A.SCALE_OUT: Effect.PARTLY, A.DELETE_POD: Effect.NOTHING}
    # Then restart the caller, whose pods would otherwise sit out their crash-loop back-off.
    best = (A.RESTART_DEPENDENCY, A.RESTART_ROLLOUT)
    lead_s = (420.0, 600.0)

    def inject(self, cluster: Cluster) -> None:
        dep = cluster.workloads[self.broken(cluster)]
        for pod in dep.pods:
            pod.hung = True
        cluster.focus.crash_when_deps_down = True

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return pod_alert(cluster, "KubePodCrashLooping")


@register
class DependencyErrors(_DependencyFault):
    name = "dependency_errors"
    family = "errors"
    slo_only = True
    effects = {A.RESTART_DEPENDENCY: Effect.FIXES, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.ROLLBACK_ROLLOUT: Effect.NOTHING, A.SCALE_OUT: Effect.NOTHING,
               A.DELETE_POD: Effect.NOTHING}
    best = (A.RESTART_DEPENDENCY,)

    def inject(self, cluster: Cluster) -> None:
        dep = cluster.workloads[self.broken(cluster)]
        for pod in dep.pods:
            pod.hung = True

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return service_alert(cluster, "ServiceErrorBudgetBurn")


@register
class DependencySlow(_DependencyFault):
    name = "dependency_slow"
    family = "latency"
    slo_only = True
    effects = {A.RESTART_DEPENDENCY: Effect.FIXES, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.SCALE_OUT: Effect.NOTHING, A.RAISE_CPU_LIMIT: Effect.NOTHING,
               A.RAISE_HPA_MAX: Effect.NOTHING, A.ROLLBACK_ROLLOUT: Effect.NOTHING}
    best = (A.RESTART_DEPENDENCY,)
    knobs = {"slow_s": Knob((0.8, 2.5), doc="seconds of latency the dependency adds")}

    def inject(self, cluster: Cluster) -> None:
        dep = cluster.workloads[self.broken(cluster)]
        slow = self.draw("slow_s")
        for pod in dep.pods:
            pod.slow_s = slow

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return service_alert(cluster, "ServiceLatencyHigh")

