"""Where each key of a YAML document sits, so that an error names its file, line and key path.

The runbook catalog and the live configuration both report problems as `file:line: key.path:
message`; both take the lines from here. A key path is a tuple of mapping keys and sequence
indexes, `("guards", "freeze_windows", 0, "start")`, written `guards.freeze_windows[0].start`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import yaml

__all__ = ["Duplicate", "Issue", "Loc", "dotted", "key_lines", "line_of"]

Loc = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Issue:
    """One problem in one file, where a person looks for it: `file:line: key.path: message`.
    Line 0 means no line (the file as a whole); an empty path, no key."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return ": ".join(p for p in (where, self.path, self.message) if p)


@dataclass(frozen=True)
class Duplicate:
    """A key given twice in one mapping: YAML keeps only the later value, silently."""

    loc: Loc
    line: int
    first: int


def key_lines(node: yaml.Node) -> tuple[dict[Loc, int], list[Duplicate]]:
    """The 1-based line of every key path below `node`, and the keys given twice. For a
    duplicate, the lines recorded are the later value's: the one YAML loads."""
    lines: dict[Loc, int] = {}
    duplicates: list[Duplicate] = []
    _walk(node, (), lines, duplicates)
    return lines, duplicates


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], duplicates: list[Duplicate]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == _MERGE_TAG:
                continue
            name, line = str(key.value), key.start_mark.line + 1
            if name in seen:
                duplicates.append(Duplicate(loc + (name,), line, seen[name]))
                for stale in [k for k in lines if k[:len(loc) + 1] == loc + (name,)]:
                    del lines[stale]
            seen[name] = line
            lines[loc + (name,)] = line
            _walk(value, loc + (name,), lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (i,), lines, duplicates)


def line_of(loc: Loc, lines: Mapping[Loc, int], *, root: bool = True) -> int:
    """The line of `loc`, else of its nearest recorded parent (the document's start only with
    `root`); 0 when nothing is recorded."""
    for n in range(len(loc), -1 if root else 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 0


def dotted(loc: Loc) -> str:
    """("guards", "freeze_windows", 0, "start") -> "guards.freeze_windows[0].start"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
