"""RemediationPolicy specs against GuardPolicy, and the per-namespace book the loop judges with."""

from __future__ import annotations

from remediator.guards import GuardPolicy, Risk
from remediator.operator.policies import CLUSTER_ONLY, PolicyBook, check_policy


def test_a_policy_names_each_problem_by_its_key() -> None:
    check = check_policy({"allowed_namespaces": ["x"], "bogus": 1, "max_replicas": 0,
                          "freeze_windows": [{"start": "Fri 18:00", "end": "Mon 08:00"}, {"start": "x", "end": "y"}]},
                         GuardPolicy())
    assert not check.valid and check.overrides == {}
    assert check.errors[0] == "allowed_namespaces: is set in the operator's configuration only, not per namespace"
    assert check.errors[1].startswith("bogus: unknown field")
    assert "max_replicas: Input should be greater than or equal to 1" in check.errors
    assert [e for e in check.errors if e.startswith("freeze_windows[1]")] and \
        not [e for e in check.errors if e.startswith("freeze_windows[0]")]
    assert check_policy("nonsense", GuardPolicy()).errors == ("spec: must be a mapping, not str",)


def test_every_cluster_only_setting_is_refused() -> None:
    for key in sorted(CLUSTER_ONLY):
        value = getattr(GuardPolicy(), key)
        assert not check_policy({key: value}, GuardPolicy()).valid, key


def test_the_book_merges_valid_policies_in_name_order_and_ignores_invalid_ones() -> None:
    base = GuardPolicy(cooldown_s=300, dry_run=False)
    book = PolicyBook(base)
    book.put("shop", "b-late", {"cooldown_s": 60})
    book.put("shop", "a-early", {"cooldown_s": 900, "approval_risk": "low"})
    book.put("shop", "c-broken", {"max_replicas": 0})
    shop = book.for_namespace("shop")
    assert shop.cooldown_s == 60 and shop.approval_risk is Risk.LOW and shop.max_replicas == base.max_replicas
    assert book.for_namespace("web") is base
    book.remove("shop", "b-late")
    assert book.for_namespace("shop").cooldown_s == 900


def test_a_namespace_adds_a_dry_run_but_never_lifts_the_clusters() -> None:
    assert PolicyBook(GuardPolicy()).put("shop", "p", {"dry_run": True}).valid
    book = PolicyBook(GuardPolicy(dry_run=True))
    book.put("shop", "p", {"dry_run": False})
    assert book.for_namespace("shop").dry_run is True
