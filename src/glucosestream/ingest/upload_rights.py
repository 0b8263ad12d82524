"""What an uploading token may post: its role, and readings only for patients it is bound to.

An uploader may post only for the patients it is bound to (otherwise 403 and nothing is
written); an admin for any. Checked after the body is parsed and before anything is written.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.access import Principal
from glucosestream.errors import Forbidden
from glucosestream.ingest.identity import patient_key

__all__ = ["check_rows_allowed", "require_upload_role"]

_UPLOAD_ROLES: Final = frozenset({"admin", "uploader"})
_SHOWN_INDICES: Final = 5


def require_upload_role(principal: Principal) -> None:
    """Forbidden (403) unless the token may upload at all."""
    if principal.role not in _UPLOAD_ROLES:
        raise Forbidden(
            f"a {principal.role} token may not upload readings; use an uploader or admin token"
        )


def check_rows_allowed(principal: Principal, rows: pa.Table, secret: bytes) -> None:
    """Forbidden (403) naming the first indices of readings for patients the token is not
    bound to (``rows``: raw rows with ``patient_id`` and 1-based ``line``)."""
    if principal.role == "admin":
        return
    ids = [i for i in pc.unique(rows["patient_id"]).to_pylist() if i and i.strip()]
    refused = [i for i in ids if not principal.may_upload(patient_key(secret, i))]
    if not refused:
        return
    where = pc.is_in(rows["patient_id"], pa.array(refused, pa.string()))
    indices = [int(line) - 1 for line in rows["line"].filter(where).to_pylist()]
    shown = ", ".join(str(i) for i in indices[:_SHOWN_INDICES])
    more = f" and {len(indices) - _SHOWN_INDICES} more" if len(indices) > _SHOWN_INDICES else ""
    raise Forbidden(
        f"readings at index {shown}{more} are for patients this token may not upload for; "
        "nothing was written (use a token bound to those patients, or remove the readings)"
    )
