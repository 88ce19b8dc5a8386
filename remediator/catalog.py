"""The runbook catalog: which actions apply to an alert, in what order, within what limits.

A runbook is data, not code: one YAML file per alert under `runbooks/`, so that an SRE adds
or edits one without touching Python. This module is its schema (pydantic, strict, unknown
fields forbidden) and its loader. The loader keeps the line of every YAML node, so each
problem names the file, the line and the field path, and `validate_dir` reports every
problem in every file at once rather than stopping at the first::

    runbooks/KubePodCrashLooping.yaml:12: actions[1].kind: 'reboot_cluster' is not an action
    kind (one of noop, restart_rollout, ...)

A runbook looks like this (see `runbooks/README.md` for the full format)::

    alert: KubeHpaMaxedOut
    match: {severity: warning}          # optional: every label must equal the alert's
    summary: The autoscaler is pinned at maxReplicas.
    actions:                            # default order: the proposer scores them descending
      - kind: raise_hpa_max
        params: {factor: 1.5}           # defaults; see DEFAULT_PARAMS for each kind's
        limits: {factor: {min: 1.1, max: 2.0}}
        when: CPU saturated at maxReplicas while traffic keeps growing
      - kind: escalate
    verify: {consecutive: 4, timeout_s: 600}
    reference: https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubehpamaxedout

Parameters per action kind (the guards and the executor read the same names):

    scale_out                 {"factor": F} or {"replicas": N}   (default factor 1.5)
    restore_replicas          {"replicas": N}, filled by the proposer from the baseline
    raise_memory_limit        {"factor": F}                      (default 1.5)
    raise_cpu_limit           {"factor": F}                      (default 1.5)
    raise_hpa_max             {"factor": F} or {"max_replicas": N} (default factor 1.5)
    expand_volume             {"factor": F}                      (default 1.5; at least enough for 2 h at the fill rate)
    every other kind          {}

Where the shipped catalog lives: the YAML files are `runbooks/` at the top of the source
tree, and `remediator/data/runbooks` is a symlink to it. `pyproject.toml` already ships
`remediator/data/**/*` as package data, and setuptools copies the files behind the link into
the wheel, so the same lookup (`shipped_runbooks_dir()`) finds them in a source checkout,
an editable install and an installed wheel. A checkout without symlinks falls back to the
top-level `runbooks/`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from remediator import yamllines
from remediator.actions import ACTION_KINDS, DEFAULT_PARAMS, PARAMS, ActionKind
from remediator.snapshot import Alert

__all__ = [
    "DEFAULT_PARAMS", "PARAM_NAMES", "ActionEntry", "Catalog", "Limit", "Params", "Runbook",
    "RunbookError", "RunbookIssue", "Verify", "load_catalog", "shipped_runbooks_dir", "validate_dir",
]

# Which parameters each action kind takes (`remediator.actions.PARAMS`); any other name is an error.
PARAM_NAMES: Final[Mapping[ActionKind, frozenset[str]]] = {
    kind: frozenset(PARAMS.get(kind, ())) for kind in ACTION_KINDS}

_ALERT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KIND_VALUES: Final = {k.value: k for k in ACTION_KINDS}
_KINDS_TEXT: Final = ", ".join(_KIND_VALUES)


def _problem(message: str, *at: str | int) -> PydanticCustomError:
    """A validation error whose field lies `at` below the validator's own location.

    Pydantic puts a model validator's error at the model; the loader appends `at` so that
    the reported line is the offending field's, not the enclosing mapping's.
    """
    return PydanticCustomError("runbook", "{message}", {"message": message, "at": at})


# ---------------------------------------------------------------------------- schema


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Params(_Model):
    """An action's parameters. Which names apply depends on the kind (`PARAM_NAMES`)."""

    factor: StrictFloat | None = Field(default=None, gt=1.0, description="multiplier, above 1")
    replicas: StrictInt | None = Field(default=None, ge=1, description="absolute replica count")
    max_replicas: StrictInt | None = Field(default=None, ge=1, description="absolute HPA maximum")

    def as_dict(self) -> dict[str, float | int]:
        """The parameters that are set, as `Action.params` carries them."""
        return {k: v for k, v in self if v is not None}


