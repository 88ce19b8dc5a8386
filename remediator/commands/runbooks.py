"""`remediator runbooks validate [DIR]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from remediator.commands.common import console, inert, out


def register(app: typer.Typer) -> None:
    runbooks = typer.Typer(help="Work with the runbook catalog.", no_args_is_help=True)
    app.add_typer(runbooks, name="runbooks")

    @runbooks.command("validate")
    def validate(directory: Annotated[Path | None, typer.Argument(help="default: the shipped catalog")] = None
                 ) -> None:
        """Check every runbook; exit 0 when all are valid, 2 with file:line: field: problem otherwise."""
        from remediator.catalog import load_catalog, shipped_runbooks_dir, validate_dir

        path = directory or shipped_runbooks_dir()
        if not path.exists():
            console.print(f"[bold red]error:[/] {inert(path)} does not exist", highlight=False)
            raise typer.Exit(2)
        issues = validate_dir(path)
        if issues:
            for issue in issues:
                console.print(inert(issue), highlight=False)
            console.print(f"[bold red]{len(issues)} problem(s)[/] in {inert(path)}", highlight=False)
            raise typer.Exit(2)
        catalog = load_catalog(path)
        out.print(f"{len(catalog.runbooks)} runbooks valid in {inert(path)}: {inert(', '.join(catalog.alerts))}",
                  highlight=False)
