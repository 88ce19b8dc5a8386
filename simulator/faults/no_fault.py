"""No fault: a short blip trips a noisy alert and passes on its own; the right move is noop.

The blips live outside the pods (a network hiccup, a slow shared backend), so replacing
pods does not end them sooner: acting only adds risk.
"""

from functools import partial

from simulator.cluster import Cluster, Workload
from simulator.faults.base import A, Effect, Fault, Knob, register, service_alert


@register
class NoFault(Fault):
    name = "no_fault"
    family = "no_fault"
    slo_only = True
    effects = {A.NOOP: Effect.FIXES, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.SCALE_OUT: Effect.NOTHING, A.ROLLBACK_ROLLOUT: Effect.NOTHING}
    best = (A.NOOP,)
    lead_s = (30.0, 60.0)
    knobs = {"duration_s": Knob((90.0, 180.0), doc="how long the blip lasts"),
             "extra_latency_s": Knob((0.5, 1.5), doc="latency a latency blip adds"),
             "error_ratio": Knob((0.05, 0.3), ceiling=1.0, doc="share of requests an error blip fails")}

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        self.kind = kind = self.rng.choice(("latency", "errors"))
        end = cluster.now + self.draw("duration_s")
        if kind == "latency":
            extra = self.draw("extra_latency_s")
            w.extra_latency_s += extra
            cluster.at(end, partial(_add, w, -extra))
        else:
            err = self.draw("error_ratio")
            w.extra_error = err
            cluster.at(end, partial(setattr, w, "extra_error", 0.0))

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        if self.kind == "errors":
            return service_alert(cluster, "ServiceErrorBudgetBurn")
        return service_alert(cluster, "ServiceLatencyHigh")


def _add(w: Workload, extra_s: float) -> None:
    """The blip's latency ends (a partial, not a closure, so a forked incident ends its own)."""
    w.extra_latency_s += extra_s
