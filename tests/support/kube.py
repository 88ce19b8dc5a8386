"""A Kubernetes API for tests: kmock's ``KubernetesEmulator`` plus what the executor needs.

No kube-apiserver can run here (DESIGN §11), so tests talk to kmock's in-memory
emulator over real HTTP on 127.0.0.1 with the official ``kubernetes`` client::

    with KubeServer() as kube:
        api = kube.api_client()                       # kubernetes.client.ApiClient
        apps = kubernetes.client.AppsV1Api(api)
        kube.seed(deployment_dict, pod_dict, ...)     # objects as plain dicts
        kube.inject_fault(409, times=2, method="PATCH", path="/apis/apps/v1/*")

kmock 0.8 natively stores objects (with history), serves GET, watch streams and
API discovery, and merges PATCH bodies as plain dicts. :class:`KubeEmulator`
routes every non-watch resource request itself (the store is still kmock's
``emulator.objects``) and adds, kept deliberately small:

* ``metadata.uid``, ``resourceVersion`` (one global counter), ``generation``,
  ``creationTimestamp``, ``generateName``, ``apiVersion``/``kind``;
  ``409 Conflict`` when a PUT/PATCH carries a stale ``resourceVersion`` and
  ``409 AlreadyExists`` on a second create; delete preconditions;
* PUT (replace), which kmock answers with 404;
* PATCH by ``Content-Type``: JSON patch, JSON merge patch (RFC 7386) and a
  strategic merge patch that merges the well-known keyed lists (containers by
  ``name``, ``env``, ``volumes``, ``volumeMounts``, ports, conditions, ...) and
  honours ``$patch: delete|replace``; SMP on a custom resource is a 415, as on
  a real API server; server-side apply is a 415 here;
* ``labelSelector`` (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``,
  ``!key``) and ``fieldSelector`` (``=``, ``==``, ``!=`` on any dotted path,
  e.g. ``spec.nodeName``) on lists; empty lists for known resources (kmock: 404);
* the ``status`` subresource (main-resource writes keep the old status, as on a
  real server) and the ``scale`` subresource (autoscaling/v1 ``Scale``) of
  Deployments, ReplicaSets and StatefulSets;
* ``pods/eviction`` honouring PodDisruptionBudgets (429 when no disruption is
  allowed, 500 when two PDBs match) and PDB ``status`` kept up to date, like
  the disruption controller;
* a PersistentVolumeClaim write whose ``spec.resources.requests.storage`` is below
  ``status.capacity.storage`` is a 422, as on a real API server (a volume never shrinks);
* ``dryRun=All`` on every write (query or DeleteOptions): validated and
  answered, nothing stored;
* fault injection: the next N requests matching a method/path answer
  409/429/5xx (with ``Retry-After`` if asked); a request log for assertions;
* CustomResourceDefinitions (``install_crd``: the chart's, tests/support/crds.py): their
  objects are validated against the CRD's schema and CEL rules (422), status by subresource;
* ValidatingAdmissionPolicies (``install_admission_policy``) evaluated with cel-python, with
  ``request.userInfo.username`` from the bearer token (``KubeEmulator.users``);
* optional offline schema validation of every stored built-in object with
  ``kubernetes-validate`` (``KubeEmulator(validate="1.33")``: 422 when invalid),
  plus :func:`validate_manifest` / :func:`validate_patch` for tests.

Not emulated: controllers (no ReplicaSets or Pods appear by themselves; seed
them), garbage collection of dependents, graceful pod termination (deletes are
immediate), admission/validation beyond the above, watch label selectors.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import fnmatch
import hashlib
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import attrs
import jsonpatch
import kmock
import kubernetes.client
import kubernetes.utils
import kubernetes_validate
import yaml

from tests.support.crds import AdmissionPolicy, CRInvalidWrite, ServedCRD

__all__ = [
    "BUILTIN_RESOURCES",
    "ApiPath",
    "Fault",
    "KubeEmulator",
    "KubeServer",
    "LoggedRequest",
    "ResourceSpec",
    "label_selector_matches",
    "merge_patch",
    "parse_api_path",
    "parse_label_selector",
    "strategic_merge_patch",
    "validate_manifest",
    "validate_patch",
]

# The Kubernetes version whose OpenAPI schemas validate objects (kubernetes-validate 1.37 ships 1.25-1.37).
DEFAULT_K8S_VERSION = "1.33"

# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class ResourceSpec:
    """What the emulator knows about one resource (``group/version/plural``)."""

    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    builtin: bool = True  # False for custom resources: no strategic merge patch


BUILTIN_RESOURCES: dict[str, ResourceSpec] = {
    "v1/pods": ResourceSpec("Pod", True, ("status", "eviction")),
    "v1/nodes": ResourceSpec("Node", False, ("status",)),
    "v1/namespaces": ResourceSpec("Namespace", False, ("status",)),
    "v1/events": ResourceSpec("Event"),
    "v1/persistentvolumeclaims": ResourceSpec("PersistentVolumeClaim", True, ("status",)),
    "v1/persistentvolumes": ResourceSpec("PersistentVolume", False, ("status",)),
    "v1/services": ResourceSpec("Service", True, ("status",)),
    "v1/configmaps": ResourceSpec("ConfigMap"),
    "v1/secrets": ResourceSpec("Secret"),
    "v1/serviceaccounts": ResourceSpec("ServiceAccount"),
    "apps/v1/deployments": ResourceSpec("Deployment", True, ("status", "scale")),
    "apps/v1/replicasets": ResourceSpec("ReplicaSet", True, ("status", "scale")),
    "apps/v1/statefulsets": ResourceSpec("StatefulSet", True, ("status", "scale")),
    "apps/v1/daemonsets": ResourceSpec("DaemonSet", True, ("status",)),
    "apps/v1/controllerrevisions": ResourceSpec("ControllerRevision"),
    "autoscaling/v2/horizontalpodautoscalers": ResourceSpec("HorizontalPodAutoscaler", True, ("status",)),
    "autoscaling/v1/horizontalpodautoscalers": ResourceSpec("HorizontalPodAutoscaler", True, ("status",)),
    "policy/v1/poddisruptionbudgets": ResourceSpec("PodDisruptionBudget", True, ("status",)),
    "batch/v1/jobs": ResourceSpec("Job", True, ("status",)),
    "batch/v1/cronjobs": ResourceSpec("CronJob", True, ("status",)),
    # Argo Rollouts' CRD, as a cluster running Argo serves it (a custom resource: no strategic merge).
    "argoproj.io/v1alpha1/rollouts": ResourceSpec("Rollout", True, ("status", "scale"), builtin=False),
    "events.k8s.io/v1/events": ResourceSpec("Event"),
    "coordination.k8s.io/v1/leases": ResourceSpec("Lease"),
    "storage.k8s.io/v1/storageclasses": ResourceSpec("StorageClass", False),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ResourceSpec("CustomResourceDefinition", False, ("status",)),
}


@dataclass(frozen=True)
class ApiPath:
    """A parsed resource URL: ``/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/{sub}]]``."""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None

    @property
    def key(self) -> str:
        return f"{self.group}/{self.version}/{self.plural}" if self.group else f"{self.version}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> kmock.resource:
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def qualified(self) -> str:  # as in API messages: deployments.apps, pods
        return f"{self.plural}.{self.group}" if self.group else self.plural


def parse_api_path(path: str) -> ApiPath | None:
    """Parse a resource URL; ``None`` for discovery, ``/version`` and non-API paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = None
    # /namespaces/{ns}/{plural}/... -- but /namespaces/{name}/status|finalize is the Namespace itself
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return ApiPath(group, version, rest[0], namespace, name, subresource)


