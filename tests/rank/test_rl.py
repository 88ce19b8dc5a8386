"""The RL ranker: only candidates come out, a saved model ranks as it did in memory, the fast
path agrees with SB3's own predict, and a model trained for another contract is refused."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from remediator.actions import ACTION_KINDS, PASSIVE_KINDS, ActionKind
from remediator.agent import decide
from remediator.cli import app
from remediator.encoding import ENCODER_VERSION, OBS_SIZE, encode, feature_names
from remediator.guards import GuardPolicy
from remediator.propose.base import Candidate
from remediator.propose.catalog import candidate_mask
from remediator.rank.rl import (
    DEFAULT_POLICY,
    METADATA_ENTRY,
    ModelMismatchError,
    PolicyError,
    RLRanker,
    guard_view,
    load_rl_ranker,
    metadata_path,
    read_metadata,
)
from remediator.snapshot import Snapshot
from remediator.train import PolicyView, TrainResult
from simulator.env import RemediationEnv
from simulator.incident import IncidentSpec

ALGOS = ("dqn", "ppo")
CHECK_CONTRACT = Path("/work/shared/tools/check-contract")
ENV = RemediationEnv("default")
_LOADED: dict[str, RLRanker] = {}


def _loaded(models: dict[str, TrainResult], algo: str) -> RLRanker:
    if algo not in _LOADED:
        _LOADED[algo] = load_rl_ranker(str(models[algo].model_path), algo=algo)
    return _LOADED[algo]


def _walk(seed: int, steps: int) -> tuple[Snapshot, list[Candidate], np.ndarray]:
    """An incident `steps` random proposed actions in: its snapshot, candidates and observation."""
    obs, _ = ENV.reset(seed=seed)
    rng = random.Random(seed)
    for _ in range(steps):
        kinds = np.flatnonzero(ENV.action_masks())
        nobs, _, term, trunc, _ = ENV.step(int(rng.choice(list(kinds))))
        if term or trunc:
            break
        obs = nobs
    assert ENV.snapshot is not None
    return ENV.snapshot, list(ENV.candidates), obs


def _situations(n: int = 12) -> list[tuple[Snapshot, list[Candidate], np.ndarray]]:
    return [_walk(100 + i, i % 4) for i in range(n)]


@pytest.mark.parametrize("algo", ALGOS)
def test_saved_model_ranks_as_the_trained_one(tiny_models: dict[str, TrainResult], algo: str) -> None:
    res = tiny_models[algo]
    live = RLRanker(res.model, res.metadata, name=algo)
    loaded = _loaded(tiny_models, algo)
    for snap, cands, _ in _situations():
        a, b = live.rank(snap, cands), loaded.rank(snap, cands)
        assert [r.candidate for r in a] == [r.candidate for r in b]
        assert [r.score for r in a] == pytest.approx([r.score for r in b], abs=1e-6)


@pytest.mark.parametrize("algo", ALGOS)
def test_fast_path_agrees_with_sb3_predict(tiny_models: dict[str, TrainResult], algo: str) -> None:
    ranker = _loaded(tiny_models, algo)
    model = ranker.model
    for _, cands, obs in _situations():
        mask = np.zeros(len(ACTION_KINDS), dtype=bool)
        for c in cands:
            mask[ACTION_KINDS.index(c.kind)] = True
        if algo == "ppo":
            expected, _ = model.predict(obs, action_masks=mask, deterministic=True)
            probs = model.policy.get_distribution(torch.as_tensor(obs[None]), action_masks=mask[None])
            np.testing.assert_allclose(ranker.action_scores(obs, mask)[mask],
                                       probs.distribution.probs.detach().numpy()[0][mask], rtol=1e-5)
        else:
            full = np.ones(len(ACTION_KINDS), dtype=bool)
            unmasked, _ = model.predict(obs, deterministic=True)
            assert ranker.act(obs, full) == int(unmasked)
            with torch.no_grad():
                q = model.q_net(torch.as_tensor(obs[None])).numpy()[0]
            expected = int(np.flatnonzero(mask)[np.argmax(q[mask])])
        assert ranker.act(obs, mask) == int(expected)
        assert mask[ranker.act(obs, mask)]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(0, 5), algo=st.sampled_from(ALGOS),
       keep=st.lists(st.booleans(), min_size=len(ACTION_KINDS), max_size=len(ACTION_KINDS)))
def test_chosen_action_is_always_a_candidate(tiny_models: dict[str, TrainResult], seed: int, steps: int,
                                             algo: str, keep: list[bool]) -> None:
    ranker = _loaded(tiny_models, algo)
    snap, cands, _ = _walk(seed, steps)
    # Also a proposer that offered fewer kinds than the policy would like: never a non-candidate.
    subset = [c for i, c in enumerate(cands) if keep[i % len(keep)]] or cands[:1]
    ranked = ranker.rank(snap, subset)
    assert len(ranked) == len(subset)
    assert {id(r.candidate) for r in ranked} == {id(c) for c in subset}
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert ENV.incident is not None
    choice = decide(snap, subset, ranker, ENV.incident.executed, ENV.policy, ENV.incident.now)
    assert choice.candidate is None or any(choice.candidate is c for c in subset)


@pytest.mark.parametrize("algo", ALGOS)
def test_kinds_the_guards_refuse_show_as_denied_and_rank_last(tiny_models: dict[str, TrainResult],
                                                              algo: str) -> None:
    """In kube-system every change is refused: the policy sees that from the first decision."""
    service = ENV.topology.services[1].name
    ENV.reset(options={"incident": IncidentSpec(("bad_config_rollout",), service, seed=5, variant="kube_system")})
    assert ENV.snapshot is not None
    snap, cands = ENV.snapshot, list(ENV.candidates)
    active = [c for c in cands if c.kind not in PASSIVE_KINDS]
    assert active, "the runbook offers changes"
    obs, mask = guard_view(snap, cands, GuardPolicy())
    names = feature_names()
    assert all(obs[names.index(f"denied:{c.kind.value}")] == 1.0 for c in active)
    assert {ACTION_KINDS[i] for i in np.flatnonzero(mask)} <= set(PASSIVE_KINDS)
    ranked = _loaded(tiny_models, algo).rank(snap, cands)
    assert {r.candidate.kind for r in ranked[:len(cands) - len(active)]} <= set(PASSIVE_KINDS)
    # Without guards the view is the plain encoding and the proposer's mask.
    plain, full = guard_view(snap, cands, None)
    np.testing.assert_array_equal(plain, encode(snap))
    np.testing.assert_array_equal(full, candidate_mask(cands))


def test_training_sees_what_the_ranker_sees() -> None:
    env = PolicyView(RemediationEnv("default"), escalate_cost_s=120.0)
    obs, _ = env.reset(seed=9)
    inner = env.unwrapped
    view, mask = guard_view(inner.snapshot, inner.candidates, inner.policy)
    np.testing.assert_array_equal(obs, view)
    np.testing.assert_array_equal(env.action_masks(), mask)
    escalate = ACTION_KINDS.index(ActionKind.ESCALATE)
    _, reward, terminated, _, info = env.step(escalate)
    assert info["kind"] == "escalate" and terminated
    assert reward <= -120.0 * inner.reward_scale


def _rewrite(src: Path, dst: Path, **changes: object) -> Path:
    """A copy of the model whose embedded and side-car metadata say something else."""
    doc = {**json.loads(metadata_path(src).read_text()), **changes}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename != METADATA_ENTRY:
                zout.writestr(item, zin.read(item.filename))
        zout.writestr(METADATA_ENTRY, json.dumps(doc))
    metadata_path(dst).write_text(json.dumps(doc))
    return dst


@pytest.mark.parametrize(("field", "found"), [
    ("encoder_version", ENCODER_VERSION + 1),
    ("actions", [k.value for k in reversed(ACTION_KINDS)]),
    ("actions", [k.value for k in ACTION_KINDS][:-1]),
    ("obs_size", OBS_SIZE + 4),
])
def test_a_model_for_another_contract_is_refused(tiny_models: dict[str, TrainResult], tmp_path: Path,
                                                 field: str, found: object) -> None:
    bad = _rewrite(tiny_models["ppo"].model_path, tmp_path / "other.zip", **{field: found})
    with pytest.raises(ModelMismatchError) as err:
        load_rl_ranker(str(bad))
    assert err.value.field == field and err.value.found == found
    assert "retrain" in str(err.value) and str(bad) in str(err.value)


def test_unusable_policy_files_are_refused_with_the_reason(tiny_models: dict[str, TrainResult],
                                                            tmp_path: Path) -> None:
    ppo = tiny_models["ppo"].model_path
    with pytest.raises(PolicyError, match="this is a ppo model, not dqn"):
        load_rl_ranker(str(ppo), algo="dqn")
    with pytest.raises(PolicyError, match="no such file"):
        load_rl_ranker(str(tmp_path / "missing.zip"))
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    with pytest.raises(PolicyError, match="not a zip"):
        load_rl_ranker(str(junk))
    bare = tmp_path / "bare.zip"
    with zipfile.ZipFile(ppo) as zin, zipfile.ZipFile(bare, "w") as zout:
        for item in zin.infolist():
            if item.filename != METADATA_ENTRY:
                zout.writestr(item, zin.read(item.filename))
    with pytest.raises(PolicyError, match="no metadata"):
        load_rl_ranker(str(bare))
    # The side-car copy alone is enough (a model saved by hand next to its metadata).
    shutil.copy(metadata_path(ppo), metadata_path(bare))
    assert read_metadata(bare).algo == "ppo"


def test_benchmark_runs_trained_models_and_keeps_the_contract(tiny_models: dict[str, TrainResult],
                                                              tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    dqn, ppo = (str(tiny_models[a].model_path) for a in ALGOS)
    res = CliRunner().invoke(app, ["benchmark", "--suite", "eval", "--seed", "7", "--episodes", "4",
                                   "--rankers", f"rules,rl,dqn:{dqn},ppo:{ppo}", "--json", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert set(doc["rankers"]) == {"rules", "rl", f"dqn:{dqn}", f"ppo:{ppo}"}
    assert all(r["unsafe_executed"] == 0 for r in doc["rankers"].values())
    check = subprocess.run([sys.executable, str(CHECK_CONTRACT), "benchmark", str(out)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_shipped_policy_fits_this_code_and_says_how_it_was_made() -> None:
    ranker = load_rl_ranker(None)
    meta = ranker.metadata
    assert ranker.name == "rl" and meta.algo in ALGOS
    assert meta.encoder_version == ENCODER_VERSION and meta.obs_size == OBS_SIZE
    assert not meta.suite.startswith("eval")
    assert meta.command.startswith("remediator train ") and f"--seed {meta.seed}" in meta.command
    reproduce = (DEFAULT_POLICY.parent / "REPRODUCE.md").read_text()
    assert meta.command in reproduce
    assert DEFAULT_POLICY.stat().st_size < 5 * 1024 * 1024
