"""Who a patient is, in the metadata store only: the id as ingested (``patients.external_id``)
and an optional display label the clinic sets (a name or record number, ``patient_labels``).

The lake's tables and files hold patient keys only; these two are read here for the people
entitled to a patient (the checks are above, in ``access`` and the dashboard), and erased with
the patient (``MetadataStore.forget_patient``). A label is checked before it is stored:
``checked_label``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa

from glucosestream.config import LakeSettings
from glucosestream.errors import InvalidInput
from glucosestream.lake.database import Store, metadata_engine
from glucosestream.lake.metadata_schema import patient_labels, patients

__all__ = [
    "LABEL_MAX_CHARS",
    "LABEL_PATTERN",
    "PatientDirectory",
    "PatientIdentity",
    "checked_label",
    "open_patient_directory",
]

LABEL_MAX_CHARS: Final = 120
_FIND_MAX: Final = 1000  # keys a search returns at most (the callers keep the readable ones)
_QUERY_MAX_CHARS: Final = 256  # the longest id as ingested (patients.external_id)
_CHUNK: Final = 500  # keys per IN (...) list
# What a label may not hold: C0 and C1 controls (tab and line breaks among them), the soft hyphen,
# zero-width and joiner characters, the line and paragraph separators, bidirectional marks,
# embeddings, overrides and isolates (they can disguise a name: "Trojan Source", CVE-2021-42574),
# invisible operators, the byte-order mark and interlinear annotations. And lone surrogates (no
# UTF-8 encoding: no database could store them), which a JSON Schema pattern cannot name (its
# validators refuse them), so they are left out of LABEL_PATTERN (no JSON text decodes to them
# but an escaped lone surrogate such as "\ud800").
_BAD_CHARS: Final = (
    "\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f"
    "\\ufeff\\ufff9-\\ufffb"
)
_BAD_CHAR: Final = re.compile(f"[{_BAD_CHARS}\\ud800-\\udfff]")
# The rule as one regular expression (read alike by Python, ECMAScript and Rust's regex, which
# JSON Schema validators use), for the OpenAPI schema: at least one visible character and none
# of those above (surrogates aside); ``checked_label`` also trims the ends.
LABEL_PATTERN: Final = f"^[^{_BAD_CHARS}]*[^\\s{_BAD_CHARS}][^{_BAD_CHARS}]*$"


@dataclass(frozen=True, slots=True)
class PatientIdentity:
    """What the metadata store knows of who a patient is (None: not known)."""

    patient_key: str
    external_id: str | None
    label: str | None


def checked_label(text: str) -> str:
    """A label as stored: trimmed, 1 to ``LABEL_MAX_CHARS`` characters matching
    ``LABEL_PATTERN`` (no control, line-break, zero-width, bidirectional-override or surrogate
    characters). InvalidInput (422) otherwise, saying what to send."""
    label = text.strip()
    problem = None
    bad = _BAD_CHAR.search(text)  # before trimming: \x1c-\x1f and \x85 count as spaces
    if not label:
        problem = "is empty (to remove a label, clear it instead)"
    elif len(label) > LABEL_MAX_CHARS:
        problem = f"has {len(label)} characters, more than {LABEL_MAX_CHARS}"
    elif bad:
        problem = f"holds a control or invisible character (U+{ord(bad[0]):04X})"
    if problem:
        raise InvalidInput(
            f"the label {problem}; give a name or record number of up to {LABEL_MAX_CHARS} "
            "visible characters on one line",
            source="label",
        )
    return label


class PatientDirectory(Store):
    def names(self, keys: Iterable[str]) -> dict[str, PatientIdentity]:
        """The id as ingested and label of each of these keys the store knows (a key with
        neither is left out)."""
        wanted = sorted(set(keys))
        found: dict[str, PatientIdentity] = {}
        with self._tx() as con:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                ids: dict[str, str] = {
                    key: external
                    for key, external in con.execute(
                        sa.select(patients.c.patient_key, patients.c.external_id).where(
                            patients.c.patient_key.in_(chunk)
                        )
                    )
                }
                labels: dict[str, str] = {
                    key: label
                    for key, label in con.execute(
                        sa.select(patient_labels.c.patient_key, patient_labels.c.label).where(
                            patient_labels.c.patient_key.in_(chunk)
                        )
                    )
                }
                for key in chunk:
                    if key in ids or key in labels:
                        found[key] = PatientIdentity(key, ids.get(key), labels.get(key))
        return found

    def set_label(self, key: str, label: str | None, *, at: dt.datetime, by: str) -> bool:
        """Set (the text is checked: ``checked_label``) or clear (None) a patient's label;
        ``by``: who (a token id, or ``cli``). False when the store knows no such patient
        (nothing is written)."""
        text = None if label is None else checked_label(label)
        with self._tx() as con:
            known = con.scalar(
                sa.select(patients.c.patient_key).where(patients.c.patient_key == key)
            )
            if known is None:
                return False
            con.execute(patient_labels.delete().where(patient_labels.c.patient_key == key))
            if text is not None:
                con.execute(
                    patient_labels.insert(),
                    [{"patient_key": key, "label": text, "set_at": at, "set_by": by[:16]}],
                )
        return True

    def find(self, text: str) -> list[str]:
        """Keys of the patients whose id as ingested is ``text`` (case aside), whose key it is,
        or whose label contains it (case-insensitive); sorted, at most ``_FIND_MAX``. Nothing
        for blank text, or text no label can be (control characters and the like, over
        ``_QUERY_MAX_CHARS``), which is not even looked up."""
        wanted = text.strip()
        if not wanted or len(wanted) > _QUERY_MAX_CHARS or _BAD_CHAR.search(wanted):
            return []
        lowered = wanted.lower()
        by_id = sa.select(patients.c.patient_key).where(
            sa.or_(
                patients.c.external_id == wanted,
                sa.func.lower(patients.c.external_id) == lowered,
                patients.c.patient_key == lowered,
            )
        )
        by_label = sa.select(patient_labels.c.patient_key).where(
            sa.func.lower(patient_labels.c.label).contains(lowered, autoescape=True)
        )
        query = sa.union(by_id, by_label).order_by("patient_key").limit(_FIND_MAX)
        with self._tx() as con:
            return list(con.scalars(query))


def open_patient_directory(settings: LakeSettings) -> PatientDirectory:
    """The patient directory of the lake in ``settings`` (its tables made on first use)."""
    return PatientDirectory(metadata_engine(settings))
