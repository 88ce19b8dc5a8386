"""The README's Slack setup (section Approval): its `--set` flags render with the real helm, the
Deployment passes the Slack secret by reference, and the agent's loader reads approve mode and the
approvers from the rendered configuration."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from remediator.live.config import load_config
from tests.helm.render import template
from tests.support.helm import REPO_ROOT

ROOT_README = REPO_ROOT / "README.md"


def _readme_sets() -> list[str]:
    section = ROOT_README.read_text().split("## Approval", 1)[1].split("\n## ", 1)[0]
    [command] = [b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "helm upgrade" in b]
    words = shlex.split(command.replace("\\\n", " ").split("helm upgrade", 1)[1])
    return [w for i, w in enumerate(words) if i and words[i - 1] == "--set"]


def test_the_readme_slack_setup_renders_and_loads(tmp_path: Path) -> None:
    sets = _readme_sets()
    assert "slack.existingSecret=remediator-slack" in sets and "config.mode=approve" in sets
    code, stdout, stderr = template(tmp_path, None, *[a for s in sets for a in ("--set", s)])
    assert code == 0, stderr
    objects = [d for d in yaml.safe_load_all(stdout) if d]
    [deployment] = [o for o in objects if o["kind"] == "Deployment"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    for var, key in (("REMEDIATOR_SLACK_WEBHOOK_URL", "webhook-url"), ("SLACK_SIGNING_SECRET", "signing-secret")):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "remediator-slack", "key": key}
    [config_map] = [o for o in objects if o["kind"] == "ConfigMap" and "config.yaml" in o.get("data", {})]
    file = tmp_path / "config.yaml"
    file.write_text(config_map["data"]["config.yaml"])
    config = load_config(file, env={"REMEDIATOR_WEBHOOK_TOKEN": "t", "REMEDIATOR_SLACK_WEBHOOK_URL": "https://x"})
    assert config.mode == "approve" and config.slack is not None and config.slack.approvers == ["U024BE7LH"]
