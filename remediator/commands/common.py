"""Helpers shared by the CLI commands: errors with exit code 2, JSON output, progress bars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True, soft_wrap=True)  # errors name files: never wrap them
out = Console()

EXIT_INPUT = 2  # bad flags, bad files, bad payloads: the caller must fix something


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def write_json(path: Path | None, doc: Any) -> None:
    if path is None:
        return
    text = json.dumps(doc, indent=2, sort_keys=False)
    if str(path) == "-":
        out.print_json(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    console.print(f"wrote {path}")


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console)
