"""How long a real incident waits behind a flood of 2,000 alerts (issue 15).

    .venv/bin/python benchmarks/receiver_flood.py [--flood 2000] [--workloads 25] [--runs 3]

The agent is the real one (`remediator.live.service.Agent`: receiver over HTTP, SQLite
ledger, loop worker thread, observer reading the Kubernetes emulator through the official
client; no Prometheus, so each observation reads the cluster and records that metrics are
missing). The emulator holds `shop/cart` and `--workloads` load Deployments in `load`.

Two figures, both measured in this run, each the median of `--runs`:

* baseline: one real alert (`shop/cart`) into an idle agent, from the 200 until the loop
  has recorded its first observation of the incident;
* flood: one payload of `--flood` alerts for the load workloads (distinct pods, spread over
  the workloads), and right after its 200 the same real alert; the same wait.

Also printed: how many incidents the flood opened (the rest were held by the intake caps) and
how many observations of flood incidents the loop made before it reached the real one.
Figures, not a test: they move with the machine's load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from remediator.live.config import LiveConfig  # noqa: E402
from remediator.live.service import Agent  # noqa: E402
from tests.support.kube import KubeEmulator, KubeServer  # noqa: E402

TOKEN = "flood-token"
# The alerts fired just now: an incident past the loop's horizon (30 min) is closed, not observed.
STARTS = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def am_alert(name: str, **labels: str) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": name, **labels}, "annotations": {"summary": name},
            "startsAt": STARTS, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph"}


def payload(alerts: list[dict[str, Any]]) -> bytes:
    return json.dumps({"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "remediator",
                       "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "http://alertmanager", "truncatedAlerts": 0, "alerts": alerts}).encode()


def flood_payload(n: int, workloads: int) -> bytes:
    return payload([am_alert("KubeDeploymentReplicasMismatch", namespace="load", deployment=f"load-{i % workloads}",
                             pod=f"load-{i % workloads}-{i:05d}", severity="warning") for i in range(n)])


REAL = payload([am_alert("KubePodCrashLooping", namespace="shop", deployment="cart", severity="critical")])


def post(url: str, body: bytes) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.request("POST", "/alerts", body=body, headers={"Authorization": f"Bearer {TOKEN}",
                                                          "Content-Type": "application/json"})
    resp = conn.getresponse()
    answer: dict[str, Any] = json.loads(resp.read())
    conn.close()
    if resp.status != 200:
        raise SystemExit(f"the receiver answered {resp.status}: {answer}")
    return answer


@dataclass(frozen=True)
class Run:
    wait_s: float
    opened: int  # incidents the flood opened
    held: int  # flood alerts stored without an incident
    flood_steps: int  # observations of flood incidents before the real incident's first


def first_observation(store: Path, incident_id: int, timeout_s: float = 300.0) -> float:
    """The moment the loop's first snapshot of `incident_id` is committed (read on a second connection)."""
    db = sqlite3.connect(store, timeout=30)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if db.execute("SELECT 1 FROM snapshots WHERE incident_id = ? LIMIT 1", (incident_id,)).fetchone():
                return time.monotonic()
            time.sleep(0.002)
    finally:
        db.close()
    raise SystemExit(f"incident {incident_id} was not observed within {timeout_s:g}s")


def one_run(kube: KubeServer, workdir: Path, flood: int, workloads: int) -> Run:
    kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig.yaml")
    store = workdir / "ledger.db"
    config = LiveConfig.model_validate({
        "kubernetes": {"kubeconfig": str(kubeconfig)}, "store": str(store), "mode": "dry-run", "ranker": "rules",
        "listen": {"host": "127.0.0.1", "port": 0, "bearer_token": TOKEN, "max_body_bytes": 4 << 20}})
    agent = Agent(config).start()
    try:
        opened = held = 0
        if flood:
            answer = post(agent.server.url, flood_payload(flood, workloads))
            opened, held = len(answer["incidents"]), answer["held"]
        answer = post(agent.server.url, REAL)
        acknowledged = time.monotonic()
        [incident_id] = answer["incidents"]
        seen = first_observation(store, incident_id)
        with sqlite3.connect(store) as db:
            first_at = db.execute("SELECT MIN(id) FROM snapshots WHERE incident_id = ?", (incident_id,)).fetchone()[0]
            before = db.execute("SELECT COUNT(*) FROM snapshots WHERE id < ? AND incident_id != ?",
                                (first_at, incident_id)).fetchone()[0]
        return Run(seen - acknowledged, opened, held, int(before))
    finally:
        agent.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=2000, help="alerts in the flood payload")
    parser.add_argument("--workloads", type=int, default=25, help="load Deployments the flood is spread over")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with KubeServer(KubeEmulator()) as kube, tempfile.TemporaryDirectory() as tmp:
        kube.seed_deployment("cart", "shop", replicas=2, images=("cart:1", "cart:2"), nodes=("node-a", "node-b"))
        for i in range(args.workloads):
            kube.seed_deployment(f"load-{i}", "load", replicas=2, nodes=("node-a", "node-b"))
        results: dict[str, list[Run]] = {"baseline": [], "flood": []}
        for r in range(args.runs):
            for kind, n in (("baseline", 0), ("flood", args.flood)):
                workdir = Path(tmp) / f"{kind}-{r}"
                workdir.mkdir()
                results[kind].append(one_run(kube, workdir, n, args.workloads))
    base, flood = results["baseline"], results["flood"]
    print(f"real incident (shop/cart), first observation after the 200, median of {args.runs} runs:")
    print(f"  idle agent (baseline):                 {statistics.median(r.wait_s for r in base) * 1000:8.0f} ms")
    print(f"  behind a flood of {args.flood} alerts:        "
          f"{statistics.median(r.wait_s for r in flood) * 1000:8.0f} ms   (runs: "
          + ", ".join(f"{r.wait_s * 1000:.0f}" for r in flood) + " ms)")
    last = flood[-1]
    print(f"  the flood opened {last.opened} incidents ({last.held} alerts held by the intake caps); the loop "
          f"observed flood incidents {statistics.median(r.flood_steps for r in flood):.0f} times before the real one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
