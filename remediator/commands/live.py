"""`remediator propose`, `history`, `undo` and `run`: the live path (DESIGN §7).

`propose --alert PAYLOAD.json` reads an Alertmanager v4 webhook payload (a file or `-`):
without `--config` it works offline from the alert's labels alone (every metric missing);
with `--config` it observes the live cluster (Prometheus and the Kubernetes API). Either
way it prints the candidates with their guard verdicts and acts on nothing.

A configuration the agent cannot use exits 2 naming the key (`store`, `kubernetes.kubeconfig`,
`listen.port`, ...), whether the problem shows when the file is read or when the part is
built. Tables print every string from outside (alert names, labels, reasons, rationales,
object names) through `inert`: it is data, never markup or terminal control.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from remediator.commands.common import console, fail, inert, out, print_json

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="the agent's YAML configuration (DESIGN §7)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of a table")]


def _config(path: Path | None) -> Any:
    from remediator.live.config import ConfigError, default_config, load_config

    try:
        return load_config(path) if path is not None else default_config()
    except ConfigError as e:
        fail(str(e))


def _ledger(cfg: Any) -> Any:
    """The configured ledger, which must exist (`history`, `undo`); otherwise exit 2 at `store`."""
    from remediator.live.config import ConfigError
    from remediator.live.wiring import open_ledger

    if not Path(cfg.store).exists():
        fail(str(cfg.error("store", f"no ledger at {cfg.store} (set `store:` in the configuration)")))
    try:
        return open_ledger(cfg)
    except ConfigError as e:
        fail(str(e))


def _kube_api(cfg: Any) -> Any:
    from remediator.live.config import ConfigError
    from remediator.live.wiring import kube_client

    try:
        return kube_client(cfg)
    except ConfigError as e:
        fail(str(e))


def _read_payload(alert: str) -> list[Any]:
    from remediator.live.receiver import PayloadError, parse_payload

    try:
        body = sys.stdin.read() if alert == "-" else Path(alert).read_text()
    except OSError as e:
        fail(f"--alert {alert}: cannot read it: {e.strerror}")
    try:
        return parse_payload(body)
    except PayloadError as e:
        fail(f"--alert {alert}: not a valid Alertmanager webhook payload:\n  " + "\n  ".join(e.problems))


def _parse_time(text: str) -> float:
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except ValueError:
        fail(f"--at {text!r} is neither RFC 3339 (2026-01-01T00:15:00Z) nor unix seconds")


def _target(ref: Any) -> dict[str, str]:
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}


def propose_report(received: list[Any], config: Any, *, proposer_kind: str | None, ranker_name: str | None,
                   live: bool, now: float | None = None, kube_api: Any = None) -> dict[str, Any]:
    """The `propose --json` document for these alerts (DESIGN §7), acting on nothing."""
    from remediator.agent import decide
    from remediator.live.loop import HISTORY_S
    from remediator.live.observer import ObservationError
    from remediator.live.wiring import make_observer, make_proposer, make_ranker, open_ledger

    now = time.time() if now is None else now
    observer = make_observer(config if live else None, kube_api=kube_api)
    history: list[Any] = []
    if live and Path(config.store).exists():
        with open_ledger(config) as ledger:
            history = ledger.guard_history(now - HISTORY_S, dry_run=config.dry_run)
    proposer = make_proposer(proposer_kind, config)
    ranker = make_ranker(ranker_name or config.ranker, str(config.policy) if config.policy else None)
    policy = config.policy_for_guards()
    doc: dict[str, Any] = {"alerts": [], "candidates": [], "chosen": None, "decisions": [],
                           "mode": "live" if live else "offline", "dry_run": config.dry_run}
    for i, item in enumerate(received):
        a = item.alert
        doc["alerts"].append({"name": a.name, "status": a.status, "fingerprint": a.fingerprint,
                              "labels": dict(a.labels), "annotations": dict(a.annotations), "starts_at": a.starts_at,
                              "ends_at": item.ends_at})
        decision: dict[str, Any] = {"alert": i, "chosen": None, "workload": None, "missing": [], "problem": None}
        doc["decisions"].append(decision)
        if a.status != "firing":
            decision["problem"] = "resolved: nothing to do"
            continue
        try:
            obs = observer.observe(a, now=now)
        except ObservationError as e:
            decision["problem"] = e.reason
            continue
        snap = obs.snapshot
        decision["workload"] = _target(snap.workload) if snap.workload else None
        decision["missing"] = [str(m) for m in obs.missing] or list(snap.missing)
        decision["problem"] = obs.problem
        choice = decide(snap, proposer.propose(snap), ranker, history, policy, now)
        first = len(doc["candidates"])
        for j, (r, v) in enumerate(zip(choice.ranked, choice.verdicts)):
            c = r.candidate
            doc["candidates"].append({
                "action": c.kind.value, "target": _target(c.action.target), "params": dict(c.action.params),
                "score": r.score, "verdict": v.decision.value, "reason": v.reason, "source": c.source,
                "rationale": c.rationale, "guard": v.guard, "proposer_score": c.score, "alert": i,
                "chosen": j == choice.chosen})
        if choice.chosen is not None:
            decision["chosen"] = first + choice.chosen
            if doc["chosen"] is None:
                doc["chosen"] = first + choice.chosen
    return doc


def _print_proposal(doc: dict[str, Any]) -> None:
    for d in doc["decisions"]:
        a = doc["alerts"][d["alert"]]
        w = d["workload"]
        title = inert(f"{a['name']} ({a['status']})" + (f" on {w['kind']}/{w['namespace']}/{w['name']}" if w else ""))
        if d["problem"]:
            console.print(f"[yellow]{title}: {inert(d['problem'])}[/]", highlight=False)
        rows = [(k, c) for k, c in enumerate(doc["candidates"]) if c["alert"] == d["alert"]]
        if not rows:
            continue
        t = Table(title=title)
        for col in ("#", "action", "target", "params", "score", "verdict", "reason"):
            t.add_column(col)
        for k, c in rows:
            mark = "[bold green]>[/] " if k == d["chosen"] else ""
            tgt = c["target"]
            t.add_row(f"{mark}{k}", inert(c["action"]),
                      inert("/".join(part for part in (tgt["kind"], tgt["namespace"], tgt["name"]) if part)),
                      inert(json.dumps(c["params"])) if c["params"] else "", f"{c['score']:.2f}", inert(c["verdict"]),
                      inert(c["reason"]))
        out.print(t)
        if d["missing"]:
            names = ", ".join(m.split(":")[0] for m in d["missing"])
            console.print(f"missing metrics: {len(d['missing'])} ({inert(names)})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the live path's commands, in the order `--help` lists them."""
    _register_propose(app)
    _register_history(app)
    _register_undo(app)
    _register_decisions(app)
    _register_run(app)


