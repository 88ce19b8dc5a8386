"""A ConfigMap the workload mounts was edited in place: its pods pick the edit up and fail.

No rollout happened: the pod template is what it was, so a rollback or a restart brings the
same broken configuration back. Putting the ConfigMap's last-known-good data back (and
restarting the pods that read it) fixes it. The crashing variant exits on the bad value and
crash-loops, like a bad rollout or a dead dependency would.
"""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, Knob, pod_alert, register, service_alert


@register
class ConfigEdited(Fault):
    name = "config_edited"
    family = "errors"
    slo_only = True
    effects = {A.REVERT_CONFIG: Effect.FIXES, A.ROLLBACK_ROLLOUT: Effect.NOTHING, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.RESTART_DEPENDENCY: Effect.NOTHING, A.SCALE_OUT: Effect.NOTHING, A.DELETE_POD: Effect.NOTHING}
    best = (A.REVERT_CONFIG,)
    lead_s = (240.0, 420.0)
    knobs = {"error_ratio": Knob((0.08, 0.5), ceiling=1.0, doc="share of requests the edited config fails")}

    def inject(self, cluster: Cluster) -> None:
        cluster.edit_config(cluster.focus, error_ratio=self.draw("error_ratio"))

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return service_alert(cluster, "ServiceErrorBudgetBurn")


@register
class ConfigEditedCrash(Fault):
    name = "config_edited_crash"
    family = "crashloop"
    effects = {A.REVERT_CONFIG: Effect.FIXES, A.ROLLBACK_ROLLOUT: Effect.NOTHING,
               A.RESTART_DEPENDENCY: Effect.NOTHING, A.RAISE_MEMORY_LIMIT: Effect.PARTLY}
    best = (A.REVERT_CONFIG,)
    lead_s = (420.0, 600.0)
    knobs = {"crash_after_s": Knob((15.0, 45.0), positive=True, doc="seconds after start it exits on the edit")}

    def inject(self, cluster: Cluster) -> None:
        cluster.edit_config(cluster.focus, crash_after_s=self.draw("crash_after_s"))

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return pod_alert(cluster, "KubePodCrashLooping")
