"""The live path: Prometheus observer, Alertmanager receiver, Kubernetes executor, ledger, loop.

This package is the adapter layer at the edge (DESIGN §2): it may import the Kubernetes
client, prometheus-api-client and an HTTP server; the domain core it calls (snapshot,
encoding, guards, agent, verify) imports none of them. Modules are imported on demand so
that `remediator propose` without a cluster does not pay for the Kubernetes client.
"""
