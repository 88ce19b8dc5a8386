"""`remediator train` through the real CLI: tiny budgets, every algorithm, and bad flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remediator.actions import ACTION_KINDS
from remediator.cli import app
from remediator.encoding import ENCODER_VERSION, OBS_SIZE
from remediator.rank.rl import METADATA_ENTRY, load_rl_ranker, read_metadata

runner = CliRunner()
TINY = {"ppo": ["--hp", "n_steps=128", "--hp", "batch_size=64", "--hp", "n_epochs=2"],
        "dqn": ["--hp", "learning_starts=64", "--hp", "batch_size=32"]}


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_train_writes_model_metadata_and_curve(tmp_path: Path, algo: str) -> None:
    out = tmp_path / "policies" / f"{algo}.zip"
    res = runner.invoke(app, ["train", "--algo", algo, "--suite", "default", "--timesteps", "256",
                              "--seed", "11", "--out", str(out), "--no-progress", *TINY[algo]])
    assert res.exit_code == 0, res.output
    meta_doc = json.loads(out.with_suffix(".json").read_text())
    assert meta_doc["algo"] == algo and meta_doc["suite"] == "default" and meta_doc["seed"] == 11
    assert meta_doc["timesteps"] == 256 and meta_doc["encoder_version"] == ENCODER_VERSION
    assert meta_doc["actions"] == [k.value for k in ACTION_KINDS] and meta_doc["obs_size"] == OBS_SIZE
    assert meta_doc["train_wall_s"] > 0 and "train" in meta_doc["command"]
    assert meta_doc["extra"]["episodes"] > 0
    assert read_metadata(out).to_json() == out.with_suffix(".json").read_text()  # embedded copy agrees
    import zipfile
    assert METADATA_ENTRY in zipfile.ZipFile(out).namelist()
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_rl_ranker(str(out), algo=algo).algo == algo


@pytest.mark.parametrize(("args", "needle"), [
    (["--algo", "a2c"], "--algo must be one of dqn, ppo"),
    (["--out", "model.pt"], "must name a .zip file"),
    (["--suite", "eval"], "held out for evaluation"),
    (["--suite", "nope"], "no suite named 'nope'"),
    (["--suite", "missing.yaml"], "does not exist"),
    (["--timesteps", "0"], "positive number"),
    (["--hp", "warp_factor=9"], "unknown ppo hyperparameter 'warp_factor'"),
    (["--hp", "learning_rate"], "KEY=VALUE"),
    (["--envs", "0"], "at least 1"),
    (["--branches", "0"], "--branches"),
    (["--init", "remediator/data/policy/policy.zip"], "this is a dqn model, not ppo"),
])
def test_bad_flags_exit_2_with_a_message(tmp_path: Path, args: list[str], needle: str) -> None:
    base = {"--algo": "ppo", "--suite": "default", "--timesteps": "64", "--seed": "0",
            "--out": str(tmp_path / "m.zip")}
    given = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["train"]
    for k, v in {**base, **given}.items():
        if k != "--hp":
            argv += [k, v]
    if "--hp" in given:
        argv += ["--hp", given["--hp"]]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert not (tmp_path / "m.zip").exists()


def test_missing_required_flag_exits_2() -> None:
    res = runner.invoke(app, ["train", "--algo", "ppo", "--suite", "default"])
    assert res.exit_code == 2
    assert "Missing option" in res.output


def test_init_continues_a_policy_and_counts_both_runs(tmp_path: Path) -> None:
    """--init goes on from the given weights (not from scratch), with this run's exploration, and
    the metadata adds the steps and names the policy it continued."""
    first = tmp_path / "first.zip"
    res = runner.invoke(app, ["train", "--algo", "dqn", "--suite", "default", "--timesteps", "128", "--seed", "2",
                              "--out", str(first), "--no-progress", *TINY["dqn"]])
    assert res.exit_code == 0, res.output
    second = tmp_path / "second.zip"
    res = runner.invoke(app, ["train", "--algo", "dqn", "--suite", "default", "--timesteps", "96", "--seed", "3",
                              "--out", str(second), "--no-progress", "--init", str(first), "--branches", "2",
                              "--hp", "exploration_initial_eps=0.1", "--hp", "no_fault_cost_s=900",
                              *TINY["dqn"]])
    assert res.exit_code == 0, res.output
    meta = json.loads(second.with_suffix(".json").read_text())
    assert meta["hyperparams"]["no_fault_cost_s"] == 900.0  # the env's price; SB3 never sees it
    assert meta["timesteps"] == 224 and meta["extra"]["continued_from"]["timesteps"] == 128
    assert meta["extra"]["continued_from"]["policy"] == str(first)
    assert meta["hyperparams"]["branches"] == 2 and meta["hyperparams"]["exploration_initial_eps"] == 0.1
    assert "--init" in meta["command"] and "--branches 2" in meta["command"]
    import torch
    a, b = load_rl_ranker(str(first)).model.q_net, load_rl_ranker(str(second)).model.q_net
    moved = [not torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True)]
    assert any(moved)
