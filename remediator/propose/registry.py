"""The one registry of proposers by name, for `remediator propose` and the live agent.

    catalog   the runbook catalog; semantic matching for alerts no runbook names when the
              embedding model is installed (`proposer: {kind: catalog, semantic: false}` turns it off)
    llm       an LLM through LangChain, the catalog as its fallback (the optional extra `llm`)

Settings come from the configuration's `proposer:` section (minus `kind`). Without a file, the
environment picks the LLM provider: `REMEDIATOR_LLM_PROVIDER` (local, openai, ollama),
`REMEDIATOR_LLM_BASE_URL`, `REMEDIATOR_LLM_MODEL` (the key comes from `OPENAI_API_KEY` or the
variable named by `proposer.api_key_env`); keys in the file win. LangChain is imported only
when `llm` is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from remediator.propose.base import Proposer

__all__ = ["ENV_SETTINGS", "PROPOSER_KINDS", "ProposerConfigError", "llm_settings", "make_proposer"]

ENV_SETTINGS = {"provider": "REMEDIATOR_LLM_PROVIDER", "base_url": "REMEDIATOR_LLM_BASE_URL",
                "model": "REMEDIATOR_LLM_MODEL"}


class ProposerConfigError(ValueError):
    """A proposer that does not exist or cannot be built from its settings."""


def llm_settings(settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The config's `proposer:` settings over the `REMEDIATOR_LLM_*` environment defaults."""
    env = os.environ if env is None else env
    defaults = {key: env[var] for key, var in ENV_SETTINGS.items() if env.get(var)}
    return {**defaults, **{k: v for k, v in settings.items() if v is not None}}


def _catalog(settings: Mapping[str, Any]) -> Proposer:
    from remediator.propose.semantic import catalog_proposer

    semantic = settings.get("semantic")
    return catalog_proposer(semantic=None if semantic is None else bool(semantic))


def _llm(settings: Mapping[str, Any]) -> Proposer:
    from remediator.propose.semantic import catalog_proposer

    try:
        from remediator.propose.llm import ProposerError, build_llm_proposer
    except ImportError as e:
        raise ProposerConfigError(f"the llm proposer needs the optional extra: pip install 'remediator[llm]' ({e})"
                                  ) from e
    fallback = catalog_proposer()
    try:
        return build_llm_proposer(llm_settings(settings), fallback.catalog, fallback=fallback,
                                  matcher=fallback.matcher)
    except ProposerError as e:
        raise ProposerConfigError(str(e)) from e
    except RuntimeError as e:  # remediator.llm_server.LLMSetupError: the local model is not installed or broken
        raise ProposerConfigError(f"the local model did not start: {e}") from e


_FACTORIES: Mapping[str, Callable[[Mapping[str, Any]], Proposer]] = {"catalog": _catalog, "llm": _llm}
PROPOSER_KINDS = tuple(_FACTORIES)


def make_proposer(kind: str, settings: Mapping[str, Any] | None = None) -> Proposer:
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise ProposerConfigError(f"unknown proposer {kind!r}; known: {', '.join(PROPOSER_KINDS)}")
    return factory(settings or {})
