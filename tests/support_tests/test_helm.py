"""The helm binary installed by scripts/ci/install-system.sh lints and renders a chart offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.helm import helm, helm_binary


@pytest.fixture(autouse=True)
def _helm_installed() -> None:
    if helm_binary() is None:
        pytest.fail("helm missing: run scripts/ci/install-system.sh (make test does)")


def test_helm_version_is_v3() -> None:
    out = helm("version", "--short")
    assert out.returncode == 0 and out.stdout.startswith("v3."), out


def test_helm_lint_and_template_a_chart(tmp_path: Path) -> None:
    chart = tmp_path / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("replicas: 2\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        "data:\n  replicas: {{ .Values.replicas | quote }}\n"
    )
    assert helm("lint", str(chart)).returncode == 0
    rendered = helm("template", "rel", str(chart), "--set", "replicas=3")
    assert rendered.returncode == 0, rendered.stderr
    assert yaml.safe_load(rendered.stdout)["data"] == {"replicas": "3"}
