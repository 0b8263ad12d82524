"""The app's one error shape as the OpenAPI document shows it, shared by every router.

``{"ok": false, "error": "a; b", "errors": ["a", "b"], "status": N}``; ``app.error_response``
makes the responses themselves.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, Field

__all__ = ["ERROR_RESPONSES", "ErrorResponse"]


class ErrorResponse(BaseModel):
    """The one error shape of the app."""

    ok: Literal[False] = False
    error: str = Field(..., description="The messages joined with '; '.")
    errors: list[str]
    status: int


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorResponse, "description": "No token, or an unknown or revoked one."},
    403: {"model": ErrorResponse, "description": "The token may not do this."},
    413: {
        "model": ErrorResponse,
        "description": "The body is over its size limit (16 MiB for ingest, 16 KiB otherwise).",
    },
    422: {"model": ErrorResponse, "description": "The body cannot be taken as a whole."},
}
