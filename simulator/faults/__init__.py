"""The fault library: one module per fault, each registered by name in `FAULTS`."""

from simulator.faults import (  # noqa: F401  (importing registers)
    bad_config_rollout,
    bad_rollout,
    config_edited,
    cpu_limit_low,
    dependency_outage,
    hung_process,
    memory_leak,
    no_fault,
    node_left_cordoned,
    node_not_ready,
    pod_stuck_not_ready,
    scaled_to_zero,
    secret_edited,
    service_changed,
    traffic_spike,
    volume_filling,
)
from simulator.faults.base import FAULTS, Effect, Fault

__all__ = ["FAULTS", "Effect", "Fault"]
