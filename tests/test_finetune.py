"""Learning from the ledger: logged experience moves the shipped policy's ranking (real SB3, a few seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from remediator.actions import ACTION_INDEX, ActionKind, ObjectRef
from remediator.encoding import encode
from remediator.finetune import finetune, transitions_from_ledger
from remediator.incident import IncidentStatus
from remediator.live.ledger import Ledger, ReceivedAlert
from remediator.propose.catalog import CatalogProposer
from remediator.rank.rl import ModelMismatchError, PolicyMetadata, load_policy, load_rl_ranker, read_metadata
from remediator.snapshot import Alert
from simulator.incident import Incident
from simulator.suite import load_suite


def _state() -> tuple[np.ndarray, list[ActionKind], ActionKind, ActionKind]:
    """A simulated crash loop, the kinds offered, the policy's first choice and its runner-up."""
    s = load_suite("default")
    spec = next(sp for sp in s.specs(seed=5, count=60) if sp.fault == "bad_rollout" and not sp.variant)
    snap = Incident(s.topology.build(), spec, s.horizon_s).observe()
    kinds = [c.kind for c in CatalogProposer().propose(snap)]
    ranked = [r.candidate.kind for r in load_rl_ranker(None).rank(snap, CatalogProposer().propose(snap))]
    active = [k for k in ranked if k not in (ActionKind.NOOP, ActionKind.ESCALATE)]
    return encode(snap), kinds, active[0], active[1]


def _log(ledger: Ledger, n: int, obs: np.ndarray, kinds: list[ActionKind], chosen: ActionKind,
         recovery_s: float | None, start: int, status: IncidentStatus = IncidentStatus.RECOVERED) -> None:
    """Incidents as the live loop records them: the alert, the decision's snapshot and candidates, the outcome."""
    for i in range(start, start + n):
        alert = Alert("KubePodCrashLooping", {"namespace": "shop", "pod": f"cart-{i}"}, starts_at=1000.0 * i,
                      fingerprint=f"fp{i}")
        inc = ledger.record_alerts([ReceivedAlert(alert)], received_at=1000.0 * i)[0].incident_id
        assert inc is not None
        snap_id = ledger.record_snapshot(inc, 1000.0 * i + 30, purpose="decide", workload=None, signals={},
                                         observation=[float(x) for x in obs], missing=[], problem=None)
        rows = [{"action": k.value, "target": ObjectRef("Deployment", "shop", "cart"), "params": {}, "score": 0.0,
                 "proposer_score": 0.0, "source": "catalog", "rationale": "", "verdict": "allow", "reason": "",
                 "guard": "", "chosen": k is chosen} for k in kinds]
        ledger.record_candidates(inc, snap_id, rows)
        ledger.update_incident(inc, status=status, closed_at=1000.0 * i + (recovery_s or 1800.0),
                               recovery_s=recovery_s)


@pytest.mark.slow
def test_logged_faster_recoveries_move_the_ranking_towards_that_action(tmp_path: Path) -> None:
    obs, kinds, first, second = _state()
    model, _ = load_policy(Path(__file__).resolve().parents[1] / "remediator/data/policy/policy.zip")
    q0 = model.q_net(model.q_net.obs_to_tensor(obs[None, :])[0]).detach().numpy()[0]
    gap0 = q0[ACTION_INDEX[second]] - q0[ACTION_INDEX[first]]
    if gap0 > 0:  # `first` is whichever of the two the shipped policy prefers here
        first, second, gap0 = second, first, -gap0
    assert gap0 < 0
    ledger = Ledger(tmp_path / "ledger.db")
    _log(ledger, 12, obs, kinds, second, 45.0, 1)  # the runner-up recovered in 45 s, again and again
    _log(ledger, 12, obs, kinds, first, 1200.0, 100)  # the favourite took 20 minutes
    experience = transitions_from_ledger(ledger.experience())
    assert len(experience.transitions) == 24 and experience.episodes == 24
    out = tmp_path / "tuned.zip"
    result = finetune(experience, out, sim_timesteps=300, offline_steps=600, seed=0,
                      sources={"ledger": str(tmp_path / "ledger.db")})
    tuned, meta = load_policy(out)
    q1 = tuned.q_net(tuned.q_net.obs_to_tensor(obs[None, :])[0]).detach().numpy()[0]
    gap1 = q1[ACTION_INDEX[second]] - q1[ACTION_INDEX[first]]
    assert gap1 > gap0 + 1.0 and gap1 > 0  # towards the action that recovered faster, past the old favourite
    fine = meta.extra["fine_tuned"]
    assert fine["transitions"] == 24 and fine["chosen_kinds"] == {first.value: 12, second.value: 12}
    assert fine["ledger"].endswith("ledger.db") and fine["sim_timesteps"] == 300
    assert result.metadata == read_metadata(out)
    # A model on another encoder version still refuses to load.
    other = PolicyMetadata.from_dict({**meta.__dict__, "encoder_version": meta.encoder_version + 1})
    (tmp_path / "tuned.json").write_text(other.to_json())
    import zipfile
    stripped = tmp_path / "stripped.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(stripped, "w") as dst:
        for item in src.namelist():
            if item != "remediator.json":
                dst.writestr(item, src.read(item))
    stripped.with_suffix(".json").write_text(other.to_json())
    with pytest.raises(ModelMismatchError):
        load_policy(stripped)


def test_an_escalation_costs_what_the_simulator_charged_for_it_and_a_failure_the_horizon(tmp_path: Path) -> None:
    from remediator.finetune import ESCALATED_S, HORIZON_S, REWARD_SCALE
    from remediator.train import ESCALATE_COST_S

    obs, kinds, _, _ = _state()
    ledger = Ledger(tmp_path / "ledger.db")
    _log(ledger, 1, obs, kinds, ActionKind.ESCALATE, None, 1, IncidentStatus.ESCALATED)
    _log(ledger, 1, obs, kinds, ActionKind.RESTART_ROLLOUT, None, 2, IncidentStatus.FAILED)
    _log(ledger, 1, obs, kinds, ActionKind.RESTART_ROLLOUT, 330.0, 3)
    by = {t.episode: t for t in transitions_from_ledger(ledger.experience()).transitions}
    decided = 30.0  # _log's snapshot, 30 s after the alert
    assert by["ledger:1"].reward == pytest.approx(-(ESCALATED_S + ESCALATE_COST_S) * REWARD_SCALE)
    assert by["ledger:2"].reward == pytest.approx(-(HORIZON_S - decided) * REWARD_SCALE)
    assert by["ledger:3"].reward == pytest.approx(-(330.0 - decided) * REWARD_SCALE)
    assert ESCALATED_S + ESCALATE_COST_S < HORIZON_S - decided
