"""Readings accepted and not yet published: what a follower sees before the next run.

The live unit sits below ingest (which feeds it) and the read API (which merges it with the
published readings), so both can use it.
"""

from glucosestream.live.committed import CommittedBatch

__all__ = ["CommittedBatch"]
