"""`helm template` of helm/remediator with the real helm binary, as parsed objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm import REPO_ROOT, helm, helm_binary

CHART = REPO_ROOT / "helm" / "remediator"
NAMESPACE = "remediator"
RELEASE = "rem"


def require_helm() -> None:
    if helm_binary() is None:
        pytest.fail("helm missing: run scripts/ci/install-system.sh (make test does)")


def _values_file(tmp_path: Path, values: dict[str, Any] | None) -> list[str]:
    if not values:
        return []
    file = tmp_path / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
    file.write_text(yaml.safe_dump(values))
    return ["-f", str(file)]


def template(tmp_path: Path, values: dict[str, Any] | None = None, *extra: str) -> tuple[int, str, str]:
    require_helm()
    out = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *_values_file(tmp_path, values), *extra)
    return out.returncode, out.stdout, out.stderr


def render(tmp_path: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders with `values` (over values.yaml), templates and CRDs (--include-crds)."""
    code, stdout, stderr = template(tmp_path, values, "--include-crds")
    assert code == 0, stderr
    return [doc for doc in yaml.safe_load_all(stdout) if doc]


def refusal(tmp_path: Path, values: dict[str, Any]) -> str:
    """helm's error for `values` the chart must refuse (a failed test if it renders)."""
    code, _, stderr = template(tmp_path, values)
    assert code != 0, f"the chart rendered {values}"
    return stderr


def lint(tmp_path: Path, values: dict[str, Any] | None = None) -> tuple[int, str]:
    require_helm()
    out = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *_values_file(tmp_path, values))
    return out.returncode, out.stdout + out.stderr


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} rendered"
    return found[0]


def config_map_data(objects: list[dict[str, Any]], suffix: str) -> dict[str, str]:
    return one(objects, "ConfigMap", f"{RELEASE}-remediator-{suffix}")["data"]
