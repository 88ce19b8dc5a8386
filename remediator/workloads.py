"""Which workload an object belongs to, read from the cluster's objects, never from names.

A pod names its controller in `metadata.ownerReferences`; the controller may have one of its
own. Followed to the top, that chain is the workload an SRE would act on:

    Pod -> ReplicaSet -> Deployment            Pod -> ReplicaSet -> Rollout (argoproj.io)
    Pod -> StatefulSet                         Pod -> DaemonSet
    Pod -> Job -> CronJob                      Pod -> Job (run by hand)

Anything else (a bare pod, a bare ReplicaSet, a ReplicationController, another operator's
custom resource) is no workload of `WORKLOAD_KINDS`: the answer is None, and the agent
escalates instead of guessing. An intermediate owner that was not observed (the ReplicaSet of
a pod, the Job of a CronJob's pod) also gives None: its name says nothing certain about its own
owner.

The functions take a `Lookup` (kind, namespace, name -> the object or None) so that the
snapshot builder and the live observer resolve from the same objects the same way.

    >>> rs = {"kind": "ReplicaSet", "metadata": {"name": "cart-5d4f", "namespace": "shop",
    ...       "ownerReferences": [{"kind": "Deployment", "name": "cart", "controller": True}]}}
    >>> pod = {"kind": "Pod", "metadata": {"name": "cart-5d4f-x2k4q", "namespace": "shop",
    ...        "ownerReferences": [{"kind": "ReplicaSet", "name": "cart-5d4f", "controller": True}]}}
    >>> workload_of(pod, lambda kind, ns, name: rs if (kind, name) == ("ReplicaSet", "cart-5d4f") else None)
    ObjectRef(kind='Deployment', namespace='shop', name='cart')
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from remediator.actions import ObjectRef

__all__ = [
    "INTERMEDIATE_KINDS", "WORKLOAD_KINDS", "Lookup", "claims_of", "controller_ref", "pod_template",
    "revisions_owned", "scale_target", "services_named_in_env", "template_labels", "workload_of",
]

K8sObject = Mapping[str, Any]
Lookup = Callable[[str, str, str], "K8sObject | None"]
_Obj = TypeVar("_Obj", bound=Mapping[str, Any])

#: Every kind the agent can tie an incident to (`Snapshot.workload.kind`, `Snapshot.workload_kind`).
#: The executor acts on a subset of them (`remediator.actions.WORKLOAD_KINDS`); an incident on any
#: other kind is observed with its real kind, and what cannot act on it is denied by the guards.
WORKLOAD_KINDS: tuple[str, ...] = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Rollout")
#: Owners that sit between a pod and its workload.
INTERMEDIATE_KINDS: tuple[str, ...] = ("ReplicaSet", "Job")
ARGO_GROUP = "argoproj.io"
# Controllers an ownerReference without the `controller` field (objects written by hand, the
# simulator's) is taken to be, as kubectl treats built-in controllers.
_CONTROLLER_KINDS = frozenset({"ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Deployment",
                               "ReplicationController", "Rollout"})
# The one owner each intermediate kind may lead to, and the workload it then is.
_PARENTS: Mapping[str, tuple[str, ...]] = {"ReplicaSet": ("Deployment", "Rollout"), "Job": ("CronJob",)}


def _meta(obj: K8sObject | None) -> Mapping[str, Any]:
    meta = (obj or {}).get("metadata") or {}
    return meta if isinstance(meta, Mapping) else {}


def controller_ref(obj: K8sObject) -> Mapping[str, Any] | None:
    """The ownerReference of the object's controller: the one with `controller: true`; where no
    reference carries the field, the first whose kind is a built-in controller (or a Rollout)."""
    refs = [r for r in _meta(obj).get("ownerReferences") or () if isinstance(r, Mapping)]
    marked = [r for r in refs if r.get("controller") is True]
    if marked:
        return marked[0]
    if any("controller" in r for r in refs):
        return None  # references that say they are not the controller: nothing controls it
    return next((r for r in refs if r.get("kind") in _CONTROLLER_KINDS), None)


def _kind_of(ref: Mapping[str, Any]) -> str | None:
    """The workload kind an ownerReference names; a `Rollout` only of Argo's group."""
    kind = str(ref.get("kind", ""))
    if kind == "Rollout":
        api_version = str(ref.get("apiVersion", ARGO_GROUP))
        return kind if api_version.split("/")[0] == ARGO_GROUP else None
    return kind if kind in WORKLOAD_KINDS or kind in INTERMEDIATE_KINDS else None


def workload_of(obj: K8sObject, get: Lookup) -> ObjectRef | None:
    """The workload `obj` (a Pod, ReplicaSet, Job or a workload itself) belongs to, by its
    controllers' ownerReferences, or None when the chain leads to no kind of `WORKLOAD_KINDS`."""
    ns = str(_meta(obj).get("namespace", ""))
    kind, name = str(obj.get("kind", "")), str(_meta(obj).get("name", ""))
    if kind == "Pod":
        ref = controller_ref(obj)
        if ref is None or (kind := _kind_of(ref) or "") == "":
            return None
        name = str(ref.get("name", ""))
        if kind in INTERMEDIATE_KINDS:
            owner = get(kind, ns, name)
            if owner is None:
                return None  # not observed: its own owner is unknown
            obj = owner
    if kind in INTERMEDIATE_KINDS:
        ref = controller_ref(obj)
        parent = _kind_of(ref) if ref is not None else None
        if parent in _PARENTS[kind]:
            return ObjectRef(str(parent), ns, str(ref.get("name", ""))) if ref is not None else None
        # A Job run by hand is the workload; a ReplicaSet of no Deployment is not one we know.
        return ObjectRef("Job", ns, name) if kind == "Job" and ref is None else None
    return ObjectRef(kind, ns, name) if kind in WORKLOAD_KINDS else None


