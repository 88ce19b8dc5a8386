"""Remediator: an AIOps remediation agent for Kubernetes.

The domain core (actions, snapshot, encoding, catalog, guards, verify, rank) is pure;
adapters to Prometheus, Kubernetes, LLMs and HTTP live at the edges.
"""

__version__ = "0.1.0"