def _propose_or_fail(received: list[Any], cfg: Any, config: Path | None, *, proposer: str | None,
                     ranker: str | None, now: float | None, api: Any) -> dict[str, Any]:
    """`propose_report`, exiting 2 on a configuration it cannot wire, named where the user can fix it."""
    from remediator.live.config import ConfigError
    from remediator.live.wiring import WiringError, located

    try:
        return propose_report(received, cfg, proposer_kind=proposer, ranker_name=ranker, live=config is not None,
                              kube_api=api, now=now)
    except WiringError as e:
        flag = {"proposer.kind": proposer, "ranker": ranker}.get(e.key or "")
        if flag is not None or config is None:  # the flag named it, or there is no file to point into
            fail(str(e))
        fail(str(located(cfg, e)))
    except ConfigError as e:
        fail(str(e))


def _observation_failed(doc: dict[str, Any]) -> bool:
    """A live decision that could not be made (a resolved alert needs none, so it is no failure)."""
    return any(d["problem"] and d["problem"] != "resolved: nothing to do" for d in doc["decisions"])


def _register_propose(app: typer.Typer) -> None:
    @app.command()
    def propose(
        alert: Annotated[str, typer.Option("--alert", help="an Alertmanager v4 webhook payload (JSON file, or - for "
                                                            "standard input)")],
        config: ConfigOpt = None,
        proposer: Annotated[str | None, typer.Option("--proposer", help="catalog (default) or llm (the "
                                                                        "config's settings, else local Gemma)")] = None,
        ranker: Annotated[str | None, typer.Option("--ranker", help="auto, rules, rl, random, llm, dqn:FILE, "
                                                                    "ppo:FILE (default: the config's)")] = None,
        at: Annotated[str | None, typer.Option("--at", help="observe as of this time (RFC 3339 or unix seconds), "
                                                            "e.g. to replay a past alert; default: now")] = None,
        json_out: JsonFlag = False,
    ) -> None:
        """What the agent would do for these alerts: candidates, ranking and guard verdicts. Acts on nothing."""
        received = _read_payload(alert)
        cfg = _config(config)
        now = _parse_time(at) if at is not None else None
        api = _kube_api(cfg) if config is not None else None
        doc = _propose_or_fail(received, cfg, config, proposer=proposer, ranker=ranker, now=now, api=api)
        if json_out:
            print_json(doc)
        else:
            _print_proposal(doc)
        if config is not None and _observation_failed(doc):
            raise typer.Exit(1)


