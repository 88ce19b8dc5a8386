"""The helm v3 binary that scripts/ci/install-system.sh puts at ``.tools/bin/helm``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HELM = REPO_ROOT / ".tools" / "bin" / "helm"


def helm_binary() -> Path | None:
    """``.tools/bin/helm``, else ``helm`` on PATH, else ``None``."""
    if HELM.is_file() and os.access(HELM, os.X_OK):
        return HELM
    found = shutil.which("helm")
    return Path(found) if found else None


def helm(*args: str, cwd: Path | None = None, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run helm offline (its cache/config under a throw-away HOME is not needed for lint/template)."""
    binary = helm_binary()
    if binary is None:
        raise FileNotFoundError("helm not found: run scripts/ci/install-system.sh")
    return subprocess.run([str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
