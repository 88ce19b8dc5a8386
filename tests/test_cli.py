"""The CLI contract: commands, JSON reports, and exit code 2 with a clear message on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remediator.cli import app

CHECK_CONTRACT = Path("/work/shared/tools/check-contract")
runner = CliRunner()


def _contract(kind: str, path: Path) -> None:
    if not CHECK_CONTRACT.exists():
        pytest.fail(f"{CHECK_CONTRACT} is missing: the contract checker must run in CI")
    res = subprocess.run([sys.executable, str(CHECK_CONTRACT), kind, str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_benchmark_writes_a_contract_valid_report_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    res = runner.invoke(app, ["benchmark", "--suite", "eval", "--seed", "3", "--episodes", "30",
                              "--rankers", "oracle,rules,random,llm", "--json", str(out), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    _contract("benchmark", out)
    doc = json.loads(out.read_text())
    assert doc["episodes"] == 30 and set(doc["rankers"]) == {"oracle", "rules", "random", "llm"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_prints_and_writes_episodes(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    res = runner.invoke(app, ["simulate", "--suite", "default", "--ranker", "rules", "--episodes", "5",
                              "--seed", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert len(doc["episodes"]) == 5 and doc["ranker"] == "rules"
    assert {"fault", "recovered", "recovery_s", "actions"} <= set(doc["episodes"][0])


def test_without_seed_the_suites_own_seed_draws_the_incidents(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    res = runner.invoke(app, ["benchmark", "--suite", "eval_large", "--episodes", "2", "--rankers", "oracle",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["seed"] == 23  # eval_large.yaml's seed, not another suite's


@pytest.mark.parametrize(("args", "needle"), [
    (["benchmark", "--suite", "nope"], "no suite named 'nope'"),
    (["benchmark", "--suite", "missing.yaml"], "does not exist"),
    (["benchmark", "--rankers", "oracle,wizard"], "unknown ranker 'wizard'"),
    (["benchmark", "--rankers", ","], "names no ranker"),
    (["simulate", "--ranker", "dqn:/nonexistent/model.zip", "--episodes", "1"], "nonexistent"),
    (["simulate", "--episodes", "0"], "Invalid value"),
    (["benchmark", "--bogus-flag"], "No such option"),
])
def test_bad_input_exits_2_with_a_message(args: list[str], needle: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert needle in res.output


@pytest.mark.parametrize(("body", "needle"), [
    ("name: x\nfaults: {memory_leak: 1, teleport: 2}\n", "unknown fault(s) teleport"),
    ("name: x\nfaults: {memory_leak: 1}\nnoise: [0.3, 0.1]\n", "noise range"),
    ("name: x\nfaults: {memory_leak: 1}\nincidents: -4\n", "incidents"),
    ("name: x\nfaults: {memory_leak: 1}\ncolour: blue\n", "colour"),
    ("name: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "a suite is a mapping"),
])
def test_bad_suite_files_exit_2_naming_the_problem(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(body)
    res = runner.invoke(app, ["benchmark", "--suite", str(path), "--rankers", "rules"])
    assert res.exit_code == 2, res.output
    assert needle in res.output and str(path) in res.output


def test_runbooks_validate_shipped_catalog_and_broken_one(tmp_path: Path) -> None:
    assert runner.invoke(app, ["runbooks", "validate"]).exit_code == 0
    bad = tmp_path / "KubePodCrashLooping.yaml"
    bad.write_text("alert: KubePodCrashLooping\nsummary: s\nactions:\n  - kind: reboot_cluster\n"
                   "verify: {consecutive: 4, timeout_s: 600}\n")
    res = runner.invoke(app, ["runbooks", "validate", str(tmp_path)])
    assert res.exit_code == 2
    assert f"{bad}:4" in res.output and "reboot_cluster" in res.output
    assert runner.invoke(app, ["runbooks", "validate", str(tmp_path / "absent")]).exit_code == 2


def test_console_script_is_installed() -> None:
    # The script sits next to the interpreter running the tests; CI does not activate the venv.
    script = Path(sys.executable).parent / "remediator"
    assert script.exists(), f"console script missing: {script}"
    res = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "benchmark" in res.stdout


@pytest.mark.parametrize("command", [["simulate", "--ranker", "rules", "--episodes", "1"],
                                     ["benchmark", "--rankers", "rules", "--episodes", "2"]])
def test_a_suite_named_like_markup_prints_literally(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text('name: "[/nope] [link=http://evil]x[/link]\\e[2J"\nfaults: {memory_leak: 1}\nincidents: 2\n')
    res = runner.invoke(app, [*command, "--suite", str(path)])
    assert res.exit_code == 0, res.output  # was MarkupError: closing tag '[/nope]' doesn't match any open tag
    assert "[/nope]" in res.output and "[link=http://evil]x[/link][2J" in res.output
    assert "\x1b" not in res.output
