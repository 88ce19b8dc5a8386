"""The rule table's thresholds as data: `RuleThresholds`, read from YAML with file, line and key in every error.

The shipped values live in `remediator/data/rules.yaml`, chosen by the calibration of
`remediator.calibrate` on the training suite (the file says how to reproduce them). A user's own
file is given as the ranker `rules:FILE.yaml`; it must state every threshold, so that what a
table does never depends on a default hidden in code::

    rules.yaml:4: oom_ratio: must be a number in [0, 1], not 'high'
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from remediator import yamllines

__all__ = ["SHIPPED_THRESHOLDS", "RuleThresholds", "RuleThresholdsError", "as_yaml", "load_thresholds",
           "parse_thresholds", "shipped_thresholds"]

SHIPPED_THRESHOLDS = Path(__file__).resolve().parents[1] / "data" / "rules.yaml"


class RuleThresholdsError(ValueError):
    """A thresholds file that cannot be used; the message names the file, line and key."""


@dataclass(frozen=True)
class RuleThresholds:
    """What the rule table counts as evidence. Each field's metadata is its allowed range."""

    # A rollout younger than this is a suspect for crashes and errors (seconds).
    rollout_window_s: float
    # A config edited longer ago than this is not a suspect (seconds): a crash loop's alert waits
    # 15 minutes for its `for:`, so the window must outlast it.
    config_window_s: float
    # A config edit the SLO held with for this long (seconds) before errors began is a bystander.
    config_held_s: float
    # The share of pods whose last termination was OOMKilled that says "memory": one old kill
    # on one pod of several is a bystander.
    oom_ratio: float
    # The share of CFS periods throttled that says "CPU limit" for a slow service
    # (kube-prometheus' CPUThrottlingHigh fires at 0.25; healthy pods show 0.3-0.4 here).
    throttle_ratio: float
    # A page about the SLIs with no cause in sight is first watched this long (seconds): most clear on their own.
    transient_s: float
    # After acting, wait this long before judging the change (seconds).
    settle_s: float
    # Request rate over its pre-alert baseline that, with the autoscaler at its maximum, is a traffic spike.
    spike_ratio: float
    # A p99 latency this high (seconds) with every pod ready and the dependencies healthy means hung
    # processes that answer no request: the timeout, not slowness.
    hung_latency_s: float
    # A dependency's error ratio this many times the caller's SLO means the dependency is broken.
    dep_error_factor: float
    # A volume this full, or full within this many minutes, is the cause.
    pvc_used_ratio: float
    pvc_minutes_to_full: float

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


# The allowed range of each threshold: a value outside it is a typo, not a choice.
_RANGES: dict[str, tuple[float, float]] = {
    "rollout_window_s": (0.0, 7 * 86400.0), "config_window_s": (0.0, 7 * 86400.0),
    "config_held_s": (0.0, 86400.0), "oom_ratio": (0.0, 1.0), "throttle_ratio": (0.0, 1.0),
    "transient_s": (0.0, 3600.0), "settle_s": (0.0, 3600.0), "spike_ratio": (1.0, 100.0),
    "hung_latency_s": (0.0, 600.0), "dep_error_factor": (1.0, 1000.0), "pvc_used_ratio": (0.0, 1.0),
    "pvc_minutes_to_full": (0.0, 100_000.0),
}
assert set(_RANGES) == {f.name for f in fields(RuleThresholds)}


def load_thresholds(path: Path | str) -> RuleThresholds:
    """Read and check a thresholds file; every problem in it is reported at once."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise RuleThresholdsError(f"{path}: cannot read the rule thresholds: {e.strerror or e}") from e
    return parse_thresholds(text, str(path))


def parse_thresholds(text: str, where: str) -> RuleThresholds:
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark is not None else where
        raise RuleThresholdsError(f"{at}: not valid YAML: {getattr(e, 'problem', None) or e}") from e
    if not isinstance(data, dict) or node is None:
        raise RuleThresholdsError(f"{where}: the rule thresholds are a mapping of name: number "
                                  f"({', '.join(_RANGES)})")
    lines, duplicates = yamllines.key_lines(node)
    issues = [yamllines.Issue(where, d.line, yamllines.dotted(d.loc), f"given twice (first on line {d.first})")
              for d in duplicates]
    values: dict[str, float] = {}
    for key, value in data.items():
        line = yamllines.line_of((str(key),), lines)
        if key not in _RANGES:
            issues.append(yamllines.Issue(where, line, str(key), f"unknown threshold; known: {', '.join(_RANGES)}"))
            continue
        lo, hi = _RANGES[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) \
                or not lo <= value <= hi:
            issues.append(yamllines.Issue(where, line, key, f"must be a number in [{lo:g}, {hi:g}], not {value!r}"))
            continue
        values[key] = float(value)
    missing = [k for k in _RANGES if k not in data]
    if missing:
        issues.append(yamllines.Issue(where, 0, "", f"missing threshold(s): {', '.join(missing)} "
                                                    "(a file states every one; copy the shipped rules.yaml)"))
    if issues:
        raise RuleThresholdsError("\n".join(str(i) for i in issues))
    return RuleThresholds(**values)


@functools.cache
def shipped_thresholds() -> RuleThresholds:
    """The calibrated thresholds the package ships (`remediator/data/rules.yaml`)."""
    return load_thresholds(SHIPPED_THRESHOLDS)


def as_yaml(t: RuleThresholds) -> str:
    """The thresholds as the body of a rules.yaml (no comments)."""
    return "".join(f"{k}: {v:g}\n" for k, v in t.as_dict().items())