def pod_template(obj: K8sObject | None) -> Mapping[str, Any]:
    """The pod template of a workload of any kind (a CronJob's is in its jobTemplate)."""
    spec = (obj or {}).get("spec") or {}
    if str((obj or {}).get("kind", "")) == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template") or {}
    return template if isinstance(template, Mapping) else {}


def template_labels(obj: K8sObject | None) -> Mapping[str, str]:
    return _meta(pod_template(obj)).get("labels") or {}



def claims_of(obj: K8sObject | None, pods: Iterable[K8sObject] = ()) -> list[str]:
    """The PersistentVolumeClaims the workload mounts, in order: its pod template's volumes, then
    those its pods mount (a StatefulSet's claims from volumeClaimTemplates, `<template>-<pod>`)."""
    out: list[str] = []
    specs = [pod_template(obj).get("spec") or {}] + [p.get("spec") or {} for p in pods]
    for spec in specs:
        for volume in spec.get("volumes") or ():
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and str(claim) not in out:
                out.append(str(claim))
    # A StatefulSet's pods not observed: the controller names each claim `<template>-<set>-<ordinal>`.
    if obj is not None and obj.get("kind") == "StatefulSet":
        name = str(_meta(obj).get("name", ""))
        replicas = int(((obj.get("spec") or {}).get("replicas")) or 0)
        for template in (obj.get("spec") or {}).get("volumeClaimTemplates") or ():
            base = str(_meta(template).get("name", ""))
            for ordinal in range(replicas):
                claim = f"{base}-{name}-{ordinal}"
                if base and claim not in out:
                    out.append(claim)
    return out


def scale_target(hpa: K8sObject) -> ObjectRef | None:
    """The workload an HorizontalPodAutoscaler scales (its scaleTargetRef), if of `WORKLOAD_KINDS`."""
    ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
    kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
    if kind == "Rollout" and str(ref.get("apiVersion", ARGO_GROUP)).split("/")[0] != ARGO_GROUP:
        return None
    return ObjectRef(kind, str(_meta(hpa).get("namespace", "")), name) if kind in WORKLOAD_KINDS and name else None


def revisions_owned(owner: ObjectRef, objects: Iterable[_Obj]) -> list[_Obj]:
    """The revision objects of a workload: a Deployment's or Rollout's ReplicaSets, a StatefulSet's
    or DaemonSet's ControllerRevisions (by their controller reference)."""
    kind = {"Deployment": "ReplicaSet", "Rollout": "ReplicaSet",
            "StatefulSet": "ControllerRevision", "DaemonSet": "ControllerRevision"}.get(owner.kind)
    out = []
    for obj in objects:
        if obj.get("kind") != kind or _meta(obj).get("namespace") != owner.namespace:
            continue
        ref = controller_ref(obj) if kind == "ReplicaSet" else next(
            (r for r in _meta(obj).get("ownerReferences") or () if r.get("kind") == owner.kind), None)
        if ref is not None and ref.get("kind") == owner.kind and ref.get("name") == owner.name:
            out.append(obj)
    return out



# Environment variables whose value is a `host[:port]` (an address); any value with a scheme is a URL.
_ADDRESS_ENV = re.compile(r"(_ADDR|_ADDRESS|_HOST|_HOSTNAME|_SERVICE|_ENDPOINT|_URL|_URI)$")
# A URL's host (RFC 3986: scheme://[userinfo@]host[:port]...); the core parses it without an I/O library.
_URL_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)")


def services_named_in_env(obj: K8sObject | None, namespace: str) -> list[tuple[str, str]]:
    """The (namespace, name) of every Service the pod template's environment names: values of
    `*_ADDR`, `*_SERVICE_HOST`, ... (`cartservice:7070`) and URLs (`http://cart.shop.svc.cluster.local/`),
    as cluster DNS reads them: `svc`, `svc.ns`, `svc.ns.svc[.cluster domain]`. Only literal values
    count (not `valueFrom`); IP addresses name no Service. Whether such a Service exists is the
    caller's to check: an external host (`api.example.com`) names none there."""
    spec = pod_template(obj).get("spec") or {}
    out: list[tuple[str, str]] = []
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        for env in container.get("env") or ():
            name, value = str(env.get("name", "")), env.get("value")
            if not isinstance(value, str) or not value:
                continue
            if "://" in value:
                m = _URL_HOST.match(value)
                host = m.group(1).strip("[]") if m else ""
            elif _ADDRESS_ENV.search(name.upper()):
                host = value.split("/")[0].rsplit(":", 1)[0] if value.count(":") <= 1 else ""
            else:
                continue
            found = _service_of_host(host.lower(), namespace)
            if found is not None and found not in out:
                out.append(found)
    return out


def _service_of_host(host: str, namespace: str) -> tuple[str, str] | None:
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    parts = host.split(".") if host else []
    if len(parts) == 1:
        return namespace, parts[0]
    if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
        return parts[1], parts[0]
    return None
