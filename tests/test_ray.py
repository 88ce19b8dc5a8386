"""Ray against a real local cluster: a head node and a second node, both `ray start` on this machine.

Each node gets one CPU, so two tasks in flight must run on both. The cluster runs in its own
process sessions; the finalizer ends exactly those (by process group), and removes its files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from typer.testing import CliRunner

from remediator.benchmark import run_benchmark
from remediator.cli import app
from remediator.distributed import RayRunner, ray_session
from remediator.rank.rl import read_metadata
from simulator.suite import load_suite

RAY = str(Path(sys.executable).with_name("ray"))
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_args(tmp: str) -> list[str]:
    """The ports a node listens on, all chosen free (none of Ray's defaults, which a developer's
    own Ray may hold), and no dashboard."""
    base = _free_port()
    # A worker port range below the kernel's ephemeral range (32768-60999), where the other
    # ports, picked free by binding port 0, come from: the two never collide.
    low = 20000 + base % 12000
    return ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--temp-dir", tmp,
            "--disable-usage-stats", "--node-manager-port", str(_free_port()),
            "--object-manager-port", str(_free_port()), "--min-worker-port", str(low),
            "--max-worker-port", str(low + 60), "--metrics-export-port", str(_free_port()),
            "--dashboard-agent-listen-port", str(_free_port()), "--dashboard-agent-grpc-port", str(_free_port()),
            "--runtime-env-agent-port", str(_free_port())]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Ray head did not listen on {port} within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """End the nodes this fixture started: each `ray start` leads its own process group, which
    holds its raylet, GCS, agents and workers."""
    for p in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(max(0.1, deadline - time.monotonic()))
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A two-node Ray cluster on loopback; yields the head's address."""
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's unix sockets live under it
    # No token authentication on this loopback test cluster: Ray reads the mode once, when it is
    # imported, and would otherwise pick up whatever ~/.ray/auth_token a local `ray.init()` left.
    auth = {"RAY_AUTH_MODE": "disabled"}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
           "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, extra in enumerate((["--head", "--port", str(port), "--include-dashboard", "false"],
                                   ["--address", address])):
            log = Path(tmp) / f"node{i}.log"
            procs.append(subprocess.Popen([RAY, "start", *extra, *_node_args(tmp)], env=env, start_new_session=True,
                                          stdout=log.open("wb"), stderr=subprocess.STDOUT))
            if i == 0:
                _wait_for_port(port, procs[0], log)
        with ray_session(address):
            # Generous: on a loaded 2-core machine a raylet takes a minute or more to register.
            deadline = time.monotonic() + 240
            while sum(n["Alive"] for n in ray.nodes()) < 2:
                log = (Path(tmp) / "node1.log").read_text(errors="replace")[-3000:]
                assert procs[1].poll() is None, f"the second node's `ray start` exited:\n{log}"
                assert time.monotonic() < deadline, f"the second Ray node never joined:\n{log}"
                time.sleep(0.5)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _without_timing(doc: dict[str, Any]) -> dict[str, Any]:
    for r in doc["rankers"].values():
        r.pop("wall_s")  # wall-clock seconds: the one field that measures the machine, not the rankers
    return doc


def test_benchmark_over_ray_reports_what_the_local_run_reports(ray_cluster: str, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["benchmark", "--suite", "eval", "--seed", "7", "--episodes", "24", "--rankers", "oracle,rules,random,rl"]
    local = runner.invoke(app, [*args, "--json", str(tmp_path / "local.json")])
    assert local.exit_code == 0, local.output
    sharded = runner.invoke(app, [*args, "--json", str(tmp_path / "ray.json"), "--ray", "--address", ray_cluster])
    assert sharded.exit_code == 0, sharded.output
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("local.json", "ray.json"))
    assert a["rankers"]["rules"]["wall_s"] > 0 and b["rankers"]["rules"]["wall_s"] > 0
    assert _without_timing(a) == _without_timing(b)
    assert not ray.is_initialized()  # the command left the cluster, it did not keep the session


def test_shards_run_on_both_nodes(ray_cluster: str) -> None:
    suite = load_suite("default")
    with ray_session(ray_cluster):
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        runner = RayRunner(workers=2, shard=5)
        report = run_benchmark(suite, ["rules"], seed=3, episodes=40, runner=runner)
    assert len(nodes) == 2
    assert runner.nodes == nodes, (runner.nodes, nodes)  # tasks ran on the head and on the second node
    assert _without_timing(report) == _without_timing(run_benchmark(suite, ["rules"], seed=3, episodes=40))


def test_a_bad_address_is_a_clear_error() -> None:
    res = CliRunner().invoke(app, ["benchmark", "--episodes", "1", "--address", "127.0.0.1:1"])
    assert res.exit_code == 2 and "--address and --workers go with --ray" in res.output


def test_train_sweep_with_tune_keeps_the_best_on_validation(ray_cluster: str, tmp_path: Path) -> None:
    out = tmp_path / "best.zip"
    hp = ["--hp", "learning_starts=64", "--hp", "batch_size=32", "--hp", "target_update_interval=64"]
    res = CliRunner().invoke(app, ["train", "--algo", "dqn", "--suite", "default", "--timesteps", "300", "--seed", "3",
                                   "--out", str(out), *hp, "--no-progress", "--ray", "--trials", "2",
                                   "--address", ray_cluster, "--validation-episodes", "12"])
    assert res.exit_code == 0, res.output
    meta = read_metadata(out)
    sel = meta.extra["selection"]
    assert sel["validation_suite"] == "validation" and len(sel["trials"]) == 2
    best = min(sel["trials"], key=lambda t: (t["validation_mttr_s"], t["index"]))
    assert sel["winner"] == best["index"]
    # The metadata's command trains the winner alone: its seed and its hyperparameters.
    assert meta.command.startswith("remediator train --algo dqn --suite default --timesteps 300")
    assert f"--seed {best['seed']}" in meta.command and "--ray" not in meta.command
    assert meta.seed == best["seed"] and all(f"{k}={v}" in meta.command for k, v in best["hyperparams"].items())
    assert "--ray --trials 2" in sel["sweep_command"]
    assert out.with_suffix(".json").is_file() and out.with_suffix(".png").is_file()
    assert "winner" in res.output
    # Run that command here, without Ray: the same policy, the same validation score.
    argv = shlex.split(meta.command)[1:]
    argv[argv.index("--out") + 1] = str(tmp_path / "again.zip")
    again = CliRunner().invoke(app, [*argv, "--no-progress"])
    assert again.exit_code == 0, again.output
    spec = f"dqn:{tmp_path / 'again.zip'}"
    report = run_benchmark(load_suite("validation"), [spec], seed=load_suite("validation").seed, episodes=12)
    assert report["rankers"][spec]["mttr_s"] == best["validation_mttr_s"]


def test_a_sweep_never_selects_on_an_eval_suite(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["train", "--algo", "dqn", "--suite", "default", "--timesteps", "10", "--seed", "1",
                                   "--out", str(tmp_path / "x.zip"), "--ray", "--trials", "1",
                                   "--validation", "eval"])
    assert res.exit_code == 2 and "held out for evaluation" in res.output


def test_sweep_options_need_ray(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["train", "--algo", "dqn", "--suite", "default", "--timesteps", "10", "--seed", "1",
                                   "--out", str(tmp_path / "x.zip"), "--trials", "2"])
    assert res.exit_code == 2 and "go with --ray" in res.output
