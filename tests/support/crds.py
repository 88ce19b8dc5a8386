"""CustomResourceDefinitions for the emulator: the chart's CRDs served, and their objects validated.

`ServedCRD.from_file(path)` reads a CRD (helm/remediator/crds/*.yaml); `KubeEmulator.install_crd`
serves every version of it and, from then on, refuses a write its schema refuses, as the API
server does:

* the OpenAPI v3 schema (types, enums, `required`, bounds, patterns, `format: date-time`,
  `nullable`), 422 naming the field. A field the schema does not declare is refused too (422);
  a real server prunes it silently unless the client asks for `fieldValidation=Strict`, so the
  emulator is the stricter of the two: nothing our code writes may rely on pruning;
* the CEL rules (`x-kubernetes-validations`) of object fields, evaluated with cel-python,
  transition rules (those naming `oldSelf`) on updates only: 422 with the rule's message.

Status is the status subresource's: a create or a main-resource write keeps the old status
(none on create), as on a real server (see `KubeEmulator._update`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.helm.crd import _FORMATS, to_json_schema

__all__ = ["CRD_DIR", "CRInvalidWrite", "ServedCRD", "chart_crds"]

CRD_DIR = Path(__file__).resolve().parents[2] / "helm" / "remediator" / "crds"


class CRInvalidWrite(ValueError):
    """What the CRD refuses: `field` (dotted) and the message."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where or '(root)'}: {message}")
        self.where = where
        self.message = message


@dataclass(frozen=True)
class _Rule:
    path: tuple[str, ...]  # object fields from the root, e.g. ("spec",)
    rule: str
    message: str
    transition: bool


@dataclass
class ServedCRD:
    group: str
    kind: str
    plural: str
    namespaced: bool
    versions: dict[str, dict[str, Any]]  # name -> openAPIV3Schema
    subresources: dict[str, tuple[str, ...]]  # version -> subresource names
    _validators: dict[str, jsonschema.Draft202012Validator] = field(default_factory=dict, repr=False)
    _rules: dict[str, list[_Rule]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, crd: dict[str, Any]) -> ServedCRD:
        spec = crd["spec"]
        versions = {v["name"]: v["schema"]["openAPIV3Schema"] for v in spec["versions"] if v.get("served", True)}
        subs = {v["name"]: tuple((v.get("subresources") or {}).keys()) for v in spec["versions"]}
        return cls(spec["group"], spec["names"]["kind"], spec["names"]["plural"], spec["scope"] == "Namespaced",
                   versions, subs)

    @classmethod
    def from_file(cls, path: Path) -> ServedCRD:
        return cls.from_dict(yaml.safe_load(path.read_text()))

    def key(self, version: str) -> str:
        return f"{self.group}/{version}/{self.plural}"

    def check(self, version: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Raise `CRInvalidWrite` if the API server would refuse storing `obj` (an update of `old`)."""
        validator = self._validators.get(version)
        if validator is None:
            schema = to_json_schema(copy.deepcopy(self.versions[version]))
            validator = self._validators[version] = jsonschema.Draft202012Validator(schema, format_checker=_FORMATS)
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            first = errors[0]
            raise CRInvalidWrite(".".join(str(p) for p in first.absolute_path), first.message)
        for rule in self._rules_of(version):
            new_value, old_value = _at(obj, rule.path), _at(old, rule.path) if old is not None else None
            if new_value is None or (rule.transition and old_value is None):
                continue  # a rule applies where its field is set; a transition rule only to an update
            if not _cel(rule.rule, new_value, old_value):
                raise CRInvalidWrite(".".join(rule.path), rule.message)

    def _rules_of(self, version: str) -> list[_Rule]:
        if version not in self._rules:
            found: list[_Rule] = []
            _collect(self.versions[version], (), found)
            self._rules[version] = found
        return self._rules[version]


def _collect(node: dict[str, Any], path: tuple[str, ...], out: list[_Rule]) -> None:
    for rule in node.get("x-kubernetes-validations", []):
        text = str(rule["rule"])
        out.append(_Rule(path, text, str(rule.get("message") or f"failed rule: {text}"), "oldSelf" in text))
    for name, child in (node.get("properties") or {}).items():
        if isinstance(child, dict):
            _collect(child, (*path, name), out)


def _at(obj: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if not isinstance(obj, dict) or name not in obj:
            return None
        obj = obj[name]
    return obj


def _cel(rule: str, new: Any, old: Any) -> bool:
    import celpy

    env = celpy.Environment()
    program = env.program(env.compile(rule))
    variables = {"self": celpy.json_to_cel(new)}
    if old is not None:
        variables["oldSelf"] = celpy.json_to_cel(old)
    return bool(program.evaluate(variables))


def chart_crds() -> list[ServedCRD]:
    """The chart's CRDs (helm/remediator/crds)."""
    return [ServedCRD.from_file(p) for p in sorted(CRD_DIR.glob("*.yaml"))]


# --------------------------------------------------------------------------- admission


@dataclass
class AdmissionPolicy:
    """A `ValidatingAdmissionPolicy` (admissionregistration.k8s.io/v1) the emulator enforces, as if bound
    with `validationActions: [Deny]`: its CEL validations see `object`, `oldObject` (null on CREATE) and
    `request` (`userInfo.username`, `operation`). A failed one answers its `reason`'s status (Forbidden:
    403, Invalid: 422, ...) with its message (or messageExpression)."""

    doc: dict[str, Any]

    def matches(self, group: str, version: str, resource: str, operation: str) -> bool:
        for rule in self.doc["spec"]["matchConstraints"]["resourceRules"]:
            if (group in rule["apiGroups"] or "*" in rule["apiGroups"]) \
                    and (version in rule["apiVersions"] or "*" in rule["apiVersions"]) \
                    and (resource in rule["resources"] or "*" in rule["resources"]) \
                    and (operation in rule["operations"] or "*" in rule["operations"]):
                return True
        return False

    def refusal(self, obj: dict[str, Any], old: dict[str, Any] | None, username: str,
                operation: str) -> tuple[int, str] | None:
        """(status, message) of the first validation that fails, None when every one holds."""
        import celpy

        env = celpy.Environment()
        activation = {"object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old),
                      "request": celpy.json_to_cel({"userInfo": {"username": username}, "operation": operation})}
        for validation in self.doc["spec"]["validations"]:
            if bool(env.program(env.compile(validation["expression"])).evaluate(activation)):
                continue
            message = str(validation.get("message") or f"failed expression: {validation['expression']}")
            if validation.get("messageExpression"):
                message = str(env.program(env.compile(validation["messageExpression"])).evaluate(activation))
            status = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}
            name = self.doc["metadata"]["name"]
            return status.get(str(validation.get("reason") or "Invalid"), 422), \
                f"ValidatingAdmissionPolicy '{name}' denied request: {message}"
        return None
