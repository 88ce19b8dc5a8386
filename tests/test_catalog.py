"""The runbook catalog: the shipped files, the schema, and errors that say file, line and field."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml

from remediator.actions import ActionKind
from remediator.catalog import (
    ActionEntry,
    Catalog,
    Runbook,
    RunbookError,
    RunbookIssue,
    load_catalog,
    shipped_runbooks_dir,
    validate_dir,
)
from remediator.encoding import KNOWN_ALERTS
from remediator.snapshot import Alert

REPO = Path(__file__).resolve().parents[1]
RULES = REPO.parent / "shared" / "data" / "kube-prometheus-rules"

SIMULATED_ALERTS = (
    "KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentReplicasMismatch",
    "KubeDeploymentRolloutStuck", "KubeContainerWaiting", "KubeHpaMaxedOut", "CPUThrottlingHigh",
    "KubeNodeNotReady", "KubePersistentVolumeFillingUp", "KubeMemoryOvercommit",
    "ServiceErrorBudgetBurn", "ServiceLatencyHigh",
)

# Line numbers below refer to this text.
VALID = """\
alert: TestAlert
summary: A test runbook.
actions:
  - kind: restart_rollout
    when: always
  - kind: scale_out
    params: {factor: 1.5}
    limits: {factor: {min: 1.1, max: 2.0}}