def _history_table(store: Path, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=f"incidents in {inert(store)}")
    for col in ("id", "alert", "workload", "status", "opened (UTC)", "actions", "recovery", "reason"):
        t.add_column(col)
    for r in rows:
        actions = ", ".join(f"#{e['id']} {e['action']}{' (dry-run)' if e['dry_run'] else ''} {e['state']}"
                            + (f" undone by #{e['undone_by']}" if e["undone_by"] else "")
                            + (" IRREVERSIBLE" if e.get("irreversible") and e["state"] == "done" else "")
                            for e in r["executions"])
        t.add_row(str(r["id"]), inert(r["alert"]), inert(r["workload"] or "-"), inert(r["status"]),
                  time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["opened_at"])), inert(actions or "-"),
                  f"{r['recovery_s']:.0f}s" if r["recovery_s"] is not None else "-", inert(r["close_reason"] or ""))
    return t


def _register_history(app: typer.Typer) -> None:
    @app.command()
    def history(config: ConfigOpt = None, json_out: JsonFlag = False,
                limit: Annotated[int, typer.Option("--limit", min=1, help="newest incidents to show")] = 20) -> None:
        """Incidents from the ledger, newest first, with what was done and how it ended."""
        cfg = _config(config)
        with _ledger(cfg) as ledger:
            rows = ledger.history(limit=limit)
        if json_out:
            print_json({"store": str(cfg.store), "incidents": rows})
            return
        out.print(_history_table(cfg.store, rows))


def _undo_execution(cfg: Any, execution_id: int, dry_run: bool) -> Any:
    """Run the recorded inverse of `execution_id` through the configured executor; exit 2 if it has none."""
    from remediator.live.executor import UndoError
    from remediator.live.wiring import make_executor

    with _ledger(cfg) as ledger:
        api = _kube_api(cfg)
        executor = make_executor(cfg, api, ledger, dry_run=dry_run)
        try:
            return executor.undo(execution_id, dry_run=dry_run)
        except UndoError as e:
            fail(str(e))


def _print_undo(result: Any, execution_id: int, dry_run: bool) -> None:
    out.print(f"execution {result.execution_id} ({'dry run ' if dry_run else ''}undo of {execution_id}): "
              f"{inert(result.state)}", highlight=False)
    for change in result.changes:
        out.print(f"  {inert(change)}", highlight=False)
    if result.error:
        console.print(f"[bold red]error:[/] {inert(result.error)}", highlight=False)


