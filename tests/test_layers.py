"""The import contracts cover every module: a new module is checked as soon as it exists.

`lint-imports` (make lint, CI) checks the contracts; this test checks that the contracts in
`.importlinter` name every top-level module of `remediator`, so that none escapes them.
"""

from __future__ import annotations

import configparser
import pkgutil
from pathlib import Path

import remediator

CONFIG = Path(__file__).resolve().parents[1] / ".importlinter"
# The only modules allowed to import the simulator: the CLI and the wiring of benchmark, training and calibration.
SIM_WIRING = {"remediator.cli", "remediator.commands", "remediator.benchmark", "remediator.train",
              "remediator.calibrate", "remediator.distributed", "remediator.finetune",
              "remediator.simlive"}
# The pure core: everything in the layers from the guards' row down, and the decision step.
CORE = {"remediator.agent", "remediator.guards", "remediator.catalog", "remediator.encoding", "remediator.verify",
        "remediator.snapshot", "remediator.incident", "remediator.actions", "remediator.yamllines",
        "remediator.slis"}


def _contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser


def _names(parser: configparser.ConfigParser, contract: str, key: str) -> list[str]:
    text = parser[f"importlinter:contract:{contract}"][key]
    return [name.strip() for line in text.splitlines() for name in line.replace("|", ":").split(":") if name.strip()]


def _modules() -> set[str]:
    return {f"remediator.{m.name}" for m in pkgutil.iter_modules(remediator.__path__)}


def test_every_module_sits_in_a_layer() -> None:
    layered = _names(_contracts(), "layers", "layers")
    assert len(layered) == len(set(layered)), "a module sits in two layers"
    assert _modules() - set(layered) == set(), "add the new module to the layers contract in .importlinter"
    assert set(layered) - _modules() == set(), "the layers contract names a module that does not exist"


def test_only_the_wiring_may_import_the_simulator() -> None:
    sources = set(_names(_contracts(), "sim-seam", "source_modules"))
    assert _modules() - SIM_WIRING - sources == set(), "add the module to the sim-seam contract"


def test_the_core_is_covered_by_the_purity_contract() -> None:
    sources = set(_names(_contracts(), "core-is-pure", "source_modules"))
    assert CORE - sources == set()
    forbidden = set(_names(_contracts(), "core-is-pure", "forbidden_modules"))
    assert {"sqlite3", "socket", "subprocess", "http", "kubernetes", "langchain_core"} <= forbidden