verify: {consecutive: 4, timeout_s: 600}
reference: https://example.com/runbooks/testalert
"""


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def _replace_line(text: str, line: int, new: str | None) -> str:
    lines = text.splitlines()
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- shipped catalog


def test_shipped_catalog_loads_and_covers_every_simulated_alert() -> None:
    catalog = load_catalog()
    assert set(SIMULATED_ALERTS) <= set(catalog.alerts)
    assert set(KNOWN_ALERTS) <= set(catalog.alerts)  # the encoder's one-hot names
    assert validate_dir(shipped_runbooks_dir()) == []
    assert load_catalog() is catalog  # parsed once


def test_shipped_dir_is_the_repository_runbooks() -> None:
    shipped = sorted(p.name for p in shipped_runbooks_dir().glob("*.yaml"))
    assert shipped == sorted(p.name for p in (REPO / "runbooks").glob("*.yaml"))
    assert len(shipped) >= len(SIMULATED_ALERTS)


@pytest.mark.parametrize("alert", SIMULATED_ALERTS)
def test_shipped_runbook_is_complete(alert: str) -> None:
    runbook = load_catalog().get(alert)
    assert runbook is not None
    assert runbook.reference.startswith("https://")
    assert runbook.summary and runbook.verify.consecutive >= 1 and runbook.verify.timeout_s > 0
    assert ActionKind.ESCALATE in runbook.kinds  # every runbook says when to hand over
    for entry in runbook.actions:
        assert entry.when, f"{alert}: {entry.kind.value} says nothing about when it applies"
    # the file is named after the alert
    assert (shipped_runbooks_dir() / f"{alert}.yaml").is_file()


def test_memory_overcommit_only_escalates() -> None:
    runbook = load_catalog().get("KubeMemoryOvercommit")
    assert runbook is not None and runbook.kinds == (ActionKind.ESCALATE,)


def test_kube_prometheus_runbooks_name_real_alerts_and_their_runbook_urls() -> None:
    if not RULES.is_dir():
        pytest.fail(f"{RULES} is missing: the shared data must sit beside the repository (../shared/data)")
    urls: dict[str, set[str]] = {}
    for file in RULES.glob("*.yaml"):
        for group in yaml.safe_load(file.read_text())["spec"]["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    urls.setdefault(rule["alert"], set()).add(rule["annotations"].get("runbook_url", ""))
    for runbook in load_catalog():
        if runbook.alert.startswith("Service"):  # our own SLO alerts
            continue
        assert runbook.alert in urls, f"{runbook.alert} is not a kube-prometheus alert"
        assert runbook.reference in urls[runbook.alert]


# ---------------------------------------------------------------------------- schema


def test_valid_runbook_parses_with_defaults(tmp_path: Path) -> None:
    _write(tmp_path, "t.yaml", VALID + "match: {severity: critical}\n")
    _write(tmp_path, "u.yaml", """\
        alert: Other
        summary: Defaults fill in.
        actions: [{kind: raise_memory_limit}, {kind: restore_replicas}, {kind: raise_hpa_max}]
        verify: {consecutive: 1, timeout_s: 60}
        """)
    catalog = load_catalog(tmp_path)
    runbook = catalog.get("TestAlert")
    assert runbook is not None
    assert runbook.kinds == (ActionKind.RESTART_ROLLOUT, ActionKind.SCALE_OUT)
    assert runbook.actions[1].params.as_dict() == {"factor": 1.5}
    assert runbook.actions[0].params.as_dict() == {}
    other = catalog.get("Other")
    assert other is not None
    assert [e.params.as_dict() for e in other.actions] == [{"factor": 1.5}, {}, {"factor": 1.5}]
    assert catalog.source == tmp_path


def test_for_alert_matches_name_then_labels(tmp_path: Path) -> None:
    _write(tmp_path, "t.yaml", VALID + "match: {severity: critical}\n")
    catalog = load_catalog(tmp_path)
    assert catalog.for_alert(Alert("TestAlert", {"severity": "critical", "pod": "x"})) is not None
    assert catalog.for_alert(Alert("TestAlert", {"severity": "warning"})) is None
    assert catalog.for_alert(Alert("TestAlert", {})) is None
    assert catalog.for_alert(Alert("Unknown", {"severity": "critical"})) is None


def test_loader_reads_one_file_and_skips_hidden_entries(tmp_path: Path) -> None:
    # A ConfigMap volume: the files, plus the same files again under ..data and ..<timestamp>.
    _write(tmp_path, "t.yaml", VALID)
    _write(tmp_path / "..data", "t.yaml", VALID)
    _write(tmp_path / "..2024_01_01", "t.yaml", VALID)
    _write(tmp_path, ".draft.yaml", "alert: [broken")
    (tmp_path / "notes.md").write_text("not a runbook")
    assert load_catalog(tmp_path).alerts == ("TestAlert",)
    assert load_catalog(tmp_path / "t.yaml").alerts == ("TestAlert",)


def test_catalog_rejects_two_runbooks_for_one_alert_in_code() -> None:
    runbook = Runbook.model_validate(yaml.safe_load(VALID))
    with pytest.raises(ValueError, match="TestAlert"):
        Catalog((runbook, runbook))


def test_action_entry_violations_check_proposed_params() -> None:
    entry = ActionEntry.model_validate(
        {"kind": "scale_out", "limits": {"factor": {"min": 1.1, "max": 2.0}, "replicas": {"max": 10}}})
    assert entry.violations({"factor": 1.5}) == []
    assert entry.violations({"replicas": 4}) == []
    assert any("outside" in v for v in entry.violations({"factor": 5}))
    assert any("outside" in v for v in entry.violations({"replicas": 11}))
    assert any("not a number" in v for v in entry.violations({"factor": "2"}))
    assert any("whole number" in v for v in entry.violations({"replicas": 2.5}))
    assert any("does not take" in v for v in entry.violations({"factor": 1.5, "force": 1}))
    assert any("exactly one" in v for v in entry.violations({"factor": 1.5, "replicas": 3}))
    assert any("exactly one" in v for v in entry.violations({}))


# ---------------------------------------------------------------------------- errors

BROKEN = [
    # (id, line to replace (None: append), new text (None: delete), expected line, field, message part)
    ("yaml-syntax", 5, "    when: always: now", 5, "", "invalid YAML"),
    ("yaml-unclosed", 7, "    params: {factor: 1.5", 8, "", "invalid YAML"),
    ("unknown-field", 5, "    wen: always", 5, "actions[0].wen", "unknown field 'wen'"),
    ("unknown-top-field", 10, "refrence: https://x", 10, "refrence",
     "expected one of alert, match, summary, actions, verify, reference"),
    ("unknown-kind", 4, "  - kind: reboot_cluster", 4, "actions[0].kind",
     "'reboot_cluster' is not an action kind (one of noop, restart_rollout"),
    ("bad-param-type", 7, "    params: {factor: big}", 7, "actions[1].params.factor",
     "valid number, got 'big'"),
    ("quoted-number", 7, "    params: {factor: '1.5'}", 7, "actions[1].params.factor", "got '1.5'"),
    ("unknown-param", 7, "    params: {facter: 1.5}", 7, "actions[1].params.facter", "unknown field"),
    ("param-not-taken", 5, "    params: {factor: 1.5}", 5, "actions[0].params.factor",
     "restart_rollout does not take 'factor'"),
    ("factor-not-above-1", 7, "    params: {factor: 0.5}", 7, "actions[1].params.factor",
     "greater than 1"),
    ("default-outside-limits", 7, "    params: {factor: 3.0}", 7, "actions[1].params.factor",
     "outside its limits [1.1, 2]"),
    ("limits-inverted", 8, "    limits: {factor: {min: 2.5, max: 2.0}}", 8,
     "actions[1].limits.factor.min", "above max"),
    ("limit-unknown-param", 8, "    limits: {replica: {max: 3}}", 8, "actions[1].limits.replica",
     "no parameter 'replica'"),
    ("scale-out-both", 7, "    params: {factor: 1.5, replicas: 3}", 7, "actions[1].params",
     "exactly one of factor or replicas"),
    ("duplicate-kind", 4, "  - kind: scale_out", 6, "actions[1].kind", "already listed as actions[0]"),
    ("duplicate-key", 2, "summary: again\nsummary: A test runbook.", 3, "summary", "duplicate key"),
    ("missing-summary", 2, None, 1, "summary", "required field is missing"),
    ("missing-verify", 9, None, 1, "verify", "required field is missing"),
    ("missing-verify-field", 9, "verify: {consecutive: 4}", 9, "verify.timeout_s", "required"),
    ("bad-verify-type", 9, "verify: {consecutive: four, timeout_s: 600}", 9, "verify.consecutive",
     "valid integer"),
    ("action-not-mapping", 5, "  - restart_rollout", 5, "actions[1]", "expected a mapping"),
    ("bad-alert-name", 1, "alert: Test Alert", 1, "alert", "not a Prometheus alert name"),
    ("bad-reference", 10, "reference: example.com", 10, "reference", "not an http(s) URL"),
    ("match-not-string", 10, "match: {code: 500}", 10, "match.code", "valid string"),
]


@pytest.mark.parametrize(("line", "new", "want_line", "want_field", "want_message"),
                         [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_runbook_reports_file_line_and_field(tmp_path: Path, line: int, new: str | None,
                                                   want_line: int, want_field: str,
                                                   want_message: str) -> None:
    path = _write(tmp_path, "broken.yaml", _replace_line(VALID, line, new))
    issues = validate_dir(tmp_path)
    assert issues, "the broken runbook passed validation"
    match = [i for i in issues if i.path == want_field and want_message in i.message]
    assert match, f"no issue at {want_field!r} with {want_message!r} in {[str(i) for i in issues]}"
    assert match[0].file == str(path)
    assert match[0].line == want_line, str(match[0])
    with pytest.raises(RunbookError) as raised:
        load_catalog(tmp_path)
    assert raised.value.errors == issues


def test_empty_action_list(tmp_path: Path) -> None:
    lines = VALID.splitlines(keepends=True)
    _write(tmp_path, "t.yaml", "".join(lines[:2]) + "actions: []\n" + "".join(lines[8:]))
    (issue,) = validate_dir(tmp_path)
    assert (issue.line, issue.path) == (3, "actions")
    assert "at least 1" in issue.message


def test_issue_reads_like_a_compiler_error(tmp_path: Path) -> None:
    _write(tmp_path, "crash.yaml", _replace_line(VALID, 6, "  - kind: reboot_cluster"))
    (issue,) = validate_dir(tmp_path)
    assert str(issue).startswith(f"{tmp_path / 'crash.yaml'}:6: actions[1].kind: "
                                 "'reboot_cluster' is not an action kind (one of noop, ")
    assert RunbookIssue("a.yaml", 0, "", "gone").__str__() == "a.yaml: gone"


def test_duplicate_alert_across_files_names_both(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.yaml", VALID)
    second = _write(tmp_path, "b.yaml", "# the same alert again\n" + VALID)
    (issue,) = validate_dir(tmp_path)
    assert (issue.file, issue.line, issue.path) == (str(second), 2, "alert")
    assert "duplicate runbook for 'TestAlert'" in issue.message
    assert f"{first}:1" in issue.message


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    _write(tmp_path, "empty.yaml", "")
    _write(tmp_path, "list.yaml", "- alert: X\n")
    _write(tmp_path, "docs.yaml", VALID + "---\n" + VALID)
    issues = {Path(i.file).name: i for i in validate_dir(tmp_path)}
    assert "empty file" in issues["empty.yaml"].message
    assert "got a list" in issues["list.yaml"].message
    assert "invalid YAML" in issues["docs.yaml"].message


def test_validate_dir_collects_every_problem_in_every_file(tmp_path: Path) -> None:
    _write(tmp_path, "a_ok.yaml", VALID)
    _write(tmp_path, "b_syntax.yaml", "alert: [unclosed\n")
    _write(tmp_path, "c_many.yaml", """\
        alert: Many
        summary: Three problems in one file.
        actions:
          - kind: reboot_cluster
          - kind: scale_out
            params: {factor: big}
        verify: {consecutive: 0, timeout_s: 600}
        colour: blue
        """)
    _write(tmp_path, "d_dupe.yaml", VALID)
    issues = validate_dir(tmp_path)
    where = [(Path(i.file).name, i.line, i.path) for i in issues]
    assert where == [
        ("b_syntax.yaml", 2, ""),
        ("c_many.yaml", 4, "actions[0].kind"),
        ("c_many.yaml", 6, "actions[1].params.factor"),
        ("c_many.yaml", 7, "verify.consecutive"),
        ("c_many.yaml", 8, "colour"),
        ("d_dupe.yaml", 1, "alert"),
    ]
    with pytest.raises(RunbookError, match="6 problem"):
        load_catalog(tmp_path)


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    (issue,) = validate_dir(tmp_path / "nope")
    assert "no such file or directory" in issue.message
    (issue,) = validate_dir(tmp_path)
    assert "no runbook files" in issue.message


# ---------------------------------------------------------------------------- packaging


@pytest.mark.slow
def test_installed_wheel_ships_the_catalog(tmp_path: Path) -> None:
    """Build the wheel from a copy of the tree, unpack it and load the catalog from there."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy2(REPO / "pyproject.toml", src)
    for name in ("remediator", "simulator", "runbooks"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist"), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("remediator-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    assert (site / "remediator" / "data" / "runbooks" / "KubePodCrashLooping.yaml").is_file()
    probe = ("import remediator.catalog as c; cat = c.load_catalog(); "
             "print(c.__file__); print(','.join(cat.alerts))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", probe], cwd=site, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    where, alerts = run.stdout.split()
    assert Path(where).is_relative_to(site)
    assert set(SIMULATED_ALERTS) <= set(alerts.split(","))
