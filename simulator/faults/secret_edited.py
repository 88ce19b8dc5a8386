"""A Secret the workload mounts was edited in place: a wrong TLS key, a mistyped password.

Like `config_edited`, nothing was rolled out: the pod template is unchanged, so a rollback or a
restart brings the same broken Secret back. Unlike a ConfigMap, the agent cannot put it back:
it never keeps a Secret's values (remediator/versions.py), and by default it does not even read
Secrets (its RBAC grants none), so live it sees errors (or a crash loop) with no rollout and no
config change. An observer that digests Secrets (the suites' `dialect.secret_digests`; live, the
opt-in `secrets.revert`) sees *that* the Secret changed, and when. Without a sealed copy of the good
values the remedy is a human's: escalate, with the evidence, and the human restores the values from
wherever they keep them (`by_hand`); the kubelet's sync brings them into the pods. `revert_config`
on the Secret is then refused by the guards and counted unsafe by the referee. With a sealed copy
(`dialect.secret_revert`; live, `secrets.revert` with a sealing key) `revert_config` puts the
values back and restarts the pods, as for a ConfigMap.
"""

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, Knob, pod_alert, register, service_alert


class _SecretFault(Fault):
    best = (A.ESCALATE,)
    sealed = False  # the agent kept the good values sealed: it can put them back itself

    def edit(self, cluster: Cluster, **effect: float) -> None:
        cluster.edit_secret(cluster.focus, **effect)
        self.sealed = cluster.secret_revert

    def remedy(self) -> tuple[A, ...]:
        return (A.REVERT_CONFIG,) if self.sealed else self.best

    def effect(self, kind: A) -> Effect:
        return Effect.FIXES if self.sealed and kind is A.REVERT_CONFIG else super().effect(kind)

    def by_hand(self, cluster: Cluster) -> bool:
        return cluster.restore_secret(cluster.focus)


@register
class SecretEdited(_SecretFault):
    """Requests fail: the service presents a bad certificate, or its backend refuses the credentials."""

    name = "secret_edited"
    family = "errors"
    slo_only = True
    effects = {A.ROLLBACK_ROLLOUT: Effect.NOTHING, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.RESTART_DEPENDENCY: Effect.NOTHING, A.SCALE_OUT: Effect.NOTHING, A.DELETE_POD: Effect.NOTHING}
    lead_s = (240.0, 420.0)
    knobs = {"error_ratio": Knob((0.1, 0.6), ceiling=1.0, doc="share of requests the edited Secret fails")}

    def inject(self, cluster: Cluster) -> None:
        self.edit(cluster, error_ratio=self.draw("error_ratio"))

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return service_alert(cluster, "ServiceErrorBudgetBurn")


@register
class SecretEditedCrash(_SecretFault):
    """The process exits on the bad value (a TLS key it cannot parse) and crash-loops."""

    name = "secret_edited_crash"
    family = "crashloop"
    # A restart (or new limits) only resets the crash back-off: fresh pods serve a little
    # before they read the bad key and exit again.
    effects = {A.ROLLBACK_ROLLOUT: Effect.NOTHING, A.RESTART_DEPENDENCY: Effect.NOTHING,
               A.RESTART_ROLLOUT: Effect.PARTLY, A.RAISE_MEMORY_LIMIT: Effect.PARTLY}
    lead_s = (420.0, 600.0)
    knobs = {"crash_after_s": Knob((15.0, 45.0), positive=True, doc="seconds after start it exits on the edit")}

    def inject(self, cluster: Cluster) -> None:
        self.edit(cluster, crash_after_s=self.draw("crash_after_s"))

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return pod_alert(cluster, "KubePodCrashLooping")
