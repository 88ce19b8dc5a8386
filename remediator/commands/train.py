"""`remediator train`: train the ranker's policy in the simulator (DQN or MaskablePPO)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from remediator.commands.common import console, fail, inert, out, ray_adapter

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
        out_path: Annotated[Path, typer.Option("--out", help="the model to write (FILE.zip); FILE.json and "
                                                              "FILE.png are written next to it")],
        algo: Annotated[str | None, typer.Option("--algo", help="dqn (Stable-Baselines3) or ppo (MaskablePPO)")]
        = None,
        suite: Annotated[str | None, typer.Option("--suite", help="a shipped suite name or a YAML file; not eval "
                                                                  "(--from-ledger: where to continue; default)")]
        = None,
        timesteps: Annotated[int | None, typer.Option("--timesteps", help="training budget in decisions "
                                                                          "(--from-ledger: in simulation after)")]
        = None,
        seed: Annotated[int | None, typer.Option("--seed", help="seed for the policy and the incidents")] = None,
        from_ledger: Annotated[Path | None, typer.Option("--from-ledger", help="update a policy from the "
                                                                               "transitions this SQLite ledger "
                                                                               "logged")] = None,
        from_traces: Annotated[Path | None, typer.Option("--from-traces", help="with --from-ledger: also the "
                                                                               "recorded courses of these traces")]
        = None,
        policy: Annotated[Path | None, typer.Option("--policy", help="with --from-ledger: the DQN policy to "
                                                                     "update (default: the shipped one)")] = None,
        envs: Annotated[int, typer.Option("--envs", help="environments stepped together")] = 1,
        subprocess: Annotated[bool, typer.Option("--subprocess/--in-process",
                                                 help="step the environments in worker processes")] = False,
        init: Annotated[Path | None, typer.Option("--init", help="continue training this policy (same "
                                                                 "algorithm and encoder) for --timesteps more")]
        = None,
        branches: Annotated[int, typer.Option("--branches", min=1, help="trajectories explored from each "
                                                                        "sampled incident's alert")] = 1,
        hp: Annotated[list[str] | None, typer.Option("--hp", help="hyperparameter override KEY=VALUE "
                                                                  "(repeatable)")] = None,
        progress: Annotated[bool, typer.Option("--progress/--no-progress", help="a progress bar")] = True,
        use_ray: Annotated[bool, typer.Option("--ray", help="a seed and hyperparameter sweep with Ray Tune, "
                                              "keeping the policy with the lowest validation MTTR")] = False,
        trials: Annotated[int, typer.Option("--trials", help="with --ray: how many policies to train")] = 4,
        address: Annotated[str | None, typer.Option("--address", help="with --ray: a Ray cluster's HEAD:PORT "
                                                    "(default: Ray on this machine)")] = None,
        validation: Annotated[str, typer.Option("--validation", help="with --ray: the suite that picks the "
                                                "winner (never an eval suite)")] = "validation",
        validation_episodes: Annotated[int | None, typer.Option("--validation-episodes", min=1,
                                                                help="with --ray: default the suite's count")] = None,
    ) -> None:
        """Train a policy on simulated incidents; writes the model, its metadata and a training curve.

        With --from-ledger, update a policy from the decisions and recovery times the ledger logged
        (offline pre-filling of the DQN's replay buffer), then continue in simulation."""
        if _learned_from_ledger(from_ledger, from_traces, policy, out_path, suite, timesteps, seed):
            return
        algo, suite, timesteps, seed = _required(algo, suite, timesteps, seed)
        from remediator.train import TrainingError, resolve_hyperparams
        from remediator.train import train as run_training

        if out_path.suffix != ".zip":
            fail(f"--out must name a .zip file, not {str(out_path)!r}")
        if envs < 1:
            fail(f"--envs must be at least 1, not {envs}")
        overrides = _parse_hp(hp or [])
        try:
            resolve_hyperparams(algo, overrides)
        except TrainingError as e:
            fail(str(e))
        argv = _argv(algo, suite, timesteps, seed, out_path, envs, subprocess, branches, init, hp or [])
        if use_ray:
            if branches != 1 or init is not None:
                fail("--branches and --init do not go with --ray: each trial trains a policy of its own")
            argv += ["--ray", "--trials", str(trials), "--validation", validation]
            argv += ["--address", address] if address else []
            argv += ["--validation-episodes", str(validation_episodes)] if validation_episodes else []
            command = " ".join(shlex.quote(a) for a in argv)
            _sweep(algo, suite, timesteps, seed, out_path, envs, overrides, trials, address, validation,
                   validation_episodes, command)
            return
        if trials != 4 or address or validation != "validation" or validation_episodes:
            fail("--trials, --address, --validation and --validation-episodes go with --ray")
        command = " ".join(shlex.quote(a) for a in argv)
        console.print(f"training {algo} on suite {inert(suite)} for {timesteps} steps, seed {seed}", highlight=False)
        try:
            result = run_training(algo, suite, timesteps, seed, out_path, n_envs=envs, subprocess=subprocess,
                                  progress_bar=progress, hyperparams=overrides, command=command,
                                  branches=branches, init=init)
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


def _argv(algo: str, suite: str, timesteps: int, seed: int, out_path: Path, envs: int, subprocess: bool,
          branches: int, init: Path | None, hp: list[str]) -> list[str]:
    """The command as one would type it again, from the parsed options (not sys.argv, which
    is a test runner's or a wrapper's own under CliRunner or `python -m`)."""
    argv = ["remediator", "train", "--algo", algo, "--suite", suite, "--timesteps", str(timesteps),
            "--seed", str(seed), "--out", str(out_path)]
    if envs != 1:
        argv += ["--envs", str(envs)]
    if subprocess:
        argv.append("--subprocess")
    if branches != 1:
        argv += ["--branches", str(branches)]
    if init is not None:
        argv += ["--init", str(init)]
    for item in hp:
        argv += ["--hp", item]
    return argv


def _sweep(algo: str, suite: str, timesteps: int, seed: int, out_path: Path, envs: int, overrides: dict[str, Any],
           trials: int, address: str | None, validation: str, validation_episodes: int | None, command: str) -> None:
    from remediator.train import TrainingError

    distributed = ray_adapter()
    console.print(f"sweeping {trials} {algo} trials on suite {inert(suite)}, {timesteps} steps each, chosen on "
                  f"suite {inert(validation)}", highlight=False)
    try:
        distributed.validation_suite(suite, validation)  # before Ray starts: a bad choice fails at once
        with distributed.ray_session(address):
            result = distributed.sweep(algo, suite, timesteps, seed, out_path, trials, hyperparams=overrides,
                                       n_envs=envs, validation=validation, validation_episodes=validation_episodes,
                                       command=command)
    except TrainingError as e:
        fail(str(e))
    except (ConnectionError, RuntimeError) as e:
        fail(f"--ray: cannot start or join Ray{f' at {address}' if address else ''}: {e}")
    for t in result.trials:
        mark = "  <== winner" if t is result.winner else ""
        out.print(f"trial {t.index}: seed {t.seed} {inert(t.hyperparams or 'defaults')}: validation MTTR "
                  f"{(t.mttr_s or 0) / 60:.2f} min, recovered {(t.success_rate or 0):.1%}{mark}", highlight=False)
    out.print(f"wrote {inert(result.model_path)} (trial {result.winner.index}; {len(result.nodes)} Ray node(s), "
              f"{result.wall_s:.0f}s wall)")
    out.print(f"the winner alone: {inert(result.winner.command)}", highlight=False)


def _learned_from_ledger(db: Path | None, traces: Path | None, policy: Path | None, out_path: Path,
                         suite: str | None, timesteps: int | None, seed: int | None) -> bool:
    """With --from-ledger: update the policy from it (and say so); without, refuse its companions."""
    if db is None:
        if traces is not None or policy is not None:
            fail("--from-traces and --policy go with --from-ledger")
        return False
    _from_ledger(db, traces, policy, out_path, suite or "default", 5_000 if timesteps is None else timesteps,
                 seed or 0)
    return True


def _required(algo: str | None, suite: str | None, timesteps: int | None, seed: int | None
              ) -> tuple[str, str, int, int]:
    """Training in simulation needs all four, and sane; only --from-ledger does without them."""
    if algo is None or suite is None or timesteps is None or seed is None:
        missing = [f for f, v in (("--algo", algo), ("--suite", suite), ("--timesteps", timesteps),
                                  ("--seed", seed)) if v is None]
        fail(f"missing option(s) {', '.join(missing)} (or give --from-ledger DB)")
    from remediator.rank.rl import ALGOS

    if algo not in ALGOS:
        fail(f"--algo must be one of {', '.join(ALGOS)}, not {algo!r}")
    if timesteps < 1:
        fail(f"--timesteps must be a positive number of decisions, not {timesteps}")
    return algo, suite, timesteps, seed


def _from_ledger(db: Path, traces: Path | None, policy: Path | None, out_path: Path, suite: str, timesteps: int,
                 seed: int) -> None:
    from remediator.finetune import Experience, finetune, transitions_from_ledger, transitions_from_traces
    from remediator.live.ledger import Ledger
    from remediator.rank.rl import PolicyError
    from remediator.replay.trace import TraceError, trace_paths
    from remediator.train import TrainingError

    if not db.is_file():
        fail(f"--from-ledger {db}: no such file")
    ledger = Ledger(db)
    try:
        experience = transitions_from_ledger(ledger.experience())
    finally:
        ledger.close()
    if traces is not None:
        try:
            extra = transitions_from_traces(trace_paths([traces]))
        except TraceError as e:
            fail(str(e))
        experience = Experience(experience.transitions + extra.transitions, experience.skipped + extra.skipped)
    argv = ["remediator", "train", "--from-ledger", str(db), "--out", str(out_path), "--suite", suite,
            "--timesteps", str(timesteps), "--seed", str(seed)]
    argv += ["--from-traces", str(traces)] if traces else []
    argv += ["--policy", str(policy)] if policy else []
    sources = {"ledger": str(db), "traces": str(traces) if traces else None,
               "command": " ".join(shlex.quote(a) for a in argv)}
    console.print(f"{len(experience.transitions)} logged transitions from {experience.episodes} incidents"
                  + (f" (left out: {inert(dict(experience.skipped))})" if experience.skipped else ""), highlight=False)
    try:
        result = finetune(experience, out_path, policy=policy, suite=suite, sim_timesteps=timesteps, seed=seed,
                          sources=sources)
    except (TrainingError, PolicyError) as e:
        fail(str(e))
    out.print(f"wrote {inert(result.model_path)} (from {inert(result.metadata.extra['fine_tuned']['from_policy'])}, "
              f"{len(experience.transitions)} logged transitions, then {timesteps} steps in {inert(suite)})")
