"""Ray, for more than one core or one machine: the only module that imports `ray` (an optional extra).

* `RayRunner` runs a benchmark's incidents as Ray tasks, a shard of consecutive incidents per
  task. Each incident's result depends on that incident alone (`remediator.benchmark`), so the
  report equals the local one whatever the split; `nodes` records where the shards ran.
* `sweep` trains several policies with Ray Tune (seeds x hyperparameter variants), scores each
  on the validation suite (never an evaluation suite) and keeps the one with the lowest MTTR,
  with the command that trains that winner alone in its metadata.

Local by default (`ray.init()` starts Ray on this machine); `address` joins a running cluster
(`ray start --head` on one machine, `ray start --address HEAD:PORT` on the others). Install
with `pip install 'remediator[ray]'`.
"""

from __future__ import annotations

import contextlib
import functools
import shlex
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ray

from remediator.benchmark import RankerFactory, ranker_factory, run_benchmark, run_specs
from remediator.guards import GuardPolicy
from remediator.propose.base import Proposer
from remediator.rank.rl import ALGOS, embed_metadata, read_metadata
from remediator.train import TrainingError, curve_path, resolve_hyperparams, train
from simulator.incident import IncidentSpec
from simulator.runner import EpisodeResult
from simulator.suite import Suite, SuiteError, load_suite