class Limit(_Model):
    """Bounds on one parameter, for whatever proposes a value (the catalog, an LLM, a user)."""

    min: StrictFloat | None = None
    max: StrictFloat | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Limit:
        if self.min is None and self.max is None:
            raise _problem("a limit needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _problem(f"min {self.min:g} is above max {self.max:g}", "min")
        return self

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def clamp(self, value: float) -> float:
        if self.min is not None:
            value = max(value, self.min)
        if self.max is not None:
            value = min(value, self.max)
        return value

    def __str__(self) -> str:
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"[{lo}, {hi}]"


class ActionEntry(_Model):
    """One step of a runbook: an action kind, its default parameters and their limits."""

    kind: ActionKind
    params: Params = Params()
    limits: dict[StrictStr, Limit] = Field(default_factory=dict)
    when: StrictStr = Field(default="", description="the signal that makes this action apt")

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: Any) -> Any:
        if isinstance(value, ActionKind):
            return value
        if isinstance(value, str) and value in _KIND_VALUES:
            return _KIND_VALUES[value]
        raise PydanticCustomError(
            "action_kind", "{value} is not an action kind (one of {kinds})",
            {"value": repr(value), "kinds": _KINDS_TEXT})

    @model_validator(mode="before")
    @classmethod
    def _default_params(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("params", None) in (None, {}):
            kind = data.get("kind")
            kind = _KIND_VALUES.get(kind) if isinstance(kind, str) else kind
            defaults = DEFAULT_PARAMS.get(kind) if isinstance(kind, ActionKind) else None
            if defaults:
                return {**data, "params": dict(defaults)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ActionEntry:
        allowed = PARAM_NAMES[self.kind]
        takes = ", ".join(sorted(allowed)) or "no parameters"
        for name in self.params.as_dict():
            if name not in allowed:
                raise _problem(f"{self.kind.value} does not take {name!r} (takes {takes})", "params", name)
        for name in self.limits:
            if name not in allowed:
                raise _problem(f"no parameter {name!r} to limit: {self.kind.value} takes {takes}",
                               "limits", name)
        if len(allowed) > 1 and len(self.params.as_dict()) != 1:
            raise _problem(f"{self.kind.value} takes exactly one of {' or '.join(sorted(allowed))}",
                           "params")
        for name, value in self.params.as_dict().items():
            limit = self.limits.get(name)
            if limit is not None and not limit.contains(value):
                raise _problem(f"default {name}={value:g} is outside its limits {limit}", "params", name)
        return self

    def violations(self, params: Mapping[str, Any]) -> list[str]:
        """What is wrong with `params` proposed for this step (by an LLM, say); [] if nothing.

        The guards treat a proposal as untrusted input: unknown names, wrong types and values
        outside the runbook's limits are reasons to drop it.
        """
        allowed = PARAM_NAMES[self.kind]
        out = []
        for name, value in params.items():
            if name not in allowed:
                out.append(f"{self.kind.value} does not take {name!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                out.append(f"{name}={value!r} is not a number")
            elif name != "factor" and not float(value).is_integer():
                out.append(f"{name}={value!r} is not a whole number")
            elif name in self.limits and not self.limits[name].contains(float(value)):
                out.append(f"{name}={value:g} is outside the runbook's limits {self.limits[name]}")
        if len(allowed) > 1 and len(set(params) & allowed) != 1:
            out.append(f"{self.kind.value} takes exactly one of {' or '.join(sorted(allowed))}")
        return out


class Verify(_Model):
    """How recovery is confirmed: the SLO holds for `consecutive` samples before `timeout_s`."""

    consecutive: StrictInt = Field(ge=1)
    timeout_s: StrictFloat = Field(gt=0)


class Runbook(_Model):
    """What to do when one alert fires."""

    alert: StrictStr
    match: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    summary: StrictStr = Field(min_length=1)
    actions: tuple[ActionEntry, ...] = Field(min_length=1)
    verify: Verify
    reference: StrictStr = ""

    @field_validator("alert")
    @classmethod
    def _alert_name(cls, value: str) -> str:
        if not _ALERT_NAME.match(value):
            raise PydanticCustomError("alert_name", "{value} is not a Prometheus alert name",
                                      {"value": repr(value)})
        return value

    @field_validator("reference")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise PydanticCustomError("url", "{value} is not an http(s) URL", {"value": repr(value)})
        return value

    @model_validator(mode="after")
    def _one_entry_per_kind(self) -> Runbook:
        seen: dict[ActionKind, int] = {}
        for i, entry in enumerate(self.actions):
            if entry.kind in seen:
                raise _problem(f"{entry.kind.value!r} is already listed as actions[{seen[entry.kind]}]; "
                               "the proposer offers one candidate per kind", "actions", i, "kind")
            seen[entry.kind] = i
        return self

    def matches(self, alert: Alert) -> bool:
        """Same alert name and every `match` label equal to the alert's."""
        return alert.name == self.alert and all(alert.labels.get(k) == v for k, v in self.match.items())

    def entry(self, kind: ActionKind) -> ActionEntry | None:
        return next((e for e in self.actions if e.kind is kind), None)

    @property
    def kinds(self) -> tuple[ActionKind, ...]:
        return tuple(e.kind for e in self.actions)


@dataclass(frozen=True)
class Catalog:
    """The runbooks in force, one per alert name."""

    runbooks: tuple[Runbook, ...]
    source: Path | None = None
    _by_alert: dict[str, Runbook] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [r.alert for r in self.runbooks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"more than one runbook for alert(s) {', '.join(dupes)}")
        object.__setattr__(self, "_by_alert", {r.alert: r for r in self.runbooks})

    def get(self, alert_name: str) -> Runbook | None:
        """The runbook for this alert name, whatever the alert's labels."""
        return self._by_alert.get(alert_name)

    def for_alert(self, alert: Alert) -> Runbook | None:
        """The runbook for the alert's name, if its `match` labels agree with the alert's."""
        runbook = self.get(alert.name)
        return runbook if runbook is not None and runbook.matches(alert) else None

    @property
    def alerts(self) -> tuple[str, ...]:
        return tuple(sorted(r.alert for r in self.runbooks))

    def __iter__(self) -> Iterator[Runbook]:
        return iter(self.runbooks)

    def __len__(self) -> int:
        return len(self.runbooks)


# ---------------------------------------------------------------------------- errors


# One problem in one runbook file: where it is and what is wrong.
RunbookIssue = yamllines.Issue


class RunbookError(Exception):
    """The catalog did not load; `errors` lists every problem found, in file order."""

    def __init__(self, errors: Sequence[RunbookIssue]) -> None:
        self.errors: list[RunbookIssue] = list(errors)
        shown = "\n".join(str(e) for e in self.errors[:20])
        more = f"\n... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(f"{len(self.errors)} problem(s) in the runbook catalog:\n{shown}{more}")


# ---------------------------------------------------------------------------- loading

_Loc = yamllines.Loc


def shipped_runbooks_dir() -> Path:
    """The catalog that ships with remediator (see the module docstring for how it is found)."""
    packaged = Path(__file__).resolve().parent / "data" / "runbooks"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "runbooks"


def _runbook_files(path: Path) -> list[Path]:
    # Not recursive, and hidden entries skipped: a ConfigMap volume holds the same files
    # again under `..data/` and `..<timestamp>/`.
    return sorted(p for p in path.iterdir()
                  if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file())


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _model_at(loc: _Loc) -> type[BaseModel] | None:
    """The schema model that the mapping at `loc` is validated against, for 'expected' hints."""
    ann: Any = Runbook
    for part in loc:
        if _is_model(ann):
            if part not in ann.model_fields:
                return None
            ann = ann.model_fields[part].annotation
        elif get_origin(ann) in (tuple, list):  # part is an index
            ann = get_args(ann)[0]
        elif get_origin(ann) is dict:  # part is a key
            ann = get_args(ann)[1]
        else:
            return None
    return ann if _is_model(ann) else None


def _message(err: Mapping[str, Any], loc: _Loc) -> str:
    kind, msg, value = err["type"], str(err["msg"]), err.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        expected = f" (expected one of {', '.join(model.model_fields)})" if model else ""
        return f"unknown field {loc[-1]!r}{expected}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {value!r}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        shown = repr(value) if not isinstance(value, Mapping | list) else type(value).__name__
        return f"{msg}, got {shown}"
    return msg


def _parse_file(file: Path, label: str) -> tuple[Runbook | None, int, list[RunbookIssue]]:
    """Parse and validate one file; returns the runbook (or None), the line of `alert`, issues."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, 0, [RunbookIssue(label, 0, "", f"cannot read: {exc}")]
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return None, line, [RunbookIssue(label, line, "", f"invalid YAML: {problem or exc}")]
    except yaml.YAMLError as exc:
        return None, 0, [RunbookIssue(label, 0, "", f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    if node is None:
        return None, 0, [RunbookIssue(label, 1, "", "empty file: expected one runbook (a mapping)")]
    lines, duplicates = yamllines.key_lines(node)
    issues = [RunbookIssue(label, d.line, yamllines.dotted(d.loc),
                           f"duplicate key (first at line {d.first}); YAML would keep only this one")
              for d in duplicates]
    if not isinstance(data, Mapping):
        return None, 1, issues + [RunbookIssue(label, node.start_mark.line + 1, "",
                                               f"expected a runbook mapping, got a {type(data).__name__}")]
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        failed = [tuple(e["loc"]) for e in errors]
        for err in errors:
            loc: _Loc = tuple(err["loc"]) + tuple((err.get("ctx") or {}).get("at", ()))
            if err["type"] == "too_short" and any(f[:len(loc)] == loc and f != loc for f in failed):
                continue  # "0 items after validation" only echoes the failed items below
            issues.append(RunbookIssue(label, yamllines.line_of(loc, lines) or 1, yamllines.dotted(loc),
                                       _message(err, loc)))
        return None, lines.get(("alert",), 1), issues
    return (None if issues else runbook), lines.get(("alert",), 1), issues


def _load(path: Path) -> tuple[list[Runbook], list[RunbookIssue]]:
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = _runbook_files(path)
        if not files:
            return [], [RunbookIssue(str(path), 0, "", "no runbook files (*.yaml, *.yml) here")]
    else:
        return [], [RunbookIssue(str(path), 0, "", "no such file or directory")]
    runbooks: list[Runbook] = []
    issues: list[RunbookIssue] = []
    first: dict[str, str] = {}
    for file in files:
        label = str(file)
        runbook, alert_line, found = _parse_file(file, label)
        issues.extend(sorted(found, key=lambda issue: issue.line))
        if runbook is None:
            continue
        if runbook.alert in first:
            issues.append(RunbookIssue(label, alert_line, "alert",
                                       f"duplicate runbook for {runbook.alert!r}: already defined at "
                                       f"{first[runbook.alert]}"))
            continue
        first[runbook.alert] = f"{label}:{alert_line}"
        runbooks.append(runbook)
    return runbooks, issues


def validate_dir(path: Path | str) -> list[RunbookIssue]:
    """Every problem in every runbook file under `path` (a directory or one file); [] if none.

    Backs `remediator runbooks validate [DIR]`, which exits 0 on [] and 2 otherwise.
    """
    return _load(Path(path))[1]


@functools.lru_cache(maxsize=1)
def _shipped() -> Catalog:
    return load_catalog(shipped_runbooks_dir())


def load_catalog(path: Path | None = None) -> Catalog:
    """Load the runbooks in `path` (a directory or one file); None means the shipped catalog.

    Raises `RunbookError` listing every problem if any file is wrong: a half-loaded
    catalog would silently change what the agent offers.
    """
    if path is None:
        return _shipped()
    runbooks, issues = _load(Path(path))
    if issues:
        raise RunbookError(issues)
    return Catalog(tuple(runbooks), source=Path(path))
