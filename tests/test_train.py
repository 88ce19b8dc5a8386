"""`remediator train` through the real CLI: tiny budgets, every algorithm, and bad flags."""

from __future__ import annotations

import json
from dataclasses import replace
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
                              "--seed", "11", "--out", str(out), "--no-progress", *TINY[algo],
                              "--hp", "escalate_cost_s=300"])
    assert res.exit_code == 0, res.output
    meta_doc = json.loads(out.with_suffix(".json").read_text())
    assert meta_doc["hyperparams"]["escalate_cost_s"] == 300.0  # the page's price: a reward setting
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
    (["--suite", "validation"], "held out for choosing between policies"),
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


def test_init_widens_a_policy_of_the_previous_encoder_version(tmp_path: Path) -> None:
    """A DQN trained on encoder version 2 (its 97 features) is carried into this version's layout:
    before any learning the widened model gives exactly the old Q-values, whatever the new features
    say; a model of an unknown version is refused with the reason."""
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import DQN

    from remediator.encoding import feature_names, widen_index
    from remediator.rank.rl import embed_metadata

    first = tmp_path / "v3.zip"
    res = runner.invoke(app, ["train", "--algo", "dqn", "--suite", "default", "--timesteps", "64", "--seed", "2",
                              "--out", str(first), "--no-progress", *TINY["dqn"]])
    assert res.exit_code == 0, res.output
    # Narrow it into a version-2 model: its input layer keeps the columns version 2 had.
    cols = widen_index(2)
    model = load_rl_ranker(str(first)).model

    class V2Spaces(gym.Env):  # type: ignore[type-arg]
        observation_space = gym.spaces.Box(0.0, 2.0, (len(cols),), np.float32)
        action_space = gym.spaces.Discrete(len(ACTION_KINDS))

    old = DQN("MlpPolicy", V2Spaces(), policy_kwargs={"net_arch": model.policy.net_arch}, device="cpu")
    state = model.policy.state_dict()
    for key, value in old.policy.state_dict().items():
        if value.shape != state[key].shape:
            state[key] = state[key][:, cols]
    old.policy.load_state_dict(state)
    v2 = tmp_path / "v2.zip"
    old.save(v2)
    meta = replace(read_metadata(first), encoder_version=2, obs_size=len(cols))
    embed_metadata(v2, meta)

    wide = tmp_path / "wide.zip"
    res = runner.invoke(app, ["train", "--algo", "dqn", "--suite", "default", "--timesteps", "32", "--seed", "3",
                              "--out", str(wide), "--no-progress", "--init", str(v2), *TINY["dqn"],
                              "--hp", "learning_starts=100000"])
    assert res.exit_code == 0, res.output
    assert read_metadata(wide).encoder_version == ENCODER_VERSION
    assert json.loads(wide.with_suffix(".json").read_text())["extra"]["continued_from"]["encoder_version"] == 2
    x = torch.rand(64, len(feature_names())) * 2
    with torch.no_grad():
        q_old = old.q_net(x[:, cols])
        q_wide = load_rl_ranker(str(wide)).model.q_net(x)
    assert torch.allclose(q_old, q_wide)

    embed_metadata(v2, replace(meta, encoder_version=1))
    res = runner.invoke(app, ["train", "--algo", "dqn", "--suite", "default", "--timesteps", "32", "--seed", "3",
                              "--out", str(tmp_path / "x.zip"), "--no-progress", "--init", str(v2), *TINY["dqn"]])
    assert res.exit_code == 2 and "encoder version 1 cannot be widened" in res.output
