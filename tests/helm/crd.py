"""Validate custom resources against the chart's CRDs, as the API server would.

kubernetes-validate knows the built-in kinds only; a `Remediation` or `RemediationPolicy` is
checked here against the OpenAPI v3 schema of its CRD in helm/remediator/crds/. The schema is
turned into JSON Schema the way the API server reads it: `nullable` admits null, `format:
date-time` is RFC 3339, and a field the schema does not declare is an error (what `kubectl
--validate=strict`, kubectl's default, reports; the server would otherwise prune it silently).
CEL rules (`x-kubernetes-validations`) are not evaluated here; test_crds.py evaluates them with cel-python.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "helm" / "remediator" / "crds"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class CRInvalid(ValueError):
    """A custom resource its CRD refuses; `path` is the dotted field, e.g. `status.phase`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '(root)'}: {message}")
        self.path = path


@cache
def crds() -> dict[tuple[str, str], dict[str, Any]]:
    """The chart's CRDs by (group, kind)."""
    out = {}
    for file in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(file.read_text())
        out[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = crd
    return out


def version_of(crd: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in crd["spec"]["versions"] if v["name"] == name)


def to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 (structural) schema node as strict JSON Schema."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k not in ("nullable", "description")}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "properties" in node:
        out["properties"] = {k: to_json_schema(v) for k, v in node["properties"].items()}
        if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_FORMATS = jsonschema.FormatChecker()
_FORMATS.checks("date-time")(_date_time)


def validate_cr(obj: dict[str, Any]) -> None:
    """Raise `CRInvalid` if the chart's CRD for `obj`'s apiVersion and kind refuses it."""
    group, _, version = str(obj.get("apiVersion", "")).partition("/")
    crd = crds().get((group, str(obj.get("kind"))))
    if crd is None:
        raise CRInvalid("kind", f"no CRD in {CRD_DIR} for {obj.get('apiVersion')} {obj.get('kind')}")
    schema = to_json_schema(copy.deepcopy(version_of(crd, version)["schema"]["openAPIV3Schema"]))
    errors = sorted(jsonschema.Draft202012Validator(schema, format_checker=_FORMATS).iter_errors(obj),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        raise CRInvalid(".".join(str(p) for p in first.absolute_path), first.message)


def schema_paths(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field of a schema with its dotted path; array items are `name[]`."""
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path, child
        if child.get("type") == "array" and isinstance(child.get("items"), dict):
            yield from schema_paths(child["items"], path + "[]")
        else:
            yield from schema_paths(child, path)
