"""The `remediator` command line. Each command group lives in `remediator.commands`."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(name="remediator", no_args_is_help=True, add_completion=False,
                  help="An AIOps remediation agent for Kubernetes: simulate, benchmark, train, propose, run.")

# Command modules, each with register(app). Add new groups here.
COMMAND_MODULES = ("sim", "runbooks", "train", "live", "replay")

for _name in COMMAND_MODULES:
    importlib.import_module(f"remediator.commands.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
