"""Helpers shared by the CLI commands: errors with exit code 2, inert output, JSON output, progress bars.

Everything the CLI prints goes through Rich, which reads `[...]` in a string as markup (an
alert named `[/nope]` raises `MarkupError`, `[link=http://evil]x[/link]` becomes a
hyperlink) and passes control characters to the terminal (`ESC[2J` clears it, `ESC]0;...`
sets its title). Alert names, labels, annotations, object names, reasons and LLM rationales
come from outside, so every such string goes through `inert` before Rich sees it::

    >>> inert("[link=http://evil]x[/link]\\x1b[2J")
    '\\\\[link=http://evil]x\\\\[/link][2J'
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

# Emoji codes (`:skull:`) are markup too; nothing here prints one on purpose.
console = Console(stderr=True, soft_wrap=True, emoji=False)  # errors name files: never wrap them
out = Console(emoji=False)

EXIT_INPUT = 2  # bad flags, bad files, bad payloads: the caller must fix something

# C0 and C1 control characters and DEL (ESC, BEL, CSI, ...), and the bidirectional overrides
# and isolates that make a terminal show text in another order than it is.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n\r\x0b\x0c\x85\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def inert(value: object, *, newlines: bool = False) -> str:
    """`value` as text Rich prints literally: markup escaped, control characters removed.

    Line breaks and tabs become spaces (one table cell, one line), unless `newlines` keeps
    `\\n` for a multi-line message; lone surrogates, which no terminal encoding can print,
    become U+FFFD.
    """
    text = str(value)
    if newlines:
        text = "\n".join(_LINE_BREAKS.sub(" ", line) for line in text.split("\n"))
    else:
        text = _LINE_BREAKS.sub(" ", text)
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))
    return escape(text)


def ray_adapter() -> Any:
    """`remediator.distributed`, or a clear error when the optional Ray extra is not installed."""
    try:
        from remediator import distributed
    except ImportError as e:
        fail(f"--ray needs Ray: pip install 'remediator[ray]' ({e})")
    return distributed


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    console.print(f"[bold red]error:[/] {inert(message, newlines=True)}", highlight=False)
    raise typer.Exit(code)


def print_json(doc: Any) -> None:
    """`doc` as JSON on standard output, every non-ASCII or control character \\u-escaped (inert)."""
    out.print_json(json.dumps(doc), ensure_ascii=True)


def write_json(path: Path | None, doc: Any) -> None:
    if path is None:
        return
    text = json.dumps(doc, indent=2, sort_keys=False)
    if str(path) == "-":
        out.print_json(text, ensure_ascii=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    console.print(f"wrote {inert(path)}", highlight=False)


def progress_bar() -> Progress:
    """A progress bar; task descriptions are markup, so pass them through `inert`."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console)
