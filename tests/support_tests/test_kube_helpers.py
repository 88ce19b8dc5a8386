"""Pure helpers of tests/support/kube.py: URL parsing, selectors, patches, offline validation."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from kubernetes import client

from tests.support.kube import (
    ApiPath,
    label_selector_matches,
    merge_patch,
    parse_api_path,
    parse_label_selector,
    strategic_merge_patch,
    validate_manifest,
    validate_patch,
)

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [{"name": "app", "image": "web:1"}, {"name": "proxy", "image": "envoy:1"}]
            },
        },
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/api/v1/namespaces/shop/pods/web-1/eviction",
            ApiPath("", "v1", "pods", "shop", "web-1", "eviction"),
        ),
        (
            "/apis/apps/v1/namespaces/shop/deployments/web/scale",
            ApiPath("apps", "v1", "deployments", "shop", "web", "scale"),
        ),
        ("/apis/apps/v1/deployments", ApiPath("apps", "v1", "deployments")),
        ("/api/v1/nodes/node-1/status", ApiPath("", "v1", "nodes", None, "node-1", "status")),
        ("/api/v1/namespaces", ApiPath("", "v1", "namespaces")),
        ("/api/v1/namespaces/shop", ApiPath("", "v1", "namespaces", None, "shop")),
        ("/api/v1/namespaces/shop/status", ApiPath("", "v1", "namespaces", None, "shop", "status")),
        ("/apis/apps/v1", None),
        ("/api", None),
        ("/version", None),
        ("/healthz", None),
    ],
)
def test_parse_api_path(path: str, expected: ApiPath | None) -> None:
    assert parse_api_path(path) == expected


def test_label_selector_parsing() -> None:
    assert parse_label_selector("app=web, tier in (a,b),!canary,env!=prod,x") == [
        ("app", "=", frozenset({"web"})),
        ("tier", "in", frozenset({"a", "b"})),
        ("canary", "!", frozenset()),
        ("env", "!=", frozenset({"prod"})),
        ("x", "exists", frozenset()),
    ]
    with pytest.raises(ValueError):
        parse_label_selector("app=(web)")


def test_label_selector_objects() -> None:
    labels = {"app": "web", "tier": "front"}
    assert label_selector_matches({}, labels)
    assert not label_selector_matches(None, labels)
    assert label_selector_matches(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        },
        labels,
    )
    assert not label_selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels
    )


def test_strategic_merge_patch_directives() -> None:
    original = {
        "metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}},
        "spec": {"containers": [{"name": "app", "image": "1", "ports": [{"containerPort": 80}]}]},
    }
    before = copy.deepcopy(original)
    patched = strategic_merge_patch(
        original,
        {
            "metadata": {"finalizers": ["b", "a"], "labels": {"$patch": "replace", "z": "3"}},
            "spec": {
                "containers": [
                    {"name": "app", "ports": [{"containerPort": 81}]},
                    {"name": "new", "image": "n"},
                ]
            },
        },
    )
    assert patched == {
        "metadata": {"finalizers": ["a", "b"], "labels": {"z": "3"}},
        "spec": {
            "containers": [
                {"name": "app", "image": "1", "ports": [{"containerPort": 80}, {"containerPort": 81}]},
                {"name": "new", "image": "n"},
            ]
        },
    }
    assert original == before  # inputs are not mutated
    with pytest.raises(ValueError):
        strategic_merge_patch(original, {"spec": {"containers": [{"image": "no-name"}]}})


def test_merge_patch_rfc7386() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"b": None, "d": 3}, "l": [3]}) == {
        "a": {"c": 2, "d": 3},
        "l": [3],
    }


def test_kubernetes_validate_offline_for_objects_models_and_patches() -> None:
    validate_manifest(DEPLOYMENT)  # 1.33 by default, strict
    validate_manifest(DEPLOYMENT, "1.37")
    model = client.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=client.V1ObjectMeta(name="w"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"a": "b"}),
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")])
            ),
        ),
    )
    validate_manifest(model)

    restarted = validate_patch(
        DEPLOYMENT,
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}
                }
            }
        },
    )
    assert [c["name"] for c in restarted["spec"]["template"]["spec"]["containers"]] == ["app", "proxy"]
    validate_patch(
        DEPLOYMENT, [{"op": "replace", "path": "/spec/replicas", "value": 4}], "application/json-patch+json"
    )
    with pytest.raises(kubernetes_validate.ValidationError) as err:
        validate_patch(DEPLOYMENT, {"spec": {"replicas": "4"}}, "application/merge-patch+json")
    assert list(err.value.path) == ["spec", "replicas"]
    with pytest.raises(kubernetes_validate.ValidationError):  # a patch alone misses required fields
        validate_manifest({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 3}})
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_manifest({"apiVersion": "remediator.io/v1alpha1", "kind": "Remediation", "metadata": {}})