__all__ = ["SWEEP_VARIANTS", "RayRunner", "SweepResult", "Trial", "ray_session", "sweep", "validation_suite"]

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of the block: joined at `address`, else started on this machine.
    A session that was already up (a test's, a notebook's) is used and left running."""
    if ray.is_initialized():
        yield
        return
    kw: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address:
        kw["address"] = address
        if address.rsplit(":", 1)[0] in _LOOPBACK:
            kw["_node_ip_address"] = "127.0.0.1"  # else Ray swaps loopback for the machine's address
    else:
        kw.update(num_cpus=num_cpus, include_dashboard=False)
    ray.init(**kw)
    try:
        yield
    finally:
        ray.shutdown()


def _node_id() -> str:
    return str(ray.get_runtime_context().get_node_id())


@ray.remote(num_cpus=1)
def _run_shard(suite: Suite, ranker: str | RankerFactory, seed: int, specs: Sequence[IncidentSpec],
               proposer: Proposer, policy: GuardPolicy) -> tuple[str, list[EpisodeResult]]:
    import torch

    torch.set_num_threads(1)  # one task, one core: the cluster's CPU count is the parallelism
    factory = _worker_factory(ranker, seed) if isinstance(ranker, str) else ranker
    return _node_id(), run_specs(suite, factory, seed, specs, proposer, policy)


@functools.lru_cache(maxsize=16)
def _worker_factory(ranker: str, seed: int) -> RankerFactory:
    """A worker process builds each ranker once (a policy loads in a fraction of a second) and
    reuses it for every shard it runs, as the local run uses one ranker for every incident."""
    return ranker_factory(ranker, seed)[1]


@dataclass
class RayRunner:
    """Runs a ranker's incidents as Ray tasks (`remediator.benchmark.EpisodeRunner`).

    `workers` caps the tasks in flight (default: the cluster's CPUs); `shard` is the number of
    incidents per task (default: enough for about four tasks per worker)."""

    workers: int | None = None
    shard: int | None = None
    nodes: set[str] = field(default_factory=set)

    def run(self, suite: Suite, ranker: str | RankerFactory, seed: int, specs: Sequence[IncidentSpec],
            proposer: Proposer, policy: GuardPolicy,
            progress: Callable[[int], None] | None = None) -> list[EpisodeResult]:
        if not ray.is_initialized():
            raise RuntimeError("RayRunner needs a Ray session (remediator.distributed.ray_session)")
        workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
        size = self.shard or max(1, -(-len(specs) // (4 * workers)))
        shards = [list(specs[i:i + size]) for i in range(0, len(specs), size)]
        # The suite, proposer and policy go to the object store once, not once per task.
        suite_ref, proposer_ref, policy_ref = ray.put(suite), ray.put(proposer), ray.put(policy)
        results: dict[int, list[EpisodeResult]] = {}
        pending: dict[Any, int] = {}
        queue = list(enumerate(shards))
        while queue or pending:
            while queue and len(pending) < workers:
                i, chunk = queue.pop(0)
                pending[_run_shard.remote(suite_ref, ranker, seed, chunk, proposer_ref, policy_ref)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                node, episodes = ray.get(ref)
                self.nodes.add(node)
                results[i] = episodes
                if progress:
                    progress(len(episodes))
        return [e for i in range(len(shards)) for e in results[i]]


# ---------------------------------------------------------------------------- training sweeps

# Hyperparameter variants a sweep tries, each with successive seeds: trial i runs variant
# i % len(variants) with seed `seed + i // len(variants)`. The first is the defaults, so one
# trial is the plain `remediator train` run.
SWEEP_VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    "dqn": ({}, {"learning_rate": 2.5e-4}, {"learning_rate": 1e-3}, {"exploration_fraction": 0.2}),
    "ppo": ({}, {"learning_rate": 1e-4}, {"learning_rate": 1e-3}, {"ent_coef": 0.0}),
}


@dataclass(frozen=True)
class Trial:
    index: int
    seed: int
    hyperparams: dict[str, Any]
    command: str  # trains this trial's policy alone, locally
    mttr_s: float | None = None
    success_rate: float | None = None
    noop_incident_actions: float | None = None
    node: str = ""
    train_wall_s: float | None = None


@dataclass(frozen=True)
class SweepResult:
    winner: Trial
    trials: list[Trial]
    model_path: Path
    validation: str
    nodes: set[str]
    wall_s: float


@ray.remote(num_cpus=0)
class _PolicyStore:
    """Holds each finished trial's model files until the driver picks one: a trial may run on a
    machine whose disk the driver cannot read."""

    def __init__(self) -> None:
        self.files: dict[int, dict[str, bytes]] = {}

    def put(self, index: int, files: dict[str, bytes]) -> None:
        self.files[index] = files

    def get(self, index: int) -> dict[str, bytes]:
        return self.files[index]


def _command(algo: str, suite: str, timesteps: int, seed: int, out: Path, n_envs: int,
             hyperparams: Mapping[str, Any]) -> str:
    argv = ["remediator", "train", "--algo", algo, "--suite", suite, "--timesteps", str(timesteps),
            "--seed", str(seed), "--out", str(out)]
    if n_envs != 1:
        argv += ["--envs", str(n_envs)]
    for k, v in hyperparams.items():
        argv += ["--hp", f"{k}={v}"]
    return " ".join(shlex.quote(a) for a in argv)


def _trial_fn(config: dict[str, Any]) -> None:
    """One Tune trial: train, score on the validation suite, hand the model to the store."""
    import torch
    from ray import tune

    torch.set_num_threads(1)
    job, t = config["job"], config["trial"]
    with tempfile.TemporaryDirectory(prefix="remediator-trial-") as tmp:
        out = Path(tmp) / "policy.zip"
        result = train(job["algo"], job["suite"], job["timesteps"], t["seed"], out, n_envs=job["n_envs"],
                       hyperparams=t["hp"], command=t["command"], curve=True)
        spec = f"{job['algo']}:{out}"
        report = run_benchmark(load_suite(job["validation"]), [spec], seed=job["validation_seed"],
                               episodes=job["validation_episodes"])
        r = report["rankers"][spec]
        files = {p.suffix: p.read_bytes() for p in (out, curve_path(out)) if p.is_file()}
        store = ray.get_actor(job["store"])
        ray.get(store.put.remote(t["index"], files))
    tune.report({"mttr_s": r["mttr_s"], "success_rate": r["success_rate"],
                 "noop_incident_actions": r["noop_incident_actions"], "unsafe_executed": r["unsafe_executed"],
                 "train_wall_s": result.metadata.train_wall_s, "node": _node_id(), "index": t["index"]})


def validation_suite(suite: str, validation: str) -> Suite:
    """The suite that picks a sweep's winner: neither an evaluation suite nor the training suite."""
    try:
        val, trained_on = load_suite(validation), load_suite(suite)
    except SuiteError as e:
        raise TrainingError(str(e)) from e
    if val.name.startswith("eval"):
        raise TrainingError(f"validation suite {val.name!r} is held out for evaluation; select on another "
                            "(the shipped `validation` suite)")
    if val.name == trained_on.name:
        raise TrainingError(f"the validation suite {val.name!r} is the training suite; select on another")
    return val


def sweep(algo: str, suite: str, timesteps: int, seed: int, out: Path | str, trials: int, *,
          hyperparams: Mapping[str, Any] | None = None, n_envs: int = 1, validation: str = "validation",
          validation_seed: int | None = None, validation_episodes: int | None = None,
          storage: Path | None = None, command: str = "") -> SweepResult:
    """Train `trials` policies with Ray Tune, keep the one with the lowest validation MTTR at `out`.

    Runs in the current Ray session (`ray_session`). The validation suite must be neither the
    training suite nor an evaluation suite: choosing on `eval` would make its figures a
    measure of the choice."""
    out = Path(out).resolve()
    if trials < 1:
        raise TrainingError(f"--trials must be at least 1, not {trials}")
    if algo not in ALGOS:
        raise TrainingError(f"unknown algorithm {algo!r}; use one of: {', '.join(ALGOS)}")
    val = validation_suite(suite, validation)
    variants = SWEEP_VARIANTS[algo]
    plan = []
    for i in range(trials):
        hp = {**(hyperparams or {}), **variants[i % len(variants)]}
        resolve_hyperparams(algo, hp)  # a bad name fails here, before any trial starts
        s = seed + i // len(variants)
        plan.append({"index": i, "seed": s, "hp": hp, "command": _command(algo, suite, timesteps, s, out, n_envs, hp)})

    from ray import tune

    store_name = f"remediator-policies-{time.time_ns()}"
    store = _PolicyStore.options(name=store_name).remote()  # type: ignore[attr-defined]
    job = {"algo": algo, "suite": suite, "timesteps": timesteps, "n_envs": n_envs, "validation": validation,
           "validation_seed": val.seed if validation_seed is None else validation_seed,
           "validation_episodes": validation_episodes, "store": store_name}
    storage = (storage or out.parent / f"{out.stem}.tune").resolve()
    start = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(_trial_fn, {"cpu": max(1, n_envs)}),
        param_space={"job": job, "trial": tune.grid_search(plan)},
        tune_config=tune.TuneConfig(metric="mttr_s", mode="min"),
        run_config=tune.RunConfig(name="sweep", storage_path=str(storage), verbose=0))
    grid = tuner.fit()
    wall = time.perf_counter() - start
    done: list[Trial] = []
    for k in range(len(grid)):
        res = grid[k]
        if res.error is not None:
            raise TrainingError(f"a sweep trial failed: {res.error}")
        m, t = res.metrics or {}, (res.config or {})["trial"]
        done.append(Trial(t["index"], t["seed"], t["hp"], t["command"], float(m["mttr_s"]), float(m["success_rate"]),
                          float(m["noop_incident_actions"]), str(m["node"]), float(m["train_wall_s"])))
    done.sort(key=lambda x: x.index)
    winner = min(done, key=lambda x: (x.mttr_s or 0.0, x.index))
    files = ray.get(store.get.remote(winner.index))
    ray.kill(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(files[".zip"])
    if ".png" in files:
        curve_path(out).write_bytes(files[".png"])
    meta = read_metadata(out)
    selection = {"validation_suite": val.name, "validation_seed": job["validation_seed"],
                 "validation_episodes": validation_episodes or val.incidents, "metric": "mttr_s",
                 "winner": winner.index, "sweep_command": command, "sweep_wall_s": round(wall, 1),
                 "trials": [{"index": x.index, "seed": x.seed, "hyperparams": x.hyperparams,
                             "validation_mttr_s": x.mttr_s, "validation_success_rate": x.success_rate}
                            for x in done]}
    embed_metadata(out, replace(meta, extra={**meta.extra, "selection": selection}))
    return SweepResult(winner, done, out, val.name, {x.node for x in done}, wall)
