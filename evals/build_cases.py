"""Write the evaluation case folders under evals/cases/ (python -m evals.build_cases).

The folders are the cases; this script is how they were written, so that a new case or a
change to the common cluster is one edit here. Alert names, label sets, severities and
annotation texts follow the kube-prometheus rules in ../shared/data/kube-prometheus-rules/
(Apache-2.0, see LICENSE.txt beside the cases) with their templates filled in, and the
labels a kube-prometheus scrape really attaches (kube-state-metrics targets drop
pod/service/endpoint/namespace; kubelet and cAdvisor targets keep service="kubelet").
`acceptable` lists the first actions an SRE following the public prometheus-operator
runbooks would accept for the situation the context describes.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from evals.cases import CASES_DIR, ROOT, webhook

STARTS_AT = "2026-11-20T10:00:00Z"
NS = "shop"
RULES = "kubernetesControlPlane-prometheusRule.yaml"
RB = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/"
KSM = {"job": "kube-state-metrics", "instance": "10.2.1.14:8443", "prometheus": "monitoring/k8s"}
KUBELET = {"job": "kubelet", "service": "kubelet", "endpoint": "https-metrics", "instance": "10.2.0.21:10250",
           "metrics_path": "/metrics", "prometheus": "monitoring/k8s"}
CADVISOR = {"service": "kubelet", "instance": "10.2.0.21:10250", "prometheus": "monitoring/k8s"}
POD0, POD1, POD2 = "checkout-7d9f8b6c5-x2k4q", "checkout-7d9f8b6c5-m8r2t", "checkout-7d9f8b6c5-p4w9z"
OLD = [{"revision": 13, "age_s": 20 * 86400}, {"revision": 14, "age_s": 7 * 86400}]
NEW = [{"revision": 14, "age_s": 7 * 86400}, {"revision": 15, "age_s": 1500}]
MiB = 2**20
GiB = 2**30


def pods(*overrides: dict[str, Any], node: str = "worker-2") -> list[dict[str, Any]]:
    names = (POD0, POD1, POD2)
    out = []
    for i, name in enumerate(names):
        base = {"name": name, "node": node if i == 0 else ("worker-1" if i == 1 else "worker-3"), "ready": True,
                "memory_ratio": 0.45, "cpu_ratio": 0.3}
        base.update(overrides[i] if i < len(overrides) else {})
        out.append(base)
    return out


def shop(**over: Any) -> dict[str, Any]:
    """checkout (3 replicas, depends on payments) on worker-1..3, with traffic within its SLO."""
    spec: dict[str, Any] = {
        "namespace": NS,
        "firing_for_s": 900,
        "workload": {"name": "checkout", "replicas": 3, "available": 3, "depends_on": ["payments"],
                     "limits": {"memory": 512 * MiB, "cpu": 0.5}, "revisions": OLD},
        "pods": pods(),
        "nodes": [{"name": "worker-1"}, {"name": "worker-2"}, {"name": "worker-3"}],
        "traffic": {"rps": 40, "baseline_rps": 40, "error_ratio": 0.002, "p99_s": 0.18},
        "dependencies": [{"name": "payments", "replicas": 2, "available": 2, "rps": 15, "error_ratio": 0.001,
                          "p99_s": 0.09}],
        "events": [],
        "logs": [],
    }
    for key, value in over.items():
        if key == "workload":
            spec["workload"] = {**spec["workload"], **value}
        else:
            spec[key] = value
    return spec


def alert(name: str, labels: dict[str, str], summary: str, description: str, *, severity: str = "warning",
          runbook: str | bool | None = None) -> dict[str, Any]:
    ann = {"description": description, "summary": summary}
    if runbook is not False:
        ann["runbook_url"] = runbook if isinstance(runbook, str) else RB + name.lower()
    return {"labels": {"alertname": name, **labels, "severity": severity}, "annotations": ann, "startsAt": STARTS_AT}


def crashloop_alert(pod: str = POD0) -> dict[str, Any]:
    return alert("KubePodCrashLooping", {**KSM, "namespace": NS, "pod": pod, "container": "app",
                                         "reason": "CrashLoopBackOff", "uid": "3f1c2a9e-5b7d-4c1e-9a0b-1d2e3f4a5b6c"},
                 "Pod is crash looping.",
                 f'Pod {NS}/{pod} (app) is in waiting state (reason: "CrashLoopBackOff") on cluster .')


def notready_alert(pod: str = POD0) -> dict[str, Any]:
    return alert("KubePodNotReady", {**KSM, "namespace": NS, "pod": pod},
                 "Pod has been in a non-ready state for more than 15 minutes.",
                 f"Pod {NS}/{pod} has been in a non-ready state for longer than 15 minutes on cluster .")


def mismatch_alert() -> dict[str, Any]:
    return alert("KubeDeploymentReplicasMismatch", {**KSM, "namespace": NS, "deployment": "checkout"},
                 "Deployment has not matched the expected number of replicas.",
                 f"Deployment {NS}/checkout has not matched the expected number of replicas for longer than "
                 "15 minutes on cluster .")


def stuck_alert() -> dict[str, Any]:
    return alert("KubeDeploymentRolloutStuck", {**KSM, "namespace": NS, "deployment": "checkout",
                                                "condition": "Progressing", "status": "false"},
                 "Deployment rollout is not progressing.",
                 f"Rollout of deployment {NS}/checkout is not progressing for longer than 15 minutes on cluster .")


def waiting_alert(reason: str) -> dict[str, Any]:
    return alert("KubeContainerWaiting", {**KSM, "namespace": NS, "pod": POD0, "container": "app",
                                          "reason": reason},
                 "Pod container waiting longer than 1 hour",
                 f"pod/{POD0} in namespace {NS} on container app has been in waiting state for longer than 1 hour. "
                 f"(reason: \"{reason}\") on cluster .")


def hpa_alert() -> dict[str, Any]:
    return alert("KubeHpaMaxedOut", {**KSM, "namespace": NS, "horizontalpodautoscaler": "checkout"},
                 "HPA is running at max replicas",
                 f"HPA {NS}/checkout has been running at max replicas for longer than 15 minutes on cluster .",
                 severity="warning")


def throttling_alert(pct: str) -> dict[str, Any]:
    return alert("CPUThrottlingHigh", {**CADVISOR, "namespace": NS, "pod": POD0, "container": "app"},
                 "Processes experience elevated CPU throttling.",
                 f"{pct} throttling of CPU in namespace {NS} for container app in pod {POD0} on cluster .",
                 severity="info")


def pv_alert(critical: bool, free: str) -> dict[str, Any]:
    text = (f"The PersistentVolume claimed by orders-data in Namespace {NS} is only {free} free." if critical else
            f"Based on recent sampling, the PersistentVolume claimed by orders-data in Namespace {NS} is expected "
            f"to fill up within four days. Currently {free} is available.")
    return alert("KubePersistentVolumeFillingUp", {**KUBELET, "namespace": NS, "node": "worker-2",
                                                   "persistentvolumeclaim": "orders-data"},
                 "PersistentVolume is filling up.", text, severity="critical" if critical else "warning")


def slo_alert(name: str, summary: str, description: str, severity: str = "critical") -> dict[str, Any]:
    return alert(name, {"namespace": NS, "service": "checkout", "slo": "checkout-availability"}, summary,
                 description, severity=severity, runbook=False)


ORDERS: dict[str, Any] = {
    "name": "orders", "replicas": 2, "available": 2, "depends_on": [], "limits": {"memory": GiB, "cpu": 1.0},
    "revisions": OLD, "pvc": {"name": "orders-data", "capacity": 20 * GiB, "used_ratio": 0.6, "growth_per_min": 0.0},
}


def orders(pvc: dict[str, Any]) -> dict[str, Any]:
    spec = shop(workload={**ORDERS, "pvc": {**ORDERS["pvc"], **pvc}})
    spec["pods"] = [{"name": "orders-5c8d7f9b4-q2w3e", "node": "worker-2", "ready": True},
                    {"name": "orders-5c8d7f9b4-r5t6y", "node": "worker-1", "ready": True}]
    spec["dependencies"] = []
    return spec


# The cluster without an alerted Deployment (alerts about objects the agent does not act on).
CLUSTER = {"namespace": NS, "nodes": [{"name": "worker-1"}, {"name": "worker-2"}, {"name": "worker-3"}]}

# ---------------------------------------------------------------------------- the cases

CASES: dict[str, dict[str, Any]] = {}


def case(cid: str, alerts: list[dict[str, Any]], spec: dict[str, Any], acceptable: list[str], why: str,
         source: str = RULES, **extra: Any) -> None:
    CASES[cid] = {"alerts": alerts, "spec": spec,
                  "expected": {"description": why, "source": source, "acceptable": acceptable, **extra}}


# KubePodCrashLooping: the three look-alikes from the runbook, and a single bad pod.
case("crashlooping-oomkilled", [crashloop_alert()],
     shop(pods=pods({"ready": False, "restarts_per_min": 0.5, "last_terminated": "OOMKilled",
                     "waiting": "CrashLoopBackOff", "memory_ratio": 0.99, "memory_slope_per_min": 0.01},
                    {"ready": False, "restarts_per_min": 0.4, "last_terminated": "OOMKilled",
                     "waiting": "CrashLoopBackOff", "memory_ratio": 0.98}, {"memory_ratio": 0.93}),
          workload={"available": 1},
          events=[{"object": f"Pod/{POD0}", "type": "Warning", "reason": "BackOff",
                   "message": "Back-off restarting failed container app in pod " + POD0},
                  {"object": f"Pod/{POD0}", "type": "Warning", "reason": "OOMKilling",
                   "message": "Memory cgroup out of memory: Killed process 4121 (java) total-vm:2102344kB"}],
          logs=["java.lang.OutOfMemoryError: Java heap space",
                "\tat com.shop.checkout.CartCache.load(CartCache.java:88)"]),
     ["raise_memory_limit"], "containers are OOMKilled at the memory limit; nothing was rolled out for a week")
case("crashlooping-bad-rollout", [crashloop_alert()],
     shop(workload={"revisions": NEW, "available": 1},
          pods=pods({"ready": False, "restarts_per_min": 0.6, "last_terminated": "Error",
                     "waiting": "CrashLoopBackOff"},
                    {"ready": False, "restarts_per_min": 0.6, "last_terminated": "Error",
                     "waiting": "CrashLoopBackOff"}),
          events=[{"object": f"Pod/{POD0}", "type": "Warning", "reason": "BackOff",
                   "message": "Back-off restarting failed container app"},
                  {"object": "Deployment/checkout", "type": "Normal", "reason": "ScalingReplicaSet",
                   "message": "Scaled up replica set checkout-7d9f8b6c5 to 1"}],
          logs=["panic: runtime error: invalid memory address or nil pointer dereference",
                "goroutine 1 [running]: main.loadConfig() /src/config.go:42"]),
     ["rollback_rollout"], "crashes with exit code 1 started with the rollout 25 minutes ago")
case("crashlooping-dependency-down", [crashloop_alert()],
     shop(workload={"available": 1},
          pods=pods({"ready": False, "restarts_per_min": 0.4, "last_terminated": "Error",
                     "waiting": "CrashLoopBackOff"},
                    {"ready": False, "restarts_per_min": 0.4, "last_terminated": "Error",
                     "waiting": "CrashLoopBackOff"}),
          dependencies=[{"name": "payments", "replicas": 2, "available": 0, "rps": 15, "error_ratio": 1.0,
                         "p99_s": 5.0}],
          logs=["FATAL cannot connect to payments:8080: connection refused; exiting",
                "retrying payments connection (5/5) failed"]),
     ["restart_dependency"], "checkout exits because its dependency payments has no available replicas")
case("crashlooping-single-pod", [crashloop_alert(POD2)],
     shop(pods=pods({}, {}, {"ready": False, "restarts_per_min": 0.3, "last_terminated": "Error",
                             "waiting": "CrashLoopBackOff"}),
          logs=["ERROR sqlite: database disk image is malformed (/tmp/cache.db)"]),
     ["delete_pod", "restart_rollout"], "one pod crash-loops on corrupt local state while its siblings are healthy")

# KubePodNotReady
case("podnotready-hung-pod", [notready_alert(POD1)],
     shop(pods=pods({}, {"ready": False}, {}), workload={"available": 2},
          events=[{"object": f"Pod/{POD1}", "type": "Warning", "reason": "Unhealthy",
                   "message": "Readiness probe failed: Get http://10.2.3.4:8080/ready: context deadline exceeded"}]),
     ["delete_pod", "restart_rollout"], "one pod fails its readiness probe (hung) while the others serve")
case("podnotready-node-notready", [notready_alert(POD0)],
     shop(pods=pods({"ready": False}, node="worker-2"), workload={"available": 2},
          nodes=[{"name": "worker-1"}, {"name": "worker-2", "ready": False}, {"name": "worker-3"}],
          events=[{"object": "Node/worker-2", "type": "Normal", "reason": "NodeNotReady",
                   "message": "Node worker-2 status is now: NodeNotReady"}]),
     ["cordon_drain_node", "delete_pod"], "the unready pod sits on a NotReady node")

# KubeDeploymentReplicasMismatch
case("replicasmismatch-bad-rollout", [mismatch_alert()],
     shop(workload={"revisions": NEW, "available": 2},
          pods=pods({}, {}, {"ready": False, "restarts_per_min": 0.2, "last_terminated": "Error"}),
          events=[{"object": f"Pod/{POD2}", "type": "Warning", "reason": "Unhealthy",
                   "message": "Readiness probe failed: HTTP probe failed with statuscode: 500"}]),
     ["rollback_rollout"], "the new revision's pods never become available")
case("replicasmismatch-oom-on-start", [mismatch_alert()],
     shop(workload={"available": 1},
          pods=pods({"ready": False, "restarts_per_min": 0.3, "last_terminated": "OOMKilled", "memory_ratio": 0.99},
                    {"ready": False, "restarts_per_min": 0.3, "last_terminated": "OOMKilled", "memory_ratio": 0.99})),
     ["raise_memory_limit"], "pods are OOMKilled before they turn ready; no rollout")
case("replicasmismatch-no-capacity", [mismatch_alert()],
     shop(workload={"available": 2}, pods=pods({}, {}, {"ready": False, "node": ""}),
          events=[{"object": f"Pod/{POD2}", "type": "Warning", "reason": "FailedScheduling",
                   "message": "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available"}]),
     ["escalate"], "a replica is Pending for lack of node capacity; adding nodes is for a human")

# KubeDeploymentRolloutStuck
case("rolloutstuck-crashing-revision", [stuck_alert()],
     shop(workload={"revisions": NEW, "available": 2},
          pods=pods({}, {}, {"ready": False, "restarts_per_min": 0.5, "last_terminated": "Error",
                             "waiting": "CrashLoopBackOff"}),
          events=[{"object": "Deployment/checkout", "type": "Warning", "reason": "ProgressDeadlineExceeded",
                   "message": 'ReplicaSet "checkout-7d9f8b6c5" has timed out progressing.'}]),
     ["rollback_rollout"], "the new revision crashes; the previous one was healthy")
case("rolloutstuck-oom-on-start", [stuck_alert()],
     shop(workload={"revisions": NEW, "available": 2},
          pods=pods({}, {}, {"ready": False, "restarts_per_min": 0.4, "last_terminated": "OOMKilled",
                             "memory_ratio": 0.99})),
     ["raise_memory_limit", "rollback_rollout"], "the new revision's pods are OOMKilled on start")

# KubeContainerWaiting
case("containerwaiting-imagepull", [waiting_alert("ImagePullBackOff")],
     shop(workload={"revisions": NEW, "available": 2},
          pods=pods({"ready": False, "waiting": "ImagePullBackOff"}),
          events=[{"object": f"Pod/{POD0}", "type": "Warning", "reason": "Failed",
                   "message": 'Failed to pull image "registry.shop.example/checkout:1.43.0": not found'}]),
     ["rollback_rollout"], "the rollout names an image tag that does not exist")
case("containerwaiting-missing-secret", [waiting_alert("CreateContainerConfigError")],
     shop(workload={"available": 2}, pods=pods({"ready": False, "waiting": "CreateContainerConfigError"}),
          events=[{"object": f"Pod/{POD0}", "type": "Warning", "reason": "Failed",
                   "message": 'Error: secret "checkout-db-credentials" not found'}]),
     ["escalate"], "a Secret is missing and nothing was rolled out: a human must restore it")

# KubeHpaMaxedOut
case("hpamaxedout-saturated", [hpa_alert()],
     shop(workload={"replicas": 6, "available": 6, "hpa": {"name": "checkout", "max": 6, "current": 6}},
          pods=pods({"cpu_ratio": 0.97}, {"cpu_ratio": 0.95}, {"cpu_ratio": 0.96}),
          traffic={"rps": 180, "baseline_rps": 60, "error_ratio": 0.01, "p99_s": 1.4}),
     ["raise_hpa_max"], "traffic tripled, CPU saturated at maxReplicas, latency over the SLO")
case("hpamaxedout-within-slo", [hpa_alert()],
     shop(workload={"replicas": 4, "available": 4, "hpa": {"name": "checkout", "max": 4, "current": 4}},
          pods=pods({"cpu_ratio": 0.55}, {"cpu_ratio": 0.5}, {"cpu_ratio": 0.52})),
     ["noop", "escalate"], "running at max by design; error ratio and latency inside the SLO")

# CPUThrottlingHigh (cAdvisor: the alert keeps service="kubelet")
case("cputhrottling-latency", [throttling_alert("64.2%")],
     shop(pods=pods({"throttle_ratio": 0.64, "cpu_ratio": 0.99}, {"throttle_ratio": 0.58, "cpu_ratio": 0.98},
                    {"throttle_ratio": 0.6, "cpu_ratio": 0.99}),
          traffic={"rps": 45, "baseline_rps": 40, "error_ratio": 0.004, "p99_s": 0.9}),
     ["raise_cpu_limit", "scale_out"], "heavy throttling at the CPU limit and p99 above the SLO")
case("cputhrottling-no-impact", [throttling_alert("31.5%")],
     shop(pods=pods({"throttle_ratio": 0.31, "cpu_ratio": 0.7})),
     ["noop", "escalate"], "bursty throttling with the SLO met: informational")

# KubeMemoryOvercommit (cluster-wide)
case("memoryovercommit", [alert("KubeMemoryOvercommit", {"prometheus": "monitoring/k8s"},
                                "Cluster has overcommitted memory resource requests.",
                                "Cluster  has overcommitted memory resource requests for Pods by 3.2Gi bytes and "
                                "cannot tolerate node failure.")],
     {"namespace": "", "nodes": [{"name": "worker-1"}, {"name": "worker-2"}, {"name": "worker-3"}]},
     ["escalate"], "capacity planning is a human decision")

# KubeNodeNotReady
case("nodenotready", [alert("KubeNodeNotReady", {**KSM, "node": "worker-2", "condition": "Ready", "status": "true"},
                            "Node is not ready.", "worker-2 has been unready for more than 15 minutes on cluster .")],
     shop(nodes=[{"name": "worker-1"}, {"name": "worker-2", "ready": False}, {"name": "worker-3"}],
          pods=pods({"ready": False}), workload={"available": 2},
          events=[{"object": "Node/worker-2", "type": "Normal", "reason": "NodeNotReady",
                   "message": "Node worker-2 status is now: NodeNotReady"}]),
     ["cordon_drain_node"], "the node has stayed NotReady for 15 minutes; move its pods")

# KubePersistentVolumeFillingUp (kubelet: the alert keeps service="kubelet" and node)
case("pvfillingup-critical", [pv_alert(True, "2.1%")], orders({"used_ratio": 0.979, "growth_per_min": 0.0005}),
     ["expand_volume"], "the volume is 98% full and growing")
case("pvfillingup-predicted", [pv_alert(False, "11.97%")], orders({"used_ratio": 0.88, "growth_per_min": 0.0002}),
     ["expand_volume"], "the volume will be full within four days")

# Our SLO alerts
case("errorbudgetburn-bad-config", [slo_alert("ServiceErrorBudgetBurn", "checkout burns its error budget",
                                              "checkout 5xx ratio 18% over 5m (SLO 2%)")],
     shop(workload={"revisions": NEW}, traffic={"rps": 40, "baseline_rps": 40, "error_ratio": 0.18, "p99_s": 0.2},
          logs=['ERROR invalid value for FEATURE_FLAGS: "new-cart=tru"; serving 500']),
     ["rollback_rollout"], "errors started with the rollout 25 minutes ago (a bad config, no crashes)",
     source="remediator SLO alerts (runbooks/ServiceErrorBudgetBurn.yaml)")
case("errorbudgetburn-scaled-to-zero", [slo_alert("ServiceErrorBudgetBurn", "checkout burns its error budget",
                                                  "checkout 5xx ratio 100% over 5m (SLO 2%)")],
     shop(workload={"replicas": 0, "baseline_replicas": 3, "available": 0}, pods=[],
          traffic={"rps": 40, "baseline_rps": 40, "error_ratio": 1.0, "p99_s": 0.05},
          events=[{"object": "Deployment/checkout", "type": "Normal", "reason": "ScalingReplicaSet",
                   "message": "Scaled down replica set checkout-7d9f8b6c5 to 0"}]),
     ["restore_replicas"], "someone scaled checkout to zero", source="remediator SLO alerts")
case("latencyhigh-saturation", [slo_alert("ServiceLatencyHigh", "checkout p99 above its SLO",
                                          "checkout p99 latency 1.8s over 5m (SLO 0.5s)")],
     shop(pods=pods({"cpu_ratio": 0.97}, {"cpu_ratio": 0.96}, {"cpu_ratio": 0.98}),
          traffic={"rps": 110, "baseline_rps": 40, "error_ratio": 0.01, "p99_s": 1.8}),
     ["scale_out"], "traffic almost tripled, CPU near the limit on every replica, no autoscaler",
     source="remediator SLO alerts")
case("latencyhigh-slow-dependency", [slo_alert("ServiceLatencyHigh", "checkout p99 above its SLO",
                                               "checkout p99 latency 2.6s over 5m (SLO 0.5s)")],
     shop(traffic={"rps": 40, "baseline_rps": 40, "error_ratio": 0.01, "p99_s": 2.6},
          dependencies=[{"name": "payments", "replicas": 2, "available": 2, "rps": 15, "error_ratio": 0.02,
                         "p99_s": 2.4}],
          logs=["WARN payments call took 2412ms (timeout 3000ms)"]),
     ["restart_dependency"], "checkout waits on payments, whose p99 rose to 2.4s", source="remediator SLO alerts")

# Alerts no runbook names: the answer may be escalate (or a runbook found by similarity).
case("norunbook-statefulset-mismatch",
     [alert("KubeStatefulSetReplicasMismatch", {**KSM, "namespace": NS, "statefulset": "redis"},
            "StatefulSet has not matched the expected number of replicas.",
            f"StatefulSet {NS}/redis has not matched the expected number of replicas for longer than 15 minutes "
            "on cluster .")],
     CLUSTER, ["escalate"], "the alert names a StatefulSet the API server does not show (deleted since, or not "
     "readable): nothing is in scope, a human looks")
DS_ALERT = alert("KubeDaemonSetRolloutStuck", {**KSM, "namespace": NS, "daemonset": "node-agent"},
                 "DaemonSet rollout is stuck.",
                 f"DaemonSet {NS}/node-agent has not finished or progressed for at least 15m on cluster .")
case("daemonsetrolloutstuck-bad-revision", [DS_ALERT],
     {"namespace": NS, "firing_for_s": 900,
      "workload": {"name": "node-agent", "kind": "DaemonSet", "replicas": 3, "available": 2,
                   "limits": {"memory": 128 * MiB, "cpu": 0.2},
                   "revisions": [{"revision": 6, "age_s": 30 * 86400}, {"revision": 7, "age_s": 1900}]},
      "pods": [{"name": "node-agent-x7k2p", "node": "worker-1", "ready": False, "restarts_per_min": 0.6,
                "last_terminated": "Error", "waiting": "CrashLoopBackOff"},
               {"name": "node-agent-9fj3q", "node": "worker-2"}, {"name": "node-agent-c4m8v", "node": "worker-3"}],
      "nodes": [{"name": "worker-1"}, {"name": "worker-2"}, {"name": "worker-3"}],
      "events": [{"object": "Pod/node-agent-x7k2p", "type": "Warning", "reason": "BackOff",
                  "message": "Back-off restarting failed container app in pod node-agent-x7k2p"}],
      "logs": ["FATAL unknown flag: --metrics-port (node-agent 2.4.0)"]},
     ["rollback_rollout"], "the DaemonSet's new revision (31 minutes old) crash-loops on the first node it reached, "
     "so the rolling update stopped; the previous revision ran for a month: roll the DaemonSet back")
case("daemonsetrolloutstuck-not-found", [DS_ALERT], CLUSTER, ["escalate"],
     "the alert names a DaemonSet the API server does not show (deleted since, or not readable): nothing is in "
     "scope, a human looks")
case("norunbook-job-failed",
     [alert("KubeJobFailed", {**KSM, "namespace": NS, "job_name": "nightly-export-29381120"},
            "Job failed to complete.",
            f"Job {NS}/nightly-export-29381120 failed to complete. Removing failed job after investigation should "
            "clear this alert on cluster .")],
     CLUSTER, ["escalate"], "a failed Job needs a human to read its logs")
case("norunbook-quota",
     [alert("KubeQuotaAlmostFull", {**KSM, "namespace": NS, "resource": "requests.cpu", "resourcequota": "shop-quota",
                                    "type": "used"},
            "Namespace quota is going to be full.",
            f"Namespace {NS} is using 93% of its requests.cpu quota on cluster .", severity="info")],
     CLUSTER, ["escalate", "noop"], "quota is a capacity decision")
case("norunbook-watchdog",
     [alert("Watchdog", {"prometheus": "monitoring/k8s"}, "An alert that should always be firing to certify that "
            "Alertmanager is working properly.", "This is an alert meant to ensure that the entire alerting "
            "pipeline is functional.", severity="none", runbook=RB.replace("kubernetes", "general") + "watchdog")],
     {"namespace": ""}, ["noop"], "the heartbeat alert: never act on it",
     source="kubePrometheus-prometheusRule.yaml")
case("norunbook-node-filesystem",
     [alert("NodeFilesystemSpaceFillingUp", {"job": "node-exporter", "service": "node-exporter",
                                             "endpoint": "https", "instance": "worker-2", "device": "/dev/sda1",
                                             "fstype": "ext4", "mountpoint": "/var", "prometheus": "monitoring/k8s",
                                             "namespace": "monitoring", "pod": "node-exporter-8xk2p",
                                             "container": "node-exporter"},
            "Filesystem is predicted to run out of space within the next 24 hours.",
            "Filesystem on /dev/sda1, mounted on /var, at worker-2 has only 14.2% available space left and is "
            "filling up.", runbook=RB.replace("kubernetes", "node") + "nodefilesystemspacefillingup")],
     {"namespace": "monitoring"}, ["escalate"], "a node's disk: cleaning it up is for a human",
     snapshot_issue="snapshot: service=\"node-exporter\" is read as a Deployment name",
     source="nodeExporter-prometheusRule.yaml")
case("user-checkout-restarting",
     [alert("CheckoutPodsRestarting", {"namespace": NS, "deployment": "checkout", "team": "payments"},
            "checkout pods keep restarting",
            "Containers of checkout restarted 6 times in 10 minutes (CrashLoopBackOff).", runbook=False)],
     CASES["crashlooping-oomkilled"]["spec"], ["raise_memory_limit", "escalate"],
     "a user's alert for an OOM crash loop: the KubePodCrashLooping runbook fits, escalate is fine",
     source="user alert, no runbook")
case("user-payments-slow",
     [alert("PaymentsSlowResponses", {"namespace": NS, "service": "checkout", "team": "payments"},
            "checkout p99 latency above 2s", "Requests to checkout are slow: p99 1.8s for 10 minutes.",
            runbook=False)],
     CASES["latencyhigh-saturation"]["spec"], ["scale_out", "escalate"],
     "a user's latency alert on a saturated service: the ServiceLatencyHigh runbook fits",
     source="user alert, no runbook")
case("user-orders-disk-full",
     [alert("OrdersDiskAlmostFull", {"namespace": NS, "persistentvolumeclaim": "orders-data", "team": "orders"},
            "orders-data volume is 96% full", "The PVC orders-data will be full within 3 hours.", runbook=False)],
     orders({"used_ratio": 0.96, "growth_per_min": 0.0002}), ["expand_volume", "escalate"],
     "a user's disk alert: the KubePersistentVolumeFillingUp runbook fits", source="user alert, no runbook")


def write(cases_dir: Path = CASES_DIR) -> None:
    if cases_dir.exists():
        for child in cases_dir.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
    cases_dir.mkdir(parents=True, exist_ok=True)
    for cid, c in CASES.items():
        d = cases_dir / cid
        d.mkdir()
        (d / "alert.json").write_text(json.dumps(webhook(c["alerts"]), indent=2) + "\n")
        (d / "context.yaml").write_text(yaml.safe_dump(copy.deepcopy(c["spec"]), sort_keys=False, width=110))
        (d / "expected.yaml").write_text(yaml.safe_dump(c["expected"], sort_keys=False, width=110))
    shutil.copy(ROOT.parent.parent / "shared" / "data" / "kube-prometheus-rules" / "LICENSE.txt",
                cases_dir / "LICENSE.txt")


if __name__ == "__main__":
    write()
    print(f"wrote {len(CASES)} cases to {CASES_DIR}")
