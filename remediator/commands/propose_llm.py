"""Registers the `llm` proposer (and the semantic catalog proposer) for `remediator propose` and `run`.

`remediator.live.wiring.PROPOSERS` maps a proposer kind to a factory of the config's
`proposer:` settings. The live commands call `register_proposers()` before they build a
proposer, so that::

    remediator propose --alert payload.json --proposer llm          # local Gemma, no config needed
    remediator propose --alert payload.json --config agent.yaml     # proposer: {kind: llm, provider: openai, ...}

work without the live path importing LangChain. Without a configuration file the
environment picks the provider: `REMEDIATOR_LLM_PROVIDER` (local, openai, ollama),
`REMEDIATOR_LLM_BASE_URL`, `REMEDIATOR_LLM_MODEL` (the key comes from `OPENAI_API_KEY` or the
variable named by `proposer.api_key_env`); keys in the file win. `catalog` becomes the catalog proposer with
semantic matching for alerts that no runbook names, when the embedding model is installed
(`proposer: {kind: catalog, semantic: false}` turns it off).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from remediator.propose.base import Proposer

ENV_SETTINGS = {"provider": "REMEDIATOR_LLM_PROVIDER", "base_url": "REMEDIATOR_LLM_BASE_URL",
                "model": "REMEDIATOR_LLM_MODEL"}


def llm_settings(settings: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The config's `proposer:` settings over the `REMEDIATOR_LLM_*` environment defaults."""
    env = os.environ if env is None else env
    defaults = {key: env[var] for key, var in ENV_SETTINGS.items() if env.get(var)}
    return {**defaults, **{k: v for k, v in settings.items() if v is not None}}


def _catalog(settings: dict[str, Any]) -> Proposer:
    from remediator.propose.semantic import catalog_proposer

    semantic = settings.get("semantic")
    return catalog_proposer(semantic=None if semantic is None else bool(semantic))


def _llm(settings: dict[str, Any]) -> Proposer:
    from remediator.live.wiring import WiringError
    from remediator.propose.semantic import catalog_proposer

    try:
        from remediator.propose.llm import ProposerError, build_llm_proposer
    except ImportError as e:
        raise WiringError(f"the llm proposer needs the optional extra: pip install 'remediator[llm]' ({e})") from e
    fallback = catalog_proposer()
    try:
        return build_llm_proposer(llm_settings(settings), fallback.catalog, fallback=fallback,
                                  matcher=fallback.matcher)
    except ProposerError as e:
        raise WiringError(str(e)) from e
    except RuntimeError as e:  # remediator.llm_server.LLMSetupError: the local model is not installed or broken
        raise WiringError(f"the local model did not start: {e}") from e


def register_proposers() -> None:
    """Add `llm` and the semantic `catalog` to the live wiring's proposer registry (idempotent)."""
    from remediator.live.wiring import PROPOSERS

    PROPOSERS["catalog"] = _catalog
    PROPOSERS["llm"] = _llm
