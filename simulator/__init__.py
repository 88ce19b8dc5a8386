"""A simulated Kubernetes cluster whose faults are states, for training and benchmarks.

It emits the same raw metric series and Kubernetes objects as a real cluster, so the
agent observes it through exactly the functions it uses live
(`remediator.snapshot.build_snapshot` and `remediator.encoding.encode`).
"""
