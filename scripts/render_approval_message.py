"""Render the Slack approval message the agent posts, from a real run, for the README.

    PYTHONPATH=. .venv/bin/python scripts/render_approval_message.py [--out docs/approval-message]

The message is not drawn by hand: a crash-looping `shop/cart` is seeded in the Kubernetes
emulator, the loop (mode: approve, the real executor and its server-side dry run) parks the
incident, and the notifier's Block Kit blocks are captured. It writes OUT.json (the blocks as
posted: paste them into Slack's Block Kit Builder) and OUT.png (a plain rendering of them with
Pillow: text, code block and buttons; not Slack's own renderer).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
WIDTH, PAD = 980, 28


def capture_blocks() -> list[dict[str, Any]]:
    from remediator.live.ledger import Ledger, ReceivedAlert
    from remediator.live.slack import blocks
    from tests.live.conftest import seed_workload, snapshot_for
    from tests.live.test_approval import FixedWorld, make_loop
    from tests.support.kube import KubeEmulator, KubeServer

    snap = snapshot_for()
    t0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC).timestamp()
    alert = dataclasses.replace(snap.alert, starts_at=t0,
                                annotations={"summary": "cart restarts 4 times a minute (CrashLoopBackOff)"})
    snap = dataclasses.replace(snap, alert=alert, signals=dataclasses.replace(
        snap.signals, available_replicas=0.0, pods=2.0, ready_pods=0.0, restarts_per_min=4.0, crashloop_fraction=1.0,
        error_exit_fraction=1.0, error_ratio=0.41, latency_p99_s=0.12))
    posted: list[list[dict[str, Any]]] = []
    with KubeServer(KubeEmulator()) as kube, Ledger(":memory:") as ledger:
        seed_workload(kube)
        loop = make_loop(kube, ledger, FixedWorld(snap))
        loop.notifiers = (lambda row: posted.append(blocks(row, ["U024BE7LH", "U0G9QF9C6"])),)
        ledger.record_alerts([ReceivedAlert(snap.alert)], received_at=t0)
        loop.tick(t0 + 60.0)
    return posted[0]


def _plain(text: str) -> str:
    """mrkdwn as the reader sees it: no markers, entities decoded, mentions as @id."""
    text = re.sub(r"<@([A-Z0-9]+)>", r"@\1", text)
    text = text.replace("*", "").replace("`", "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_png(blocks: list[dict[str, Any]], out: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    sans = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), 15)
    bold = ImageFont.truetype(str(FONT_DIR / "DejaVuSans-Bold.ttf"), 19)
    mono = ImageFont.truetype(str(FONT_DIR / "DejaVuSansMono.ttf"), 13)
    small = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), 12)
    ops: list[tuple[str, Any, int]] = []  # (kind, payload, height)
    for b in blocks:
        if b["type"] == "header":
            ops.append(("text", (b["text"]["text"], bold, "#1d1c1d"), 34))
        elif b["type"] == "section":
            text = b["text"]["text"]
            prose, _, code = text.partition("```")
            for line in _plain(prose).strip("\n").split("\n"):
                for wrapped in textwrap.wrap(line, 108) or [""]:
                    ops.append(("text", (wrapped, sans, "#1d1c1d"), 22))
            if code:
                lines = _plain(code.rstrip("`")).split("\n")
                ops.append(("code", lines, 18 * len(lines) + 18))
            ops.append(("gap", None, 10))
        elif b["type"] == "context":
            ops.append(("text", (_plain(b["elements"][0]["text"]), small, "#616061"), 22))
        elif b["type"] == "actions":
            ops.append(("buttons", [e["text"]["text"] for e in b["elements"]], 46))
    height = PAD * 2 + sum(h for _, _, h in ops)
    img = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([PAD - 14, PAD - 8, PAD - 10, height - PAD], fill="#e01e5a")  # the attachment bar
    y = PAD
    for kind, payload, h in ops:
        if kind == "text":
            text, font, colour = payload
            draw.text((PAD, y), text, font=font, fill=colour)
        elif kind == "code":
            draw.rounded_rectangle([PAD, y, WIDTH - PAD, y + h - 6], 4, fill="#f8f8f8", outline="#dddddd")
            for i, line in enumerate(payload):
                draw.text((PAD + 10, y + 8 + 18 * i), line, font=mono, fill="#c7254e" if "→" in line else "#1d1c1d")
        elif kind == "buttons":
            x = PAD
            for label, fill in zip(payload, ("#007a5a", "#e01e5a")):
                w = int(draw.textlength(label, font=sans)) + 32
                draw.rounded_rectangle([x, y + 6, x + w, y + 38], 4, fill=fill)
                draw.text((x + 16, y + 13), label, font=sans, fill="white")
                x += w + 10
        y += h
    img.save(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "approval-message")
    args = parser.parse_args()
    found = capture_blocks()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"blocks": found}, indent=2, ensure_ascii=False) + "\n")
    render_png(found, args.out.with_suffix(".png"))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