# --------------------------------------------------------------------------- selectors

_SPLIT_COMMAS = re.compile(r",(?![^()]*\))")
_REQUIREMENT = re.compile(
    r"^\s*(?:!\s*(?P<absent>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w./-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)

Requirement = tuple[str, str, frozenset[str]]  # (key, op, values); op in = != in notin exists !


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse a ``labelSelector`` query string; raises ``ValueError`` when malformed."""
    requirements: list[Requirement] = []
    for part in _SPLIT_COMMAS.split(text):
        if not part.strip():
            continue
        m = _REQUIREMENT.match(part)
        if m is None:
            raise ValueError(f"unable to parse requirement: {part.strip()!r}")
        if m["absent"]:
            requirements.append((m["absent"], "!", frozenset()))
        elif m["op"]:
            requirements.append((m["key"], "!=" if m["op"] == "!=" else "=", frozenset([m["value"]])))
        elif m["setop"]:
            values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
            requirements.append((m["key"], m["setop"], values))
        else:
            requirements.append((m["key"], "exists", frozenset()))
    return requirements


def _requirements_match(requirements: Sequence[Requirement], labels: Mapping[str, str]) -> bool:
    for key, op, values in requirements:
        present = key in labels
        value = labels.get(key)
        ok = {
            "=": present and value in values,
            "in": present and value in values,
            "!=": not present or value not in values,
            "notin": not present or value not in values,
            "exists": present,
            "!": not present,
        }[op]
        if not ok:
            return False
    return True


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Does a ``LabelSelector`` object (matchLabels/matchExpressions) select ``labels``?

    ``None`` selects nothing, ``{}`` selects everything (policy/v1 semantics).
    """
    if selector is None:
        return False
    requirements: list[Requirement] = [(k, "=", frozenset([v])) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        requirements.append((expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or [])))
    return _requirements_match(requirements, labels)


def _selector_string(selector: Mapping[str, Any] | None) -> str:
    """``Scale.status.selector``: the matchLabels of a LabelSelector as ``k=v,k2=v2``."""
    labels = (selector or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _field_value(obj: Mapping[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_selector_matches(text: str, obj: Mapping[str, Any]) -> bool:
    for part in text.split(","):
        if not part.strip():
            continue
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if m is None:
            raise ValueError(f"invalid field selector: {part!r}")
        path, op, expected = m.groups()
        actual = _field_value(obj, path)
        if (actual == expected) != (op != "!="):
            return False
    return True


# --------------------------------------------------------------------------- patches

# Lists merged by a key in strategic merge patches (field name -> merge key; None = set of scalars).
# Real SMP uses per-type schemas; for the objects the executor touches the field names suffice.
STRATEGIC_MERGE_KEYS: dict[str, str | None] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "finalizers": None,
}


def merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge, ``None`` deletes, everything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(original) if isinstance(original, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    """A Kubernetes strategic merge patch, reduced to what the executor sends.

    Like a merge patch, except that the lists in :data:`STRATEGIC_MERGE_KEYS`
    merge item by item (``{"$patch": "delete", "name": x}`` removes one item) and
    ``{"$patch": "replace", ...}`` replaces a whole map;
    ``{"$deleteFromPrimitiveList/finalizers": [x]}`` removes scalars. Other ``$``
    directives (``$setElementOrder/...``, ``$retainKeys``) are ignored.
    """
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(original) if isinstance(original, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field_name = key.split("/", 1)[1]
            result[field_name] = [v for v in result.get(field_name) or [] if v not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in STRATEGIC_MERGE_KEYS and isinstance(result.get(key), list):
            merge_key = STRATEGIC_MERGE_KEYS[key]
            if key == "ports" and all(isinstance(i, Mapping) and "containerPort" not in i for i in result[key]):
                merge_key = "port"  # a Service's ports (ServicePort) merge by port, a container's by containerPort
            result[key] = _merge_list(result[key], value, merge_key)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(original: list[Any], patch: list[Any], merge_key: str | None) -> list[Any]:
    result = copy.deepcopy(original)
    if merge_key is None:  # a set of scalars (finalizers)
        return result + [v for v in patch if v not in result]
    for item in patch:
        if not isinstance(item, Mapping) or merge_key not in item:
            raise ValueError(f"strategic merge patch: list item without merge key {merge_key!r}: {item!r}")
        index = next((i for i, old in enumerate(result) if old.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append({k: v for k, v in item.items() if k != "$patch"})
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


# --------------------------------------------------------------------------- offline validation


def validate_manifest(
    obj: Mapping[str, Any] | object, version: str = DEFAULT_K8S_VERSION, *, strict: bool = True
) -> None:
    """Validate a built-in object (dict, or a client model) against the Kubernetes ``version`` schema.

    ``strict`` also rejects unknown fields (typos). Raises
    ``kubernetes_validate.ValidationError`` (``.message``, ``.path``) or
    ``kubernetes_validate.SchemaNotFoundError`` for kinds without a schema (custom resources).
    """
    data: dict[str, Any]
    if isinstance(obj, Mapping):
        data = dict(obj)
    else:  # a kubernetes.client model
        data = kubernetes.client.ApiClient().sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    kubernetes_validate.validate(data, version, strict=strict)


def validate_patch(
    original: Mapping[str, Any],
    patch: Any,
    content_type: str = "application/strategic-merge-patch+json",
    version: str = DEFAULT_K8S_VERSION,
) -> dict[str, Any]:
    """Apply ``patch`` to ``original`` as the API server would, validate the result, return it.

    A patch alone is not a valid object (required fields are missing), so this is
    how patches are checked: against the object they produce.
    """
    if content_type == "application/json-patch+json":
        result = jsonpatch.apply_patch(dict(original), list(patch))
    elif content_type == "application/merge-patch+json":
        result = merge_patch(original, patch)
    else:
        result = strategic_merge_patch(original, patch)
    validate_manifest(result, version)
    return dict(result)


# --------------------------------------------------------------------------- faults and the log


_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Fault:
    """The next ``remaining`` requests matching ``method``/``path`` answer ``status``.

    ``path`` is a glob (``fnmatch``: ``/apis/apps/v1/namespaces/*/deployments/web``) or a
    compiled regex (``search``); ``None`` matches every path. ``hits`` holds the
    ``time.monotonic()`` of each request answered, for backoff assertions.
    """

    status: int
    remaining: int = 1
    method: str | None = None
    path: str | re.Pattern[str] | None = None
    retry_after: float | None = None
    message: str | None = None
    hits: list[float] = field(default_factory=list)

    def matches(self, method: str, path: str) -> bool:
        if self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path is None:
            return True
        if isinstance(self.path, re.Pattern):
            return self.path.search(path) is not None
        return fnmatch.fnmatchcase(path, self.path)


@dataclass(frozen=True)
class LoggedRequest:
    """One request the emulator answered (``KubeEmulator.log``)."""

    method: str
    path: str
    query: Mapping[str, str]
    content_type: str
    body: Any  # parsed JSON, or None
    status: int
    at: float  # time.monotonic() when it arrived


def _k8s_error(status: int, message: str, *, reason: str | None = None, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(
        status=status,
        reason=reason or _REASONS.get(status, "Unknown"),
        message=message,
        details=details or {},
    )


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scaled(value: int | str, total: int) -> int:
    """IntOrString against ``total``; percentages round up (as the disruption controller does)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


# --------------------------------------------------------------------------- the emulator

Events = list[tuple[kmock.resource, dict[str, Any]]]


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the API semantics listed in the module docstring.

    ``strict_resources=True`` answers 404 for resources that are neither built in
    (:data:`BUILTIN_RESOURCES`) nor registered (:meth:`register_resource`), as an
    API server without the CRD would. ``validate="1.33"`` checks every built-in
    object before it is stored (create, replace, patch, status, scale) with
    ``kubernetes-validate`` in strict mode and answers 422 when it is invalid
    (about 40 ms a write).
    """

    strict_resources: bool = False
    validate: str | None = None  # a Kubernetes version, e.g. "1.33": validate every stored built-in object
    log: list[LoggedRequest] = attrs.field(factory=list, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _specs: dict[str, ResourceSpec] = attrs.field(factory=lambda: dict(BUILTIN_RESOURCES), init=False)
    _faults: list[Fault] = attrs.field(factory=list, init=False)
    _faults_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _crds: dict[str, tuple[ServedCRD, str]] = attrs.field(factory=dict, init=False)
    #: Bearer token -> user name, for admission (`request.userInfo.username`); unknown tokens are "test-user".
    users: dict[str, str] = attrs.field(factory=dict)
    _policies: list[AdmissionPolicy] = attrs.field(factory=list, init=False)
    _user: str = attrs.field(default="test-user", init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, spec in self._specs.items():
            self._declare(key, spec)

    # ----- configuration (safe from any thread)

    def register_resource(
        self, key: str, kind: str, *, namespaced: bool = True, subresources: Sequence[str] = ("status",)
    ) -> None:
        """Declare a custom resource, e.g. ``("remediator.io/v1alpha1/remediations", "Remediation")``."""
        spec = ResourceSpec(kind, namespaced, tuple(subresources), builtin=False)
        self._specs[key] = spec
        self._declare(key, spec)

    def install_crd(self, crd: ServedCRD | Path | Mapping[str, Any]) -> ServedCRD:
        """Serve a CustomResourceDefinition (a file, a dict or a `ServedCRD`): every served version
        is registered, and every write is checked against its schema and CEL rules (422 when refused)."""
        if isinstance(crd, Path):
            crd = ServedCRD.from_file(crd)
        elif not isinstance(crd, ServedCRD):
            crd = ServedCRD.from_dict(dict(crd))
        for version in crd.versions:
            key = crd.key(version)
            self.register_resource(key, crd.kind, namespaced=crd.namespaced, subresources=crd.subresources[version])
            self._crds[key] = (crd, version)
        return crd

    def install_admission_policy(self, policy: Mapping[str, Any]) -> None:
        """Enforce a ValidatingAdmissionPolicy on writes of the resources it matches (see `AdmissionPolicy`)."""
        self._policies.append(AdmissionPolicy(copy.deepcopy(dict(policy))))

    def _admit(self, target: ApiPath, obj: dict[str, Any], old: dict[str, Any] | None, subresource: bool) -> None:
        resource = target.plural + ("/status" if subresource else "")
        operation = "CREATE" if old is None else "UPDATE"
        for policy in self._policies:
            if policy.matches(target.group, target.version, resource, operation):
                refused = policy.refusal(obj, old, self._user, operation)
                if refused is not None:
                    raise _k8s_error(refused[0], refused[1])

    def _check_cr(self, target: ApiPath, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        served = self._crds.get(target.key)
        if served is None:
            return
        crd, version = served
        try:
            crd.check(version, obj, old)
        except CRInvalidWrite as e:
            raise _k8s_error(
                422, f'{crd.kind}.{crd.group} "{obj["metadata"].get("name")}" is invalid: {e.where}: {e.message}',
                reason="Invalid", name=obj["metadata"].get("name"), group=crd.group, kind=crd.kind,
                causes=[{"reason": "FieldValueInvalid", "message": e.message, "field": e.where}],
            ) from None

    def _declare(self, key: str, spec: ResourceSpec) -> None:  # for kmock's discovery endpoints
        verbs = {"create", "delete", "get", "list", "patch", "update", "watch"}
        self.resources[key] = kmock.ResourceInfo(
            kind=spec.kind, namespaced=spec.namespaced, verbs=verbs, subresources=set(spec.subresources)
        )

    def inject_fault(
        self,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> Fault:
        """Make the next ``times`` matching requests fail with ``status`` (see :class:`Fault`)."""
        fault = Fault(status, times, method, path, retry_after, message)
        with self._faults_lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._faults_lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    fault.hits.append(time.monotonic())
                    return fault
        return None

    # ----- HTTP entry point

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        at = time.monotonic()
        body = await raw_request.read()
        path = raw_request.path
        target = parse_api_path(path)
        response: aiohttp.web.StreamResponse
        fault = self._take_fault(raw_request.method, path)
        if fault is not None:
            message = fault.message or f"injected fault {fault.status}"
            if fault.retry_after is None:
                error = _k8s_error(fault.status, message)
            else:
                error = _k8s_error(fault.status, message, retryAfterSeconds=math.ceil(fault.retry_after))
            response = await self._render_error(error)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(math.ceil(fault.retry_after))
        elif path.rstrip("/") == "/version":  # the client asks /version/, kmock only knows /version
            major, minor = (self.validate or DEFAULT_K8S_VERSION).split(".")[:2]
            response = aiohttp.web.json_response(
                {
                    "major": major,
                    "minor": minor,
                    "gitVersion": f"v{major}.{minor}.0",
                    "gitCommit": "emulator",
                    "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.24",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }
            )
        elif target is None or raw_request.query.get("watch") in ("true", "1"):
            response = await super().__call__(raw_request)  # discovery, watch streams, kmock DSL
        else:
            try:
                data = json.loads(body) if body else None
            except ValueError:
                data = None
            try:
                async with self._lock:
                    token = raw_request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                    self._user = self.users.get(token, "test-user")
                    events: Events = []
                    status, payload = self._dispatch(raw_request, target, data, events)
                    for resource, event in events:
                        await self._buses[resource].put(event)
                response = aiohttp.web.json_response(payload, status=status)
            except kmock.KubernetesError as e:
                response = await self._render_error(e)
            except Exception as e:  # a bug here must show up as a 500 with its message
                response = await self._render_error(_k8s_error(500, f"emulator error: {e!r}"))
        self.log.append(
            LoggedRequest(
                raw_request.method,
                path,
                dict(raw_request.query),
                raw_request.content_type,
                _json_or_none(body),
                response.status,
                at,
            )
        )
        return response

    # ----- routing

    def _dispatch(self, raw: aiohttp.web.BaseRequest, target: ApiPath, data: Any, events: Events) -> tuple[int, Any]:
        spec = self._spec(target)
        dry_run = self._dry_run(raw, target, data)
        method = raw.method.upper()
        if target.name is None:
            if method == "GET":
                return 200, self._list(target, spec, raw)
            if method == "POST":
                return 201, self._create(target, spec, _require_dict(data), dry_run, events)
            raise _k8s_error(405, f"{method} is not supported on a collection by the emulator")
        sub = target.subresource
        if sub is None:
            if method == "GET":
                return 200, self._read(target)
            if method == "PUT":
                return 200, self._replace(target, spec, _require_dict(data), dry_run, events)
            if method == "PATCH":
                old = self._read(target)
                new = self._patched(old, raw, data, spec)
                return 200, self._update(target, spec, old, new, dry_run, events)
            if method == "DELETE":
                return 200, self._delete(target, data, dry_run, events)
        elif sub == "status" and sub in spec.subresources:
            if method == "GET":
                return 200, self._read(target)
            if method in ("PUT", "PATCH"):
                old = self._read(target)
                new = _require_dict(data) if method == "PUT" else self._patched(old, raw, data, spec)
                self._check_resource_version(target, old, new)
                return 200, self._update(target, spec, old, new, dry_run, events, status_only=True)
        elif sub == "scale" and sub in spec.subresources:
            return 200, self._scale(target, spec, raw, data, dry_run, events)
        elif sub == "eviction" and target.key == "v1/pods" and method == "POST":
            return 201, self._evict(target, data, dry_run, events)
        raise _k8s_error(404, f"the server could not find the requested resource ({method} {raw.path})")

    def _spec(self, target: ApiPath) -> ResourceSpec:
        spec = self._specs.get(target.key)
        if spec is not None:
            if spec.namespaced and target.namespace is None and target.name is not None:
                raise _k8s_error(404, f"{target.qualified} is namespaced: use /namespaces/{{ns}}/...")
            return spec
        if self.strict_resources:
            raise _k8s_error(404, f"the server could not find the requested resource ({target.key})")
        return ResourceSpec(target.plural.capitalize(), target.namespace is not None, ("status",), builtin=False)

    @staticmethod
    def _dry_run(raw: aiohttp.web.BaseRequest, target: ApiPath, data: Any) -> bool:
        values = list(raw.query.getall("dryRun", []))
        options: Any = None  # DeleteOptions in a DELETE body or in an Eviction
        if raw.method.upper() == "DELETE":
            options = data
        elif target.subresource == "eviction" and isinstance(data, Mapping):
            options = data.get("deleteOptions")
        if isinstance(options, Mapping):
            values += list(options.get("dryRun") or [])
        for value in values:
            if value != "All":
                raise _k8s_error(400, f'Unsupported value: "{value}": supported values: "All"')
        return bool(values)

    # ----- object store (called with self._lock held)

    def _current(self, resource: kmock.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (resource, namespace, name)
        if key in self._objects and not self._objects[key].deleted:
            return copy.deepcopy(self._objects[key].raw)
        return None

    def _read(self, target: ApiPath) -> dict[str, Any]:
        assert target.name is not None
        obj = self._current(target.resource, target.namespace, target.name)
        if obj is None:
            raise _k8s_error(
                404,
                f'{target.qualified} "{target.name}" not found',
                name=target.name,
                group=target.group,
                kind=target.plural,
            )
        return obj

    def _store(self, resource: kmock.resource, obj: dict[str, Any], event: str, events: Events) -> None:
        meta = obj["metadata"]
        key = (resource, meta.get("namespace"), meta["name"])
        if key in self._objects:
            self._objects[key].history.append(copy.deepcopy(obj))
        else:
            self._objects[key] = copy.deepcopy(obj)
        events.append((resource, {"type": event, "object": copy.deepcopy(obj)}))

    def _remove(self, resource: kmock.resource, obj: dict[str, Any], events: Events) -> None:
        meta = obj["metadata"]
        self._objects[resource, meta.get("namespace"), meta["name"]].delete()
        events.append((resource, {"type": "DELETED", "object": copy.deepcopy(obj)}))

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _objects_of(self, resource: kmock.resource, namespace: str | None) -> list[dict[str, Any]]:
        found = []
        for (res, ns, _name), obj in self._objects.items():
            if res == resource and not obj.deleted and (namespace is None or ns == namespace):
                found.append(copy.deepcopy(obj.raw))
        found.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        return found

    # ----- verbs

    def _list(self, target: ApiPath, spec: ResourceSpec, raw: aiohttp.web.BaseRequest) -> dict[str, Any]:
        items = self._objects_of(target.resource, target.namespace)
        try:
            if label_text := raw.query.get("labelSelector"):
                requirements = parse_label_selector(label_text)
                items = [o for o in items if _requirements_match(requirements, o["metadata"].get("labels") or {})]
            if field_text := raw.query.get("fieldSelector"):
                items = [o for o in items if _field_selector_matches(field_text, o)]
        except ValueError as e:
            raise _k8s_error(400, str(e)) from None
        return {
            "apiVersion": target.api_version,
            "kind": f"{spec.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _create(
        self, target: ApiPath, spec: ResourceSpec, obj: dict[str, Any], dry_run: bool, events: Events, *,
        seeding: bool = False,
    ) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if spec.namespaced:
            if target.namespace is None:
                raise _k8s_error(405, f"{target.qualified} is namespaced: POST to /namespaces/{{ns}}/...")
            if meta.get("namespace") not in (None, target.namespace):
                raise _k8s_error(
                    400,
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = target.namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise _k8s_error(422, "metadata.name: Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if self._current(target.resource, meta.get("namespace"), meta["name"]) is not None:
            raise _k8s_error(
                409,
                f'{target.qualified} "{meta["name"]}" already exists',
                reason="AlreadyExists",
                name=meta["name"],
                group=target.group,
                kind=target.plural,
            )
        obj["apiVersion"] = target.api_version
        obj.setdefault("kind", spec.kind)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        meta.pop("resourceVersion", None)
        if target.key in self._crds and "status" in spec.subresources and not seeding:
            obj.pop("status", None)  # the status subresource: a create sets none
        self._validate(spec, obj)
        self._check_cr(target, obj, None)
        if not seeding:
            self._admit(target, obj, None, False)
        if dry_run:
            return obj
        meta["resourceVersion"] = self._next_rv()
        self._store(target.resource, obj, "ADDED", events)
        self._after_write(target, events)
        return obj

    def _validate(self, spec: ResourceSpec, obj: Mapping[str, Any]) -> None:
        if self.validate is None or not spec.builtin:
            return
        try:
            kubernetes_validate.validate(dict(obj), self.validate, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            raise _k8s_error(
                422, f'{obj.get("kind")} "{obj["metadata"].get("name")}" is invalid: {where}: {e.message}'
            ) from None
        except kubernetes_validate.SchemaNotFoundError:
            pass

    def _check_resource_version(self, target: ApiPath, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        wanted = (new.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != old["metadata"].get("resourceVersion"):
            raise _k8s_error(
                409,
                f'Operation cannot be fulfilled on {target.qualified} "{target.name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                name=target.name,
                group=target.group,
                kind=target.plural,
            )

    def _replace(
        self, target: ApiPath, spec: ResourceSpec, new: dict[str, Any], dry_run: bool, events: Events
    ) -> dict[str, Any]:
        old = self._read(target)
        if (new.get("metadata") or {}).get("name") not in (None, target.name):
            raise _k8s_error(400, "the name of the object does not match the name on the URL")
        self._check_resource_version(target, old, new)
        return self._update(target, spec, old, new, dry_run, events)

    def _patched(self, old: dict[str, Any], raw: aiohttp.web.BaseRequest, patch: Any, spec: ResourceSpec) -> Any:
        content_type = raw.content_type
        try:
            if content_type == "application/json-patch+json":
                if not isinstance(patch, list):
                    raise _k8s_error(400, "a JSON patch must be a list of operations")
                return jsonpatch.apply_patch(old, patch)
            if content_type == "application/merge-patch+json":
                return merge_patch(old, _require_dict(patch))
            if content_type == "application/strategic-merge-patch+json" and spec.builtin:
                return strategic_merge_patch(old, _require_dict(patch))
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, ValueError) as e:
            raise _k8s_error(422, f"the patch could not be applied: {e}") from None
        raise _k8s_error(
            415,
            f"the body of the request was in an unknown format ({content_type}) - accepted "
            "media types include: application/json-patch+json, application/merge-patch+json"
            + (", application/strategic-merge-patch+json" if spec.builtin else ""),
        )

    def _update(
        self,
        target: ApiPath,
        spec: ResourceSpec,
        old: dict[str, Any],
        patched: Any,
        dry_run: bool,
        events: Events,
        *,
        status_only: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(patched, dict):
            raise _k8s_error(422, "the patched object is not an object")
        new: dict[str, Any] = patched
        if status_only:  # /status: only the status changes
            new = {
                **{k: v for k, v in old.items() if k != "status"},
                **({"status": new["status"]} if new.get("status") is not None else {}),
            }
        elif "status" in spec.subresources:  # main resource: the status is kept
            new = {k: v for k, v in new.items() if k != "status"}
            if "status" in old:
                new["status"] = old["status"]
        self._check_resource_version(target, old, new)
        meta = new.setdefault("metadata", {})
        for managed in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
            "deletionTimestamp",
        ):
            if managed in old["metadata"]:
                meta[managed] = old["metadata"][managed]
            else:
                meta.pop(managed, None)
        new["apiVersion"], new["kind"] = old.get("apiVersion"), old.get("kind")
        if not status_only:
            _refuse_immutable(target.key, old, new)
        if target.key == "v1/persistentvolumeclaims" and not status_only:
            _refuse_pvc_shrink(new)
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if new == old:  # a no-op write does not bump the resourceVersion
            return new
        self._validate(spec, new)
        self._check_cr(target, new, old)
        self._admit(target, new, old, status_only)
        if dry_run:
            return new
        meta["resourceVersion"] = self._next_rv()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(target.resource, new, events)  # last finalizer gone
        else:
            self._store(target.resource, new, "MODIFIED", events)
        self._after_write(target, events)
        return new

    def _delete(self, target: ApiPath, options: Any, dry_run: bool, events: Events) -> dict[str, Any]:
        old = self._read(target)
        preconditions = (options.get("preconditions") or {}) if isinstance(options, Mapping) else {}
        for field_name in ("uid", "resourceVersion"):
            wanted = preconditions.get(field_name)
            if wanted and wanted != old["metadata"].get(field_name):
                raise _k8s_error(
                    409,
                    f"Precondition failed: {field_name} in precondition: {wanted}, "
                    f"{field_name} in object meta: {old['metadata'].get(field_name)}",
                    name=target.name,
                    group=target.group,
                    kind=target.plural,
                )
        if dry_run:
            return old
        if old["metadata"].get("finalizers"):
            if not old["metadata"].get("deletionTimestamp"):
                old["metadata"]["deletionTimestamp"] = _now()
                old["metadata"]["resourceVersion"] = self._next_rv()
                self._store(target.resource, old, "MODIFIED", events)
            return old
        self._remove(target.resource, old, events)
        self._after_write(target, events)
        return old

    def _scale(
        self,
        target: ApiPath,
        spec: ResourceSpec,
        raw: aiohttp.web.BaseRequest,
        data: Any,
        dry_run: bool,
        events: Events,
    ) -> dict[str, Any]:
        obj = self._read(target)
        scale = _scale_of(obj)
        method = raw.method.upper()
        if method == "GET":
            return scale
        if method == "PUT":
            wanted = _require_dict(data)
        elif method == "PATCH":
            wanted = self._patched(scale, raw, data, BUILTIN_RESOURCES["apps/v1/deployments"])
        else:
            raise _k8s_error(405, f"{method} is not supported on scale")
        self._check_resource_version(target, obj, wanted)
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise _k8s_error(422, f"spec.replicas: Invalid value: {replicas!r}: must be greater than or equal to 0")
        new = copy.deepcopy(obj)
        new.setdefault("spec", {})["replicas"] = replicas
        return _scale_of(self._update(target, spec, obj, new, dry_run, events))

    def _evict(self, target: ApiPath, eviction: Any, dry_run: bool, events: Events) -> dict[str, Any]:
        pod = self._read(target)
        if isinstance(eviction, dict) and eviction.get("kind"):  # an Eviction is never stored: validate it here
            self._validate(ResourceSpec("Eviction"), {**eviction, "metadata": eviction.get("metadata") or {}})
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed", "Pending") and not pod["metadata"].get("deletionTimestamp"):
            labels = pod["metadata"].get("labels") or {}
            pdbs = [
                p
                for p in self._objects_of(_PDB, target.namespace)
                if label_selector_matches((p.get("spec") or {}).get("selector"), labels)
            ]
            if len(pdbs) > 1:
                raise _k8s_error(
                    500,
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                )
            if pdbs:
                budget = self._pdb_status(pdbs[0])
                healthy_pod = _pod_healthy(pod)
                allowed = (
                    budget["disruptionsAllowed"] > 0
                    if healthy_pod
                    else budget["currentHealthy"] >= budget["desiredHealthy"]
                )
                if not allowed:
                    name = pdbs[0]["metadata"]["name"]
                    cause = (
                        f"The disruption budget {name} needs {budget['desiredHealthy']} healthy pods "
                        f"and has {budget['currentHealthy']} currently"
                    )
                    raise _k8s_error(
                        429,
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        causes=[{"reason": "DisruptionBudget", "message": cause}],
                    )
        if not dry_run:
            self._delete(target, (eviction or {}).get("deleteOptions"), False, events)
        return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success", "code": 201}

    # ----- the disruption "controller"

    def _pdb_status(self, pdb: Mapping[str, Any]) -> dict[str, int]:
        spec = pdb.get("spec") or {}
        pods = [
            p
            for p in self._objects_of(_PODS, pdb["metadata"].get("namespace"))
            if label_selector_matches(spec.get("selector"), p["metadata"].get("labels") or {})
        ]
        expected = len(pods)
        healthy = sum(1 for p in pods if _pod_healthy(p))
        if spec.get("minAvailable") is not None:
            desired = _scaled(spec["minAvailable"], expected)
        elif spec.get("maxUnavailable") is not None:
            desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
        else:
            desired = 0
        return {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptionsAllowed": max(0, healthy - desired),
        }

    def _after_write(self, target: ApiPath, events: Events) -> None:
        """Keep PodDisruptionBudget status current after a pod or PDB changed."""
        if target.key not in ("v1/pods", "policy/v1/poddisruptionbudgets"):
            return
        for pdb in self._objects_of(_PDB, target.namespace):
            status = {
                **(pdb.get("status") or {}),
                **self._pdb_status(pdb),
                "observedGeneration": pdb["metadata"].get("generation", 1),
            }
            if status != pdb.get("status"):
                pdb["status"] = status
                pdb["metadata"]["resourceVersion"] = self._next_rv()
                self._store(_PDB, pdb, "MODIFIED", events)

    # ----- direct access for tests (async: run on the server's loop, see KubeServer)

    async def seed(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object from a dict with ``apiVersion``, ``kind``, ``metadata`` (status kept)."""
        target = self._target_of(obj)
        async with self._lock:
            events: Events = []
            created = self._create(target, self._spec(target), copy.deepcopy(dict(obj)), False, events, seeding=True)
            for resource, event in events:
                await self._buses[resource].put(event)
        return created

    async def fetch(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        target = self._target_of({"apiVersion": api_version, "kind": kind, "metadata": {"namespace": namespace}})
        async with self._lock:
            return self._current(target.resource, namespace if self._spec(target).namespaced else None, name)

    def _target_of(self, obj: Mapping[str, Any]) -> ApiPath:
        api_version, kind = obj["apiVersion"], obj["kind"]
        group, _, version = api_version.rpartition("/")
        for key, spec in self._specs.items():
            parsed = parse_api_path(f"/apis/{key}" if key.count("/") == 2 else f"/api/{key}")
            if parsed is not None and parsed.api_version == api_version and spec.kind == kind:
                namespace = ((obj.get("metadata") or {}).get("namespace") or "default") if spec.namespaced else None
                return ApiPath(group, version, parsed.plural, namespace)
        raise KeyError(f"unknown kind {api_version}/{kind}: register_resource() it first")


_PODS = kmock.resource("", "v1", "pods")
_PDB = kmock.resource("policy", "v1", "poddisruptionbudgets")


def _pod_healthy(pod: Mapping[str, Any]) -> bool:
    """Running and Ready, for the PDB arithmetic; a pod without phase or conditions (as seeded) counts."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") not in (None, "Running"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    return ready is None or ready.get("status") == "True"


# What the API server's update validation lets change in a spec (k8s.io/kubernetes pkg/apis/*/validation):
# a StatefulSet only these fields ("updates to statefulset spec for fields other than ... are forbidden"),
# a bound PersistentVolumeClaim only its requests (storageClassName may be set once, when it was unset).
_STATEFULSET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                        "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
_PVC_MUTABLE = ("resources", "volumeAttributesClassName")
_SELECTOR_IMMUTABLE = ("apps/v1/deployments", "apps/v1/replicasets", "apps/v1/daemonsets")


def _immutable(obj: Mapping[str, Any], message: str) -> kmock.KubernetesError:
    return _k8s_error(422, f'{obj.get("kind")} "{obj["metadata"].get("name")}" is invalid: {message}')


def _refuse_immutable(key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """422 for a write that changes what the real API server keeps immutable after creation."""
    was, now = old.get("spec") or {}, new.get("spec") or {}
    if key in _SELECTOR_IMMUTABLE and was.get("selector") != now.get("selector"):
        raise _immutable(new, f"spec.selector: Invalid value: {json.dumps(now.get('selector'))}: field is immutable")
    if key == "apps/v1/statefulsets":
        changed = sorted(k for k in set(was) | set(now) if k not in _STATEFULSET_MUTABLE and was.get(k) != now.get(k))
        if changed:
            allowed = ", ".join(f"'{k}'" for k in _STATEFULSET_MUTABLE)
            raise _immutable(new, f"spec: Forbidden: updates to statefulset spec for fields other than {allowed} "
                                  f"are forbidden (changed: {', '.join(changed)})")
    if key == "v1/persistentvolumeclaims":
        changed = sorted(k for k in set(was) | set(now) if k not in _PVC_MUTABLE and was.get(k) != now.get(k)
                         and not (k == "storageClassName" and was.get(k) is None))
        if changed:
            raise _immutable(new, "spec: Forbidden: spec is immutable after creation except resources.requests and "
                                  f"volumeAttributesClassName for bound claims (changed: {', '.join(changed)})")
    if key == "v1/services":
        for ip_field in ("clusterIP", "clusterIPs"):
            if was.get(ip_field) and was.get(ip_field) != now.get(ip_field):
                raise _immutable(new, f"spec.{ip_field}: Invalid value: {json.dumps(now.get(ip_field))}: "
                                      "field is immutable")
    if key in ("v1/configmaps", "v1/secrets") and old.get("immutable"):
        for data_field in ("data", "binaryData", "stringData", "immutable"):
            if old.get(data_field) != new.get(data_field):
                raise _immutable(new, f"{data_field}: Forbidden: field is immutable when `immutable` is set")


def _refuse_pvc_shrink(pvc: Mapping[str, Any]) -> None:
    """A PVC's storage request never goes below ``status.capacity`` (a volume never shrinks): 422."""
    requested = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    if requested is None or capacity is None:
        return
    if kubernetes.utils.parse_quantity(str(requested)) < kubernetes.utils.parse_quantity(str(capacity)):
        raise _k8s_error(
            422,
            f'PersistentVolumeClaim "{pvc["metadata"].get("name")}" is invalid: '
            "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity",
        )


def _scale_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": _selector_string((obj.get("spec") or {}).get("selector")),
        },
    }


def _require_dict(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _k8s_error(400, "the request body must be a JSON object")
    return data


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- serving it


class KubeServer:
    """A :class:`KubeEmulator` served on 127.0.0.1 (free port) from a background thread.

    The official client is synchronous, so the emulator's asyncio loop runs in
    its own thread; the helpers below are safe to call from the test thread.
    """

    def __init__(self, emulator: KubeEmulator | None = None, *, host: str = "127.0.0.1") -> None:
        self.emulator = emulator if emulator is not None else KubeEmulator()
        self.host = host
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._clients: list[kubernetes.client.ApiClient] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> KubeServer:
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("kube emulator did not start")
        if self._error is not None:
            raise RuntimeError("kube emulator failed to start") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # reported by start()
            self._error = e
            self._started.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.emulator:
            server = aiohttp.test_utils.RawTestServer(self.emulator, host=self.host, port=0)
            await server.start_server()
            try:
                assert server.port is not None
                self.port = server.port
                self._started.set()
                await self._stop.wait()
            finally:
                await server.close()

    def stop(self, timeout: float = 10.0) -> None:
        for client in self._clients:
            client.close()  # type: ignore[no-untyped-call]
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> KubeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, make: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run the coroutine ``make()`` on the emulator's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout)

    # ----- clients

    def configuration(self, *, retries: Any = None, token: str = "test-token") -> kubernetes.client.Configuration:
        """Client configuration for this server.

        ``retries`` goes to urllib3. Its default (``None``) retries a GET/PUT/DELETE
        answered 413/429/503 *with* a ``Retry-After`` header, sleeping that long,
        invisibly to the caller; ``retries=False`` turns that off.
        """
        config = kubernetes.client.Configuration(host=self.url)
        config.api_key = {"BearerToken": token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
        config.retries = retries
        return config

    def api_client(self, *, retries: Any = None, token: str = "test-token") -> kubernetes.client.ApiClient:
        """A ``kubernetes.client.ApiClient`` for this server (closed by ``stop()``); ``token`` names the user
        (``KubeEmulator.users``) for admission policies."""
        client = kubernetes.client.ApiClient(self.configuration(retries=retries, token=token))
        self._clients.append(client)
        return client

    def write_kubeconfig(self, path: Path | str, namespace: str = "default") -> Path:
        """A kubeconfig file for code that calls ``kubernetes.config.load_kube_config(path)``."""
        path = Path(path)
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
                    "users": [{"name": "test", "user": {"token": "test-token"}}],
                    "contexts": [
                        {
                            "name": "emulator",
                            "context": {"cluster": "emulator", "user": "test", "namespace": namespace},
                        }
                    ],
                    "current-context": "emulator",
                }
            )
        )
        return path

    # ----- direct access

    def seed(self, *objects: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Store objects as they are (status included); returns them with metadata filled in."""
        return [self._seed_one(o) for o in objects]

    def _seed_one(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        return self.call(lambda: self.emulator.seed(obj))  # type: ignore[no-any-return]

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object, or ``None``; e.g. ``get("apps/v1", "Deployment", "shop", "web")``."""
        return self.call(lambda: self.emulator.fetch(api_version, kind, namespace, name))  # type: ignore[no-any-return]

    def inject_fault(self, status: int, **kwargs: Any) -> Fault:
        """See :meth:`KubeEmulator.inject_fault`."""
        return self.emulator.inject_fault(status, **kwargs)

    def seed_deployment(
        self,
        name: str,
        namespace: str = "default",
        *,
        replicas: int = 2,
        images: Sequence[str] = ("app:1",),
        nodes: Sequence[str] = ("node-1",),
        limits: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Seed a Deployment with a rollout history, as the controllers would have left it.

        One ReplicaSet per entry of ``images`` (revisions 1..N, owned by the
        Deployment, the last one current with ``replicas``, the older ones scaled
        to 0), the current ReplicaSet's Pods (Running, Ready, round-robin over
        ``nodes``) and the Nodes. The emulator runs no controller: later changes
        to the Deployment create no ReplicaSet or Pod. Returns the stored objects:
        ``{"deployment", "replicasets", "pods", "nodes"}``.
        """
        labels = {"app": name}
        container: dict[str, Any] = {"name": name, "image": images[-1]}
        container["resources"] = {"limits": dict(limits or {"memory": "256Mi", "cpu": "500m"})}

        def template(image: str) -> dict[str, Any]:
            spec = {"containers": [{**copy.deepcopy(container), "image": image}]}
            return {"metadata": {"labels": dict(labels)}, "spec": spec}

        existing = {n["metadata"]["name"] for n in [self.get("v1", "Node", None, x) for x in nodes] if n}
        node_objs = self.seed(
            *[
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": node},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                }
                for node in nodes
                if node not in existing
            ]
        )
        revision = str(len(images))
        [deployment] = self.seed(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict(labels),
                    "annotations": {"deployment.kubernetes.io/revision": revision},
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": dict(labels)},
                    "template": template(images[-1]),
                },
                "status": {
                    "observedGeneration": 1,
                    "replicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "updatedReplicas": replicas,
                },
            }
        )
        owner = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "controller": True,
            "uid": deployment["metadata"]["uid"],
        }
        replicasets = []
        for number, image in enumerate(images, start=1):
            pod_template = template(image)
            pod_hash = hashlib.sha256(json.dumps(pod_template, sort_keys=True).encode()).hexdigest()[:10]
            pod_template["metadata"]["labels"]["pod-template-hash"] = pod_hash
            size = replicas if number == len(images) else 0
            replicasets += self.seed(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": f"{name}-{pod_hash}",
                        "namespace": namespace,
                        "labels": pod_template["metadata"]["labels"],
                        "ownerReferences": [owner],
                        "annotations": {"deployment.kubernetes.io/revision": str(number)},
                    },
                    "spec": {
                        "replicas": size,
                        "template": pod_template,
                        "selector": {"matchLabels": pod_template["metadata"]["labels"]},
                    },
                    "status": {"replicas": size, "readyReplicas": size, "availableReplicas": size},
                }
            )
        current = replicasets[-1]
        rs_owner = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": current["metadata"]["name"],
            "controller": True,
            "uid": current["metadata"]["uid"],
        }
        pods = self.seed(
            *[
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{current['metadata']['name']}-{i}",
                        "namespace": namespace,
                        "labels": current["spec"]["template"]["metadata"]["labels"],
                        "ownerReferences": [rs_owner],
                    },
                    "spec": {**copy.deepcopy(current["spec"]["template"]["spec"]), "nodeName": nodes[i % len(nodes)]},
                    "status": {
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "containerStatuses": [
                            {
                                "name": name,
                                "ready": True,
                                "restartCount": 0,
                                "image": images[-1],
                                "imageID": "",
                                "started": True,
                            }
                        ],
                    },
                }
                for i in range(replicas)
            ]
        )
        return {"deployment": deployment, "replicasets": replicasets, "pods": pods, "nodes": node_objs}

    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Logged requests, filtered by method and by a path glob."""
        return [
            r
            for r in list(self.emulator.log)
            if (method is None or r.method == method.upper()) and (path is None or fnmatch.fnmatchcase(r.path, path))
        ]
