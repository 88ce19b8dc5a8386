"""Tiny trained policies shared by the RL ranker tests (a few seconds of training each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.train import TrainResult, train

# Budgets that exercise the whole pipeline (a PPO update, DQN gradient steps), not skill.
TINY = {"ppo": {"n_steps": 128, "batch_size": 64, "n_epochs": 2},
        "dqn": {"learning_starts": 64, "batch_size": 32, "target_update_interval": 64}}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainResult]:
    root: Path = tmp_path_factory.mktemp("models")
    return {algo: train(algo, "default", timesteps=256, seed=3, out=root / f"{algo}.zip", hyperparams=hp,
                        curve=False)
            for algo, hp in TINY.items()}
