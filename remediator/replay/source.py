"""A `MetricsSource` over a trace: the observer's own PromQL selectors, answered from recorded samples.

The observer asks `raw(selector, at, window_s)` for `selector[window]` evaluated at `at`.
Prometheus 2.x answers with every stored sample in the closed interval [at - window, at];
`TraceMetrics` parses the selector (a metric name and label matchers `=`, `!=`, `=~`, `!~`,
the only PromQL the templates may hold) and returns the same samples from the trace, so the
replayed observation is the live one. Regexes are fully anchored, as in Prometheus.

    >>> parse_selector('up{job=~"api|db", code!="500"}')
    Selector(name='up', matchers=(('job', '=~', 'api|db'), ('code', '!=', '500')))
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from remediator.live.observer import QueryError, RawSeries
from remediator.replay.trace import RecordedSeries

__all__ = ["Selector", "TraceMetrics", "parse_selector"]

_NAME = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,)?')
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[tuple[str, str, str], ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.name and labels.get("__name__") != self.name:
            return False
        for label, op, value in self.matchers:
            have = labels.get(label, "")
            if op == "=" and have != value or op == "!=" and have == value:
                return False
            if op in ("=~", "!~") and (_regex(value).fullmatch(have) is not None) != (op == "=~"):
                return False
        return True


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text)


def parse_selector(text: str) -> Selector:
    """`name{label op "value", ...}`; anything else (functions, ranges, offsets) is a `QueryError`."""
    m = _NAME.match(text)
    name, pos = (m.group(1), m.end()) if m else ("", 0)
    matchers: list[tuple[str, str, str]] = []
    rest = text[pos:].strip()
    if rest:
        if not (rest.startswith("{") and rest.endswith("}")):
            raise QueryError(f"the trace answers plain selectors only, not {text!r}")
        body, i = rest[1:-1], 0
        while i < len(body.rstrip()):
            mm = _MATCHER.match(body, i)
            if mm is None:
                raise QueryError(f"cannot parse the label matchers of {text!r} at {body[i:]!r}")
            label, op, value = mm.group(1), mm.group(2), _unescape(mm.group(3))
            if op in ("=~", "!~"):
                try:
                    _regex(value)
                except re.error as e:
                    raise QueryError(f"bad regex {value!r} in {text!r}: {e}") from None
            if label == "__name__" and op == "=":
                name = name or value
            matchers.append((label, op, value))
            i = mm.end()
            if mm.group(4) is None and body[i:].strip():
                raise QueryError(f"expected ',' between label matchers in {text!r}")
    if not name and not matchers:
        raise QueryError(f"empty selector {text!r}")
    return Selector(name, tuple(matchers))


class TraceMetrics:
    """Recorded series as the observer's `MetricsSource`; `queries` counts what was asked.

    The series a selector matches are remembered (labels do not change), and a window's samples
    are found by bisection: replaying every minute of a long trace stays cheap."""

    def __init__(self, series: Iterable[RecordedSeries]) -> None:
        self.by_name: dict[str, list[tuple[RecordedSeries, list[float]]]] = defaultdict(list)
        for s in series:
            self.by_name[s.name].append((s, [t for t, _ in s.points]))
        self.queries = 0
        self._matched: dict[str, list[tuple[RecordedSeries, list[float]]]] = {}

    def _matching(self, selector: str) -> list[tuple[RecordedSeries, list[float]]]:
        if selector not in self._matched:
            sel = parse_selector(selector)
            candidates = self.by_name.get(sel.name, []) if sel.name else [s for v in self.by_name.values() for s in v]
            self._matched[selector] = [(s, ts) for s, ts in candidates if sel.matches(s.labels)]
        return self._matched[selector]

    def raw(self, selector: str, at: float, window_s: float) -> list[RawSeries]:
        self.queries += 1
        out = []
        for s, times in self._matching(selector):
            lo, hi = bisect_left(times, at - window_s), bisect_right(times, at)
            if hi > lo:
                out.append(RawSeries(dict(s.labels), list(s.points[lo:hi])))
        return out
