"""`remediator train`: train the ranker's policy in the simulator (DQN or MaskablePPO)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from remediator.commands.common import console, fail, inert, out

# YAML 1.1 reads "5e-4" as a string; a learning rate written that way is a number.
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _parse_hp(items: list[str]) -> dict[str, Any]:
    import yaml

    hp: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--hp expects KEY=VALUE (for example --hp learning_rate=1e-4), not {item!r}")
        try:
            hp[key.strip()] = float(value) if _FLOAT.fullmatch(value.strip()) else yaml.safe_load(value)
        except yaml.YAMLError as e:
            fail(f"--hp {key}: cannot read {value!r}: {e}")
    return hp


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        algo: Annotated[str, typer.Option("--algo", help="dqn (Stable-Baselines3) or ppo (MaskablePPO)")],
        suite: Annotated[str, typer.Option("--suite", help="a shipped suite name or a YAML file; not eval")],
        timesteps: Annotated[int, typer.Option("--timesteps", help="training budget in decisions")],
        seed: Annotated[int, typer.Option("--seed", help="seed for the policy and the incidents")],
        out_path: Annotated[Path, typer.Option("--out", help="the model to write (FILE.zip); FILE.json and "
                                                              "FILE.png are written next to it")],
        envs: Annotated[int, typer.Option("--envs", help="environments stepped together")] = 1,
        subprocess: Annotated[bool, typer.Option("--subprocess/--in-process",
                                                 help="step the environments in worker processes")] = False,
        hp: Annotated[list[str] | None, typer.Option("--hp", help="hyperparameter override KEY=VALUE "
                                                                  "(repeatable)")] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="a progress bar")] = True,
    ) -> None:
        """Train a policy on simulated incidents; writes the model, its metadata and a training curve."""
        from remediator.rank.rl import ALGOS
        from remediator.train import TrainingError, resolve_hyperparams
        from remediator.train import train as run_training

        if algo not in ALGOS:
            fail(f"--algo must be one of {', '.join(ALGOS)}, not {algo!r}")
        if timesteps < 1:
            fail(f"--timesteps must be a positive number of decisions, not {timesteps}")
        if out_path.suffix != ".zip":
            fail(f"--out must name a .zip file, not {str(out_path)!r}")
        if envs < 1:
            fail(f"--envs must be at least 1, not {envs}")
        overrides = _parse_hp(hp or [])
        try:
            resolve_hyperparams(algo, overrides)
        except TrainingError as e:
            fail(str(e))
        # The command as one would type it again, from the parsed options (not sys.argv, which
        # is a test runner's or a wrapper's own under CliRunner or `python -m`).
        argv = ["remediator", "train", "--algo", algo, "--suite", suite, "--timesteps", str(timesteps),
                "--seed", str(seed), "--out", str(out_path)]
        if envs != 1:
            argv += ["--envs", str(envs)]
        if subprocess:
            argv.append("--subprocess")
        for item in hp or []:
            argv += ["--hp", item]
        command = " ".join(shlex.quote(a) for a in argv)
        console.print(f"training {algo} on suite {inert(suite)} for {timesteps} steps, seed {seed}", highlight=False)
        try:
            result = run_training(algo, suite, timesteps, seed, out_path, n_envs=envs, subprocess=subprocess,
                                  progress_bar=progress, hyperparams=overrides, command=command)
        except TrainingError as e:
            fail(str(e))
        m = result.metadata
        extra = m.extra
        out.print(f"wrote {inert(result.model_path)} ({m.algo}, {m.timesteps} steps, {m.train_wall_s:.0f}s wall, "
                  f"{extra.get('episodes', 0)} episodes)")
        out.print(f"wrote {inert(result.metadata_path)}")
        if result.curve_path is not None:
            out.print(f"wrote {inert(result.curve_path)}")
        if extra.get("final_mttr_s") is not None:
            out.print(f"last 10% of training episodes: MTTR {extra['final_mttr_s'] / 60:.2f} min, "
                      f"recovered {extra['final_success_rate']:.1%}")
