"""Kubernetes client plumbing shared by the object fetcher and the executor.

* `api_client()` builds an `ApiClient` from a kubeconfig or the in-cluster service account,
  with urllib3's own retries **off**: urllib3 would otherwise sleep through 429/503 answers
  that carry `Retry-After`, invisibly, and the executor's backoff must be the only one;
* `with_backoff()` retries 429, 5xx and connection failures with exponential backoff and
  jitter, honouring `Retry-After`; every other answer (404, 409, 422, ...) goes to the caller;
* `to_dict()` turns client models into the JSON dicts `build_snapshot` reads; `raw_json()` reads
  a `_preload_content=False` answer as sent, for what is written back (no field dropped).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import urllib3

from remediator.live.config import KubernetesSettings

__all__ = ["Backoff", "KubeError", "api_client", "is_status", "raw_json", "status_of", "to_dict", "with_backoff"]

T = TypeVar("T")


class KubeError(RuntimeError):
    """The Kubernetes API could not be used (unreachable, forbidden, retries exhausted)."""


@dataclass
class Backoff:
    """Exponential backoff with full jitter: attempt n sleeps up to min(max, base * 2**n).

    `sleep` and `rng` are collaborators so tests can record the delays instead of waiting.
    `delays` keeps every delay slept, for the ledger and for tests.
    """

    max_attempts: int = 6
    base_s: float = 0.5
    max_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    delays: list[float] = field(default_factory=list)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.max_s, self.base_s * float(2 ** attempt))
        wait = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_s))
        return wait


def status_of(error: BaseException) -> int | None:
    status = getattr(error, "status", None)
    return int(status) if isinstance(status, int) else None


def is_status(error: BaseException, *codes: int) -> bool:
    return status_of(error) in codes


def _retry_after(error: BaseException) -> float | None:
    headers = getattr(error, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _transient(error: BaseException) -> bool:
    status = status_of(error)
    if status is not None and status != 0:
        return status == 429 or 500 <= status <= 599
    return isinstance(error, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError))


def with_backoff(call: Callable[[], T], backoff: Backoff, *, what: str,
                 on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """Run `call`; on 429/5xx/connection errors sleep and retry up to `backoff.max_attempts` times.

    An eviction refused by a PodDisruptionBudget is also a 429: the caller decides whether
    that is worth waiting for (a drain is) by calling this again with its own deadline.
    """
    attempt = 0
    while True:
        try:
            return call()
        except Exception as e:  # noqa: BLE001 - classified below
            if not _transient(e):
                raise
            attempt += 1
            if attempt >= backoff.max_attempts:
                status = status_of(e)
                raise KubeError(f"{what}: gave up after {attempt} attempts "
                                f"(last answer {status if status else type(e).__name__})") from e
            wait = backoff.delay(attempt - 1, _retry_after(e))
            backoff.delays.append(wait)
            if on_retry is not None:
                on_retry(e, wait)
            backoff.sleep(wait)


def api_client(settings: KubernetesSettings) -> Any:
    """An `ApiClient` for the configured cluster (kubeconfig file, else in-cluster)."""
    import kubernetes.client
    import kubernetes.config

    configuration = kubernetes.client.Configuration()
    try:
        if settings.kubeconfig is not None:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(settings.kubeconfig), context=settings.context, client_configuration=configuration)
        else:
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration)
    except (kubernetes.config.ConfigException, OSError) as e:
        where = f"kubeconfig {settings.kubeconfig}" if settings.kubeconfig else "the in-cluster service account"
        raise KubeError(f"cannot configure the Kubernetes client from {where}: {e}") from e
    configuration.retries = False
    return kubernetes.client.ApiClient(configuration)


def to_dict(api: Any, model: Any, kind: str, api_version: str) -> dict[str, Any]:
    """A client model as the API server's JSON (camelCase keys, RFC 3339 times), kind included.

    List items come back without `kind`/`apiVersion`; the snapshot builder indexes by kind.
    """
    if isinstance(model, dict):
        data = dict(model)
    else:
        data = api.sanitize_for_serialization(model)
    data["kind"] = kind
    data["apiVersion"] = api_version
    return data


def raw_json(response: Any) -> dict[str, Any]:
    """The body of a `_preload_content=False` answer as the API server sent it.

    The typed client models drop every field they do not know (a field newer than the client,
    a feature gate's alpha field); a template written back from a model would lose it. What
    the executor writes back (a pod template, an inverse) is read this way.
    """
    import json

    data = getattr(response, "data", response)
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise KubeError(f"the API server answered {type(doc).__name__}, not an object")
    return doc


def selector_text(selector: dict[str, Any] | None) -> str:
    """A LabelSelector (matchLabels and matchExpressions) as a `labelSelector` query string."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
