"""Proposers: from an incident's Snapshot to candidate actions drawn from the runbooks."""

from remediator.propose.base import Candidate, Proposer
from remediator.propose.catalog import CatalogProposer, candidate_for, candidate_mask

__all__ = ["Candidate", "CatalogProposer", "Proposer", "candidate_for", "candidate_mask"]