def _register_undo(app: typer.Typer) -> None:
    @app.command()
    def undo(execution_id: Annotated[int, typer.Argument(metavar="ID", help="the execution to undo (history lists "
                                                                            "them)")],
             config: ConfigOpt = None,
             dry_run: Annotated[bool, typer.Option("--dry-run", help="server-side dry run of the inverse")] = False,
             json_out: JsonFlag = False) -> None:
        """Apply the inverse recorded before execution ID ran (a new execution in the ledger)."""
        result = _undo_execution(_config(config), execution_id, dry_run)
        doc = {"execution": result.execution_id, "undo_of": execution_id, "state": result.state,
               "dry_run": result.dry_run, "changes": list(result.changes), "error": result.error}
        if json_out:
            print_json(doc)
        else:
            _print_undo(result, execution_id, dry_run)
        if not result.ok:
            raise typer.Exit(1)


def decision_report(cfg: Any, approval_id: int, *, approve: bool, approver: str, channel: str = "cli"
                    ) -> dict[str, Any]:
    """Decide approval `approval_id` as `approver`; the `approve --json` document. Exits 2 for an unknown
    request or an approver off the allow-list (recorded as a refusal)."""
    from remediator.live.approval import Approvals, NotAllowed
    from remediator.live.ledger import approval_summary

    with _ledger(cfg) as ledger:
        approvals = Approvals.from_config(ledger, cfg)
        try:
            decision = approvals.decide(approval_id, approve=approve, approver=approver, channel=channel)
        except NotAllowed as e:
            fail(f"approval {approval_id}: refused: {e.reason}")
        except KeyError:
            known = ", ".join(str(a.id) for a in approvals.pending()) or "none"
            fail(f"no approval {approval_id} in {cfg.store} (pending: {known}; `remediator history` lists them)")
    wanted = "approved" if approve else "denied"
    return {"approval": approval_id, "decision": "approve" if approve else "deny", "approver": approver,
            "channel": channel, "changed": decision.changed, "state": str(decision.approval.state),
            "as_asked": decision.approval.state == wanted, "message": decision.message,
            "request": approval_summary(decision.approval)}


def _register_decisions(app: typer.Typer) -> None:
    def command(approve: bool) -> Any:
        verb = "approve" if approve else "deny"

        def decide(approval_id: Annotated[int, typer.Argument(metavar="ID", help="the approval request (history "
                                                                                 "--json lists them)")],
                   approver: Annotated[str, typer.Option("--as", help="who decides (must be in "
                                                                      "approval.approvers)")],
                   config: ConfigOpt = None, json_out: JsonFlag = False) -> None:
            doc = decision_report(_config(config), approval_id, approve=approve, approver=approver)
            if json_out:
                print_json(doc)
            else:
                out.print(inert(doc["message"]), highlight=False)
            if not doc["as_asked"]:  # decided otherwise before, expired, or withdrawn: this changed nothing
                raise typer.Exit(1)

        decide.__doc__ = (f"{verb.capitalize()} the action approval request ID waits for (recorded with the "
                          f"approver; the first decision wins, a late one changes nothing).")
        return decide

    app.command(name="approve")(command(True))
    app.command(name="deny")(command(False))


def _register_run(app: typer.Typer) -> None:
    @app.command()
    def run(config: Annotated[Path, typer.Option("--config", help="the agent's YAML configuration")],
            log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning")] = "info") -> None:
        """Operator mode: the Alertmanager receiver, the loop and kopf (Remediation and RemediationPolicy
        resources, a leader Lease) in one process, until SIGTERM; `operator.enabled: false` runs the
        receiver and the loop alone."""
        from remediator.live.config import ConfigError
        from remediator.live.service import Agent
        from remediator.operator.run import Operator

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        cfg = _config(config)
        try:
            service: Agent | Operator = Operator(cfg) if cfg.operator.enabled else Agent(cfg)
        except ConfigError as e:
            fail(str(e))
        service.serve_forever()
