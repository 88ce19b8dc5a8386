"""The Alertmanager receiver snippets of NOTES.txt and the README: amtool accepts them, and they point at
the chart's Service with the webhook token's Secret."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.render import CHART, NAMESPACE, RELEASE, one, render
from tests.support.helm import helm

pytestmark = pytest.mark.slow  # helm and amtool

ROOT = Path(__file__).resolve().parents[2]


def notes(tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` prints it (rendered offline: `helm template` skips NOTES)."""
    chart = tmp_path / "chart"
    if not chart.exists():
        shutil.copytree(CHART, chart, symlinks=False)
    (chart / "NOTES.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "notes-as-configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ tpl (.Files.Get "NOTES.txt") . | toJson }}}\n')
    args = [a for s in sets for a in ("--set", s)]
    out = helm("template", RELEASE, str(chart), "-n", NAMESPACE, "--show-only", "templates/notes-as-configmap.yaml",
               *args)
    assert out.returncode == 0, out.stderr
    return str(yaml.safe_load(out.stdout)["data"]["notes"])


def _blocks(text: str) -> list[Any]:
    """The YAML blocks of NOTES (indented 5 spaces after a line ending in ':')."""
    found = re.findall(r":\n\n((?: {5}.*\n|\n)+)", text + "\n")
    return [yaml.safe_load(textwrap.dedent(b)) for b in found if "kind:" in b or "receivers:" in b]


def _readme_blocks() -> list[Any]:
    section = (ROOT / "README.md").read_text().split("## Install in a cluster", 1)[1].split("\n## ", 1)[0]
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]


def _amtool_check(tmp_path: Path, snippet: dict[str, Any]) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool missing: run scripts/ci/install-system.sh (apt-get install prometheus-alertmanager)")
    route = snippet.get("route", {})
    config = {"route": {"receiver": "default", **route}, "receivers": [{"name": "default"}, *snippet["receivers"]]}
    file = tmp_path / "alertmanager.yml"
    file.write_text(yaml.safe_dump(config))
    out = subprocess.run([amtool, "check-config", str(file)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def _url(objects: list[dict[str, Any]]) -> str:
    service = one(objects, "Service")
    return f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{service['spec']['ports'][0]['port']}/alerts"


@pytest.mark.parametrize("sets", [(), ("service.port=9000", "webhookToken.secretName=am-token")])
def test_notes_snippets_point_at_the_receiver(tmp_path: Path, sets: tuple[str, ...]) -> None:
    values = {k: v for k, v in (s.split("=") for s in sets)}
    objects = render(tmp_path, {"service": {"port": int(values.get("service.port", 8080))},
                                "webhookToken": {"secretName": values.get("webhookToken.secretName",
                                                                          "remediator-webhook"), "key": "token"}})
    text = notes(tmp_path, *sets)
    amc, plain = _blocks(text)
    secret = values.get("webhookToken.secretName", "remediator-webhook")
    assert f"create secret generic {secret}" in text
    (hook,) = amc["spec"]["receivers"][0]["webhookConfigs"]
    assert amc["kind"] == "AlertmanagerConfig" and amc["metadata"]["namespace"] == NAMESPACE
    assert hook["url"] == _url(objects)
    assert hook["httpConfig"]["authorization"]["credentials"] == {"name": secret, "key": "token"}
    assert amc["spec"]["route"]["receiver"] == amc["spec"]["receivers"][0]["name"]
    assert plain["receivers"][0]["webhook_configs"][0]["url"] == _url(objects)
    _amtool_check(tmp_path, plain)


def test_notes_warn_about_namespaced_rbac_and_standby_ledgers(tmp_path: Path) -> None:
    assert "RBAC is namespaced" not in notes(tmp_path)
    assert "RBAC is namespaced (shop)" in notes(tmp_path, "rbac.scope=namespaced", "rbac.namespaces={shop}")
    standby = notes(tmp_path, "replicas=2", "ledger.persistence.enabled=false")
    assert "2 replicas with an emptyDir ledger" in standby


def test_readme_snippets_match_a_release_named_remediator(tmp_path: Path) -> None:
    """The README installs release `remediator` in namespace `remediator`: its URLs are that Service's."""
    amc, plain = _readme_blocks()
    url = "http://remediator.remediator.svc:8080/alerts"
    assert amc["spec"]["receivers"][0]["webhookConfigs"][0]["url"] == url
    assert plain["receivers"][0]["webhook_configs"][0]["url"] == url
    out = helm("template", "remediator", str(CHART), "-n", "remediator", "--show-only", "templates/service.yaml")
    service = yaml.safe_load(out.stdout)
    assert (service["metadata"]["name"], service["spec"]["ports"][0]["port"]) == ("remediator", 8080)
    _amtool_check(tmp_path, plain)
