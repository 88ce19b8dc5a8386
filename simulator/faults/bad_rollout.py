"""A rollout whose new image exits with an error shortly after it starts.

A share of them are latent: the revision went out hours ago and the code path it broke is
reached only now (a cron job, a feature flag, a cache expiry). The crash is still the
rollout's and a rollback still fixes it, but "was there a rollout in the last hour?" says no.
"""

from dataclasses import replace

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, Knob, pod_alert, register


@register
class BadRollout(Fault):
    name = "bad_rollout"
    family = "crashloop"
    effects = {A.ROLLBACK_ROLLOUT: Effect.FIXES, A.RESTART_ROLLOUT: Effect.PARTLY,
               A.RAISE_MEMORY_LIMIT: Effect.PARTLY, A.SCALE_OUT: Effect.PARTLY,
               A.DELETE_POD: Effect.PARTLY, A.RESTART_DEPENDENCY: Effect.NOTHING}
    best = (A.ROLLBACK_ROLLOUT,)
    lead_s = (420.0, 600.0)
    latent_share = 0.3
    knobs = {"crash_after_s": Knob((15.0, 45.0), positive=True, doc="seconds after start the new image exits"),
             "latent_age_s": Knob((5400.0, 28800.0), doc="age of a latent bad rollout (1.5 to 8 hours)")}

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        crash = self.draw("crash_after_s")
        if self.rng.random() >= self.latent_share:
            cluster.add_revision(w, crash_after_s=crash)
        elif len(w.revisions) > 1:
            w.revisions[-1] = replace(w.current, crash_after_s=crash)  # the last rollout carried it
        else:
            cluster.backdate_rollout(w, self.draw("latent_age_s"), crash_after_s=crash)

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        return pod_alert(cluster, "KubePodCrashLooping")
