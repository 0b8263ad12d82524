"""The JSON body of an HTTP ingest request: decoded within the limits of ``limits`` (nesting,
readings per request), and the Nightscout echo of what was posted. PURE.

msgspec decodes what it takes (about twice as fast as the standard library, the same values);
the standard library takes the rest (NaN, Infinity, a number out of range, a BOM, UTF-16, a lone
surrogate escape: ingest quarantines the reading holding it) and words the error of a body that
is not JSON at all, invalid UTF-8 included. A body nested deeper than ``MAX_JSON_DEPTH`` is
refused whole, whichever decoder read it (both raise RecursionError at about 1,000 levels).
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

import msgspec

from glucosestream.errors import InvalidInput
from glucosestream.formats.jsontext import deeper_than, too_deep
from glucosestream.ingest.limits import MAX_JSON_DEPTH, MAX_READINGS_PER_REQUEST

__all__ = ["check_depth", "check_items", "decode_body", "nightscout_echo", "shown_error"]

_DECODER: Final = msgspec.json.Decoder()
_SHOWN_ERROR_CHARS: Final = 300


def decode_body(body: bytes, expected: str) -> Any:
    """The body's JSON value (see the module docstring); ``expected`` ends the error of a body
    that is not JSON."""
    try:
        return _DECODER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    except RecursionError as err:
        raise too_deep("request") from err
    try:
        document = json.loads(body)
    except RecursionError as err:
        raise too_deep("request") from err
    except ValueError as err:  # UnicodeDecodeError included
        raise InvalidInput(
            f"the body is not valid JSON ({shown_error(err)}); {expected}", source="request"
        ) from err
    return document


def check_depth(body: bytes, document: Any, containers: int) -> None:
    """Refuse a document nested more than ``MAX_JSON_DEPTH`` deep. ``containers`` objects and
    arrays are known (the envelope and one object per reading): when the body holds no more
    opening brackets than that, nothing else is nested and nothing is walked."""
    brackets = body.count(b"{") + body.count(b"[")
    if brackets > containers and deeper_than(document, MAX_JSON_DEPTH, brackets):
        raise too_deep("request")


def nightscout_echo(entries: list[Any]) -> bytes:
    """The posted entries as JSON, as Nightscout answers a post: a number that is not finite
    (NaN, Infinity, 1e400, taken by the lenient parser) is answered as null."""
    try:
        return msgspec.json.encode(entries)  # NaN and infinities are written as null
    except (TypeError, ValueError, OverflowError):
        return json.dumps(_finite(entries)).encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def shown_error(err: Exception) -> str:
    """An error's message, cut at ``_SHOWN_ERROR_CHARS`` (it may quote the body)."""
    text = str(err)
    return text if len(text) <= _SHOWN_ERROR_CHARS else text[:_SHOWN_ERROR_CHARS] + "…"


def check_items(items: list[Any], name: str, *, objects_only: bool = True) -> None:
    """Refuse an empty array, one over ``MAX_READINGS_PER_REQUEST`` or (``objects_only``) one
    holding a non-object."""
    if not items:
        raise InvalidInput(f"the request has no {name}; send at least one", source="request")
    if len(items) > MAX_READINGS_PER_REQUEST:
        raise InvalidInput(  # 422, as the documented schema's maxItems says
            f"the request has {len(items):,} {name}; at most {MAX_READINGS_PER_REQUEST:,} a "
            "request: split it",
            source="request",
        )
    if not objects_only:
        return
    bad = next((i for i, item in enumerate(items) if not isinstance(item, dict)), None)
    if bad is not None:
        raise InvalidInput(f"{name}[{bad}] is not a JSON object; send one object per reading")
