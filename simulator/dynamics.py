"""How the world behaves, where a suite says it differs from the default: how it answers actions
(issue 13's shifted world), how long pods take to start, and the ranges each fault draws from.

    dynamics:
      restart_fixes_crashloop: 0.8   # a restart of a crash-looping workload clears the cause 80% of the time
      rollback_time_factor: 3        # a rollback's rollout takes three times as long
      pod_startup_s: [5, 20]         # a new pod is Ready this long after it is created (drawn per pod)
      container_restart_s: [3, 8]    # a crashed container runs again this long after its back-off
      rollout_step_s: [10, 25]       # a rolling update replaces one pod per this many seconds
      volume_resize_s: [30, 90]      # a volume expansion lands this long after it is asked
      fault_params:                  # fault: {knob: [low, high]}; the knobs are each fault's `knobs`
        memory_leak: {plateau: [1.1, 1.35], tau_s: [90, 200]}
        traffic_spike: {load_at_max: [1.15, 1.45]}

Every range above is drawn uniformly, one value each time, with the default shown; the knobs a
fault has, their defaults and bounds are in `simulator/faults/` (`Fault.knobs`, plus `lead_s`, the
onset before the alert, for every fault). The default (`Dynamics()`) changes nothing: the fault
modules' own effects hold, and every draw is the one the simulator always made, so default
incidents replay exactly as before (tests/simulator/test_suite_replay.py).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

__all__ = ["Dynamics", "Located", "Range"]


class Located(ValueError):
    """A problem at a key below the field being validated: `loc` is its path from there, so the
    suite's error names the very key (and its line)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _ordered(r: tuple[float, float]) -> tuple[float, float]:
    if r[0] > r[1]:
        raise ValueError(f"range [{r[0]:g}, {r[1]:g}] has low > high")
    return r


# A range [low, high] of non-negative numbers, low <= high.
Range = Annotated[tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]], AfterValidator(_ordered)]


class Dynamics(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # With this probability a restart_rollout of a workload whose pods crash (an error exit, an OOM
    # kill, a crash-loop back-off) rolls out processes that no longer crash: the bad code path, the
    # leak, the start-up check of a dependency are gone. None: the faults' own effects.
    restart_fixes_crashloop: float | None = Field(None, ge=0, le=1)
    # A rollback's rolling update (and its new pods' start-up) takes this many times as long.
    rollback_time_factor: float = Field(1.0, ge=1, le=20)
    pod_startup_s: Range = (5.0, 20.0)  # a new (or rescheduled) pod's start-up until Ready
    container_restart_s: Range = (3.0, 8.0)  # a crashed container's start-up after its back-off
    rollout_step_s: Range = (10.0, 25.0)  # a rolling update's pace: one pod per step
    volume_resize_s: Range = (30.0, 90.0)  # a CSI expansion's delay
    # fault -> knob -> range, replacing that fault's default range (simulator/faults/, `knobs`).
    fault_params: dict[str, dict[str, Range]] = Field(default_factory=dict)

    @field_validator("fault_params")
    @classmethod
    def _known_knobs(cls, v: dict[str, dict[str, tuple[float, float]]]) -> Any:
        from simulator.faults import FAULTS  # the fault modules import the cluster, which imports this

        for fault, knobs in v.items():
            if fault not in FAULTS:
                raise Located((fault,), f"unknown fault {fault!r}; known: {', '.join(sorted(FAULTS))}")
            known = FAULTS[fault].all_knobs()
            for name, r in knobs.items():
                if name not in known:
                    raise Located((fault, name), f"{fault} has no knob {name!r}; its knobs: {', '.join(known)}")
                why = known[name].check(r)
                if why:
                    raise Located((fault, name), why)
        return v
