"""How the world answers actions, where a suite says it differs from the default (issue 13's shifted world).

    dynamics:
      restart_fixes_crashloop: 0.8   # a restart of a crash-looping workload clears the cause 80% of the time
      rollback_time_factor: 3        # a rollback's rollout takes three times as long

The default (`Dynamics()`) changes nothing: the fault modules' own effects hold, and no random
number is drawn, so default incidents replay exactly as before.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Dynamics"]


class Dynamics(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # With this probability a restart_rollout of a workload whose pods crash (an error exit, an OOM
    # kill, a crash-loop back-off) rolls out processes that no longer crash: the bad code path, the
    # leak, the start-up check of a dependency are gone. None: the faults' own effects.
    restart_fixes_crashloop: float | None = Field(None, ge=0, le=1)
    # A rollback's rolling update (and its new pods' start-up) takes this many times as long.
    rollback_time_factor: float = Field(1.0, ge=1, le=20)
