"""Replay: recorded incidents (traces) driving the agent's own observation path.

* `trace`   the versioned trace format (docs/replay.md), load and save;
* `source`  a `MetricsSource` answering the observer's PromQL selectors from a trace;
* `record`  a trace from a live Prometheus and Kubernetes API;
* `run`     replay: the first decision exactly, the rest against the recording;
* `dataset` per-pod CSV datasets (Nezha) as traces, with their alert rules;
* `adapt`   simulated incidents through the live loop and its ledger (the adaptation benchmark).
"""
