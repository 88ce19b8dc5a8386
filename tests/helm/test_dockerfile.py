"""The Dockerfile, without a Docker engine: what it copies exists, it runs non-root as the chart expects,
torch is the pinned CPU wheel, and its build-time check passes on this tree."""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helm.render import one, render

ROOT = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((ROOT / "helm" / "remediator" / "values.yaml").read_text())


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def _ignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = Path(path).parts
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(parts[0], p) for p in patterns)


def test_every_copied_file_exists_and_is_in_the_build_context() -> None:
    copies = [shlex.split(args) for word, args in instructions() if word == "COPY"]
    local = [c for c in copies if not any(a.startswith("--from") for a in c)]
    assert local
    for *sources, _dest in local:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not _ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
    copied = {s.rstrip("/") for *sources, _ in local for s in sources}
    # The runbooks (behind remediator/data/runbooks, a symlink) and the shipped policy are in the context.
    assert {"runbooks", "remediator", "pyproject.toml"} <= copied
    assert (ROOT / "remediator" / "data" / "runbooks").resolve() == (ROOT / "runbooks").resolve()
    assert (ROOT / "remediator" / "data" / "policy" / "policy.zip").is_file()


def test_the_image_runs_non_root_as_the_chart_expects() -> None:
    users = [args for word, args in final_stage() if word == "USER"]
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    # Numeric, so that the kubelet can check runAsNonRoot without reading /etc/passwd.
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert int(uid) == VALUES["podSecurityContext"]["runAsUser"]
    assert int(gid) == VALUES["podSecurityContext"]["runAsGroup"]
    steps = final_stage()
    assert [w for w, _ in steps].index("USER") > max(i for i, (w, _) in enumerate(steps) if w in ("RUN", "COPY"))


def test_torch_is_the_pinned_cpu_wheel_installed_first() -> None:
    runs = [args for word, args in instructions() if word == "RUN"]
    torch = next(i for i, r in enumerate(runs) if "torch==" in r)
    assert "torch==2.13.0" in runs[torch] and "download.pytorch.org/whl/cpu" in runs[torch]
    package = next(i for i, r in enumerate(runs) if re.search(r"pip install \"\.", r))
    assert torch < package
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in deps


def test_the_python_version_is_the_one_the_chart_mounts_runbooks_for() -> None:
    arg = next(args for word, args in instructions() if word == "ARG" and args.startswith("PYTHON="))
    version = arg.split("=", 1)[1]
    assert VALUES["runbooks"]["mountPath"] == (f"/opt/remediator/lib/python{version}/site-packages/"
                                               "remediator/data/runbooks")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.findall(r"3\.(\d+)", requires)
    assert int(low) <= int(version.split(".")[1]) < int(high)


@pytest.mark.slow
def test_entrypoint_is_what_the_chart_runs(tmp_path: Path) -> None:
    steps = dict(final_stage())
    container = one(render(tmp_path), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert yaml.safe_load(steps["ENTRYPOINT"]) == container["command"]
    assert yaml.safe_load(steps["CMD"]) == container["args"]
    assert steps["EXPOSE"] == str(VALUES["service"]["port"])


@pytest.mark.slow
def test_the_build_time_check_passes_on_this_tree() -> None:
    """The Dockerfile's own check (runbooks and shipped policy load), run here outside the source directory."""
    check = next(args for word, args in instructions() if word == "RUN" and "load_catalog" in args)
    code = shlex.split(check.split("python -c", 1)[1])[0]
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
