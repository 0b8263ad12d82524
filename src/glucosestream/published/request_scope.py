"""The app's ``PublishedLake`` as a FastAPI dependency (one per app, made by ``create_app``)."""

from __future__ import annotations

from fastapi import Request

from glucosestream.published.published_lake import PublishedLake

__all__ = ["published_of"]


def published_of(request: Request) -> PublishedLake:
    """The app's read side; each request calls ``current()`` on it once."""
    published: PublishedLake = request.app.state.published
    return published
