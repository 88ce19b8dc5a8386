"""A volume filling up: full within the hour at the current rate, then writes fail."""

from dataclasses import replace

from simulator.cluster import Cluster
from simulator.faults.base import A, Effect, Fault, Knob, register
from simulator.topology import GIB, ServiceSpec


@register
class VolumeFilling(Fault):
    name = "volume_filling"
    family = "storage"
    effects = {A.EXPAND_VOLUME: Effect.FIXES, A.RESTART_ROLLOUT: Effect.NOTHING,
               A.SCALE_OUT: Effect.NOTHING, A.ROLLBACK_ROLLOUT: Effect.NOTHING,
               A.DELETE_POD: Effect.NOTHING}
    best = (A.EXPAND_VOLUME,)
    knobs = {"used_at_onset": Knob((0.7, 0.8), ceiling=1.0, doc="share of the volume used at the onset"),
             "minutes_to_full": Knob((25.0, 50.0), positive=True, doc="minutes until it is full at the fill rate")}

    def suits(self, spec: ServiceSpec) -> bool:
        return spec.pvc_bytes > 0

    def adapt(self, spec: ServiceSpec) -> ServiceSpec:
        return replace(spec, pvc_bytes=20 * GIB)

    def inject(self, cluster: Cluster) -> None:
        w = cluster.focus
        w.pvc_used = w.pvc_cap * self.draw("used_at_onset")
        minutes = self.draw("minutes_to_full")
        w.pvc_fill_per_s = (w.pvc_cap - w.pvc_used) / (minutes * 60.0)

    def alert(self, cluster: Cluster) -> tuple[str, dict[str, str]]:
        w = cluster.focus
        return "KubePersistentVolumeFillingUp", {"namespace": w.namespace,
                                                 "persistentvolumeclaim": f"{w.name}-data"}
