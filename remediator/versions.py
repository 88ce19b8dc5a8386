"""Versions of the objects a workload depends on, and what changed since they were good.

`revert_config` and `restore_service` put back what a workload used while its SLO held: the
ConfigMaps and Secrets its pod template references, and the Service that sends it traffic.
The agent records those *last-known-good* versions (`KnownGood`, kept in the ledger) whenever
it sees the SLO hold, and the snapshot compares them with what the cluster shows now:

- a ConfigMap edited in place (same name, other data) is reverted by writing the recorded data
  back, then restarting the workloads that mount it (a mounted ConfigMap is re-read, an env var
  only on restart);
- a workload pointed at another ConfigMap or Secret (`app-config-v3` where `app-config-v2` was
  good, the way kustomize's name suffixes roll configuration) is pointed back at the good name;
- a Secret edited in place is reverted only when secret reverts are on (opt-in, `secrets.revert` of
  the live configuration): the healthy-time sweep then keeps its values *sealed* (authenticated
  encryption with a key the operator supplies, remediator/live/sealing.py), never in plain text.
  Without a sealed copy of its good values the agent escalates with that reason;
- a Service whose selector, ports or targetPort changed is put back from its recorded version.

Digests: a ConfigMap's is the SHA-256 of its canonical data. A Secret's is a BLAKE2b keyed with
the Secret's identity (namespace, name, uid), so two clusters' digests of one value differ and no
table of common values matches it; it is a change detector, not a store of the value. The live
observer hands the core a Secret *redacted* (`redact_secret`: its metadata and that digest, no data),
so no snapshot, trace or log ever holds a value.

Pure: no client, no I/O. `snapshot.build_snapshot` calls `current_configs`, `service_version`,
`config_drift` and `service_drift`; the ledger stores `KnownGood`; the executor writes it back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from remediator.actions import ObjectRef

__all__ = ["CONFIG_KINDS", "DIGEST_FIELD", "ConfigDrift", "ConfigVersion", "KnownGood", "ServiceDrift",
           "ServiceVersion", "changed_at", "config_digest", "config_drift", "config_refs", "config_version",
           "known_good_from_doc", "known_good_of", "known_good_to_doc", "redact_secret", "retarget_template",
           "same_versions", "service_digest", "service_drift", "service_version", "with_sealed"]

CONFIG_KINDS = ("ConfigMap", "Secret")
#: The key of a redacted Secret (`redact_secret`) that holds its digest: no Kubernetes object has it.
DIGEST_FIELD = "remediator.io/digest"

K8sObject = Mapping[str, Any]


def _meta(obj: K8sObject) -> Mapping[str, Any]:
    meta = obj.get("metadata") or {}
    return meta if isinstance(meta, Mapping) else {}


def _time(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def changed_at(obj: K8sObject) -> float:
    """When the object was last written: the newest `managedFields` time (every writer's last
    apply or update), else its creation; 0 when neither is known."""
    meta = _meta(obj)
    times = [_time(m.get("time")) for m in meta.get("managedFields") or () if isinstance(m, Mapping)]
    return max([t for t in times if t > 0] or [_time(meta.get("creationTimestamp"))])


# ---------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class ConfigVersion:
    """One version of a ConfigMap or Secret: which object, a digest of its data, when it was written.

    `data` is the ConfigMap's `data` and `binaryData` (what `revert_config` writes back); it is
    always empty for a Secret, whose values are never kept in plain text. `sealed` is a Secret's
    data sealed by the healthy-time sweep (an opaque token only the operator's key opens;
    "" when secret reverts are off). An empty `digest` is a reference whose object was not read
    (by default the live observer reads no Secrets) or does not exist: its name counts (a renamed
    reference is seen), its content is unknown."""

    ref: ObjectRef
    digest: str
    changed_at: float = 0.0
    immutable: bool = False
    data: Mapping[str, Mapping[str, str]] = field(default_factory=dict, compare=False)
    sealed: str = field(default="", compare=False)

    @property
    def secret(self) -> bool:
        return self.ref.kind == "Secret"


def config_digest(obj: K8sObject) -> str:
    """The digest of a ConfigMap's or Secret's content (see the module docstring); a redacted Secret's
    is the one it carries."""
    if obj.get("kind") == "Secret" and obj.get(DIGEST_FIELD):
        return str(obj[DIGEST_FIELD])
    body = json.dumps({k: obj.get(k) or {} for k in ("data", "binaryData", "stringData")},
                      sort_keys=True, separators=(",", ":")).encode()
    if obj.get("kind") == "Secret":
        meta = _meta(obj)
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}/{meta.get('uid', '')}".encode()[:64]
        return "blake2b:" + hashlib.blake2b(body, key=key, digest_size=16).hexdigest()
    return "sha256:" + hashlib.sha256(body).hexdigest()[:32]


def redact_secret(obj: K8sObject) -> dict[str, Any]:
    """A Secret without its values: its metadata, type, `immutable` and digest (`DIGEST_FIELD`), what
    the snapshot needs to see whether it changed. An already redacted Secret comes back as it was."""
    meta = _meta(obj)
    kept = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "managedFields", "labels")
    out: dict[str, Any] = {"apiVersion": obj.get("apiVersion", "v1"), "kind": "Secret",
                           "metadata": {k: meta[k] for k in kept if k in meta}, DIGEST_FIELD: config_digest(obj)}
    for key in ("type", "immutable"):
        if obj.get(key) is not None:
            out[key] = obj[key]
    return out


def config_version(obj: K8sObject) -> ConfigVersion:
    """The version of a ConfigMap or Secret as read now; a Secret's data is never copied."""
    meta, kind = _meta(obj), str(obj.get("kind", ""))
    if kind not in CONFIG_KINDS:
        raise ValueError(f"a config version is of a ConfigMap or Secret, not of a {kind or 'kindless object'}")
    ref = ObjectRef(kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
    data = ({} if kind == "Secret" else
            {k: dict(obj.get(k) or {}) for k in ("data", "binaryData") if obj.get(k)})
    return ConfigVersion(ref, config_digest(obj), changed_at(obj), bool(obj.get("immutable")), data)


def _template_spec(template: K8sObject) -> Mapping[str, Any]:
    return template.get("spec") or {}


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from spec.get("initContainers") or ()
    yield from spec.get("containers") or ()


def _references(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """(kind, the mapping holding the name, its key) of every ConfigMap/Secret reference in a pod spec."""
    for v in spec.get("volumes") or ():
        if v.get("configMap"):
            yield "ConfigMap", v["configMap"], "name"
        if v.get("secret"):
            yield "Secret", v["secret"], "secretName"
        for source in (v.get("projected") or {}).get("sources") or ():
            if source.get("configMap"):
                yield "ConfigMap", source["configMap"], "name"
            if source.get("secret"):
                yield "Secret", source["secret"], "name"
    for c in _containers(spec):
        for e in c.get("envFrom") or ():
            if e.get("configMapRef"):
                yield "ConfigMap", e["configMapRef"], "name"
            if e.get("secretRef"):
                yield "Secret", e["secretRef"], "name"
        for e in c.get("env") or ():
            source = e.get("valueFrom") or {}
            if source.get("configMapKeyRef"):
                yield "ConfigMap", source["configMapKeyRef"], "name"
            if source.get("secretKeyRef"):
                yield "Secret", source["secretKeyRef"], "name"


def config_refs(template: K8sObject, namespace: str) -> tuple[ObjectRef, ...]:
    """The ConfigMaps and Secrets a pod template references (volumes, projected volumes, envFrom,
    env valueFrom), each once, in template order."""
    seen: dict[ObjectRef, None] = {}
    for kind, holder, key in _references(_template_spec(template)):
        if holder.get(key):
            seen[ObjectRef(kind, namespace, str(holder[key]))] = None
    return tuple(seen)


def retarget_template(template: K8sObject, old: ObjectRef, new: ObjectRef) -> dict[str, Any]:
    """A copy of the pod template with every reference to `old` pointed at `new` (same kind)."""
    if old.kind != new.kind:
        raise ValueError(f"cannot point a {old.kind} reference at a {new.kind}")
    out: dict[str, Any] = json.loads(json.dumps(template))
    for kind, holder, key in _references(_template_spec(out)):
        if kind == old.kind and holder.get(key) == old.name:
            holder[key] = new.name  # type: ignore[index]  # a dict: `out` is our own copy
    return out


@dataclass(frozen=True)
class ConfigDrift:
    """How a config the workload uses now differs from its last-known-good version.

    `how` is "edited" (same object, other data: `good` holds the recorded version) or "renamed"
    (the workload now references `current` where `good.ref` was used while the SLO held).
    `blocked` says why it cannot be reverted ("" when it can)."""

    current: ConfigVersion
    good: ConfigVersion
    how: str
    blocked: str = ""


def config_drift(current: Sequence[ConfigVersion], good: Iterable[ConfigVersion]) -> tuple[ConfigDrift, ...]:
    """Every difference between the configs referenced now and the last-known-good ones, newest
    change first. A renamed reference pairs a config not in the good set with a good one of the
    same kind that is no longer referenced (one each: with several, the pairing would be a guess)."""
    good_by = {(g.ref.kind, g.ref.name): g for g in good}
    now_keys = {(c.ref.kind, c.ref.name) for c in current}
    out: list[ConfigDrift] = []
    for c in current:
        g = good_by.get((c.ref.kind, c.ref.name))
        if g is not None and c.digest and g.digest and g.digest != c.digest:
            blocked = (f"Secret {c.ref} was edited in place; remediator never stores Secret values unless "
                       "secret reverts are on with a sealing key (secrets.revert), and no sealed copy of its good "
                       "values was recorded, so they cannot be put back: a human restores them"
                       if c.secret and not g.sealed else "")
            if c.secret and c.immutable and not blocked:
                blocked = (f"Secret {c.ref} is immutable (immutable: true): the API server refuses to edit its "
                           "data; a human creates a new Secret and points the workload at it")
            if not c.secret and not g.data:
                blocked = f"no data of the good version of {c.ref} was recorded"
            out.append(ConfigDrift(c, g, "edited", blocked))
    for kind in CONFIG_KINDS:
        new = [c for c in current if c.ref.kind == kind and (kind, c.ref.name) not in good_by]
        gone = [g for g in good_by.values() if g.ref.kind == kind and (kind, g.ref.name) not in now_keys]
        if len(new) == 1 and len(gone) == 1:
            out.append(ConfigDrift(new[0], gone[0], "renamed"))
    return tuple(sorted(out, key=lambda d: -d.current.changed_at))


# ---------------------------------------------------------------------------- services


@dataclass(frozen=True)
class ServiceVersion:
    """What routes traffic to a workload: a Service's selector and ports (name, port, targetPort,
    protocol), their digest, and when the Service was last written."""

    ref: ObjectRef
    selector: Mapping[str, str]
    ports: tuple[Mapping[str, Any], ...]
    digest: str
    changed_at: float = 0.0


def _ports(spec: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    out = []
    for p in spec.get("ports") or ():
        port = {k: p[k] for k in ("name", "port", "targetPort", "protocol") if p.get(k) is not None}
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", p.get("port"))
        out.append(port)
    return tuple(out)


def service_digest(selector: Mapping[str, str], ports: Sequence[Mapping[str, Any]]) -> str:
    body = json.dumps({"selector": dict(selector), "ports": list(ports)}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()[:32]


def service_version(obj: K8sObject) -> ServiceVersion:
    meta, spec = _meta(obj), obj.get("spec") or {}
    selector = {str(k): str(v) for k, v in (spec.get("selector") or {}).items()}
    ports = _ports(spec)
    return ServiceVersion(ObjectRef("Service", str(meta.get("namespace", "")), str(meta.get("name", ""))),
                          selector, ports, service_digest(selector, ports), changed_at(obj))


@dataclass(frozen=True)
class ServiceDrift:
    """The Service's routing now vs while the SLO held: which of selector and ports changed."""

    current: ServiceVersion
    good: ServiceVersion
    fields: tuple[str, ...]


def service_drift(current: ServiceVersion | None, good: ServiceVersion | None) -> ServiceDrift | None:
    if current is None or good is None or current.ref != good.ref or current.digest == good.digest:
        return None
    changed = tuple(f for f in ("selector", "ports") if getattr(current, f) != getattr(good, f))
    return ServiceDrift(current, good, changed or ("selector", "ports"))


# ---------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class KnownGood:
    """The versions a workload used while its SLO held, as the ledger recorded them at `at`."""

    workload: ObjectRef
    at: float
    configs: tuple[ConfigVersion, ...] = ()
    services: tuple[ServiceVersion, ...] = ()

    def service(self, name: str) -> ServiceVersion | None:
        return next((s for s in self.services if s.ref.name == name), None)

    def config(self, ref: ObjectRef) -> ConfigVersion | None:
        return next((c for c in self.configs if c.ref == ref), None)


# ---------------------------------------------------------------------------- stored form


def _ref_doc(ref: ObjectRef) -> dict[str, str]:
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}


def _ref(doc: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(str(doc["kind"]), str(doc.get("namespace", "")), str(doc["name"]))


def known_good_to_doc(record: KnownGood) -> dict[str, Any]:
    """The JSON form the ledger stores. A Secret's version is written without any data, whatever
    the object says (only its sealed token, when there is one): the one place the rule "Secret values
    are never stored in plain text" is enforced."""
    return {
        "workload": _ref_doc(record.workload), "at": record.at,
        "configs": [{"ref": _ref_doc(c.ref), "digest": c.digest, "changed_at": c.changed_at,
                     "immutable": c.immutable, "data": {} if c.secret else {k: dict(v) for k, v in c.data.items()},
                     **({"sealed": c.sealed} if c.secret and c.sealed else {})}
                    for c in record.configs],
        "services": [{"ref": _ref_doc(s.ref), "selector": dict(s.selector), "ports": [dict(p) for p in s.ports],
                      "digest": s.digest, "changed_at": s.changed_at} for s in record.services],
    }


def known_good_from_doc(doc: Mapping[str, Any]) -> KnownGood:
    return KnownGood(
        _ref(doc["workload"]), float(doc["at"]),
        tuple(ConfigVersion(_ref(c["ref"]), str(c["digest"]), float(c.get("changed_at", 0.0)),
                            bool(c.get("immutable")), {} if c["ref"]["kind"] == "Secret" else dict(c.get("data") or {}),
                            str(c.get("sealed") or "") if c["ref"]["kind"] == "Secret" else "")
              for c in doc.get("configs") or ()),
        tuple(ServiceVersion(_ref(s["ref"]), dict(s["selector"]), tuple(dict(p) for p in s["ports"]),
                             str(s["digest"]), float(s.get("changed_at", 0.0)))
              for s in doc.get("services") or ()))


def known_good_of(workload: ObjectRef, at: float, configs: Sequence[ConfigVersion],
                  service: ServiceVersion | None) -> KnownGood:
    """What a snapshot taken while the SLO held says was good for its workload."""
    return KnownGood(workload, at, tuple(configs), (service,) if service is not None else ())


def with_sealed(record: KnownGood, previous: KnownGood | None) -> KnownGood:
    """`record` with each Secret version that has no sealed token taking the one `previous` holds for the
    same digest (a record made without sealing, at a verified recovery, keeps what the sweep sealed)."""
    if previous is None:
        return record
    kept = {(c.ref, c.digest): c.sealed for c in previous.configs if c.sealed}
    configs = tuple(replace(c, sealed=kept.get((c.ref, c.digest), "")) if c.secret and not c.sealed else c
                    for c in record.configs)
    return replace(record, configs=configs)


def same_versions(a: KnownGood, b: KnownGood) -> bool:
    """Whether two records hold the same versions (only when they were seen differs); a Secret version
    sealed in one and not in the other differs (the sealed one can be put back)."""
    def configs(k: KnownGood) -> set[tuple[ObjectRef, str, bool]]:
        return {(c.ref, c.digest, bool(c.sealed)) for c in k.configs}

    def services(k: KnownGood) -> set[tuple[ObjectRef, str]]:
        return {(s.ref, s.digest) for s in k.services}

    return a.workload == b.workload and configs(a) == configs(b) and services(a) == services(b)
