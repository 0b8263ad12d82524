"""Patients by who they are, for the people entitled to them: the id as ingested and the
clinic's display label beside the pseudonymous patient key.

Only a viewer who may read a patient (``access``: a patient their own, a clinician their
clinic's, an admin every one) is given that patient's id and label; for any other key both are
None, exactly as for a patient the store does not know, so a name never tells that a patient
exists. Pages show a name through ``templates/_patient_name.html``. The AGP report rendered
from the command line (no request, no viewer) uses ``patient_name_for``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Request

from glucosestream.config import Settings
from glucosestream.dashboard.auth import Viewer, access_store, readable_keys
from glucosestream.lake import PatientDirectory, PatientIdentity, open_patient_directory

__all__ = [
    "PatientName",
    "patient_directory_of",
    "patient_name",
    "patient_name_for",
    "patient_names",
]

_KEY_SHOWN = 8  # hex digits of the key shown when a patient has neither label nor id


@dataclass(frozen=True, slots=True)
class PatientName:
    patient_key: str
    external_id: str | None  # the id as ingested (metadata store ``patients.external_id``)
    label: str | None  # display label set by the clinic (metadata store only)

    @property
    def shown(self) -> str:
        """What to call the patient in one string: the label, else the id as ingested, else
        ``patient`` and the key's first digits."""
        return self.label or self.external_id or f"patient {self.patient_key[:_KEY_SHOWN]}"

    @property
    def known(self) -> bool:
        """Whether there is a label or an id to print (else a report leaves lines to fill in)."""
        return bool(self.label or self.external_id)


def patient_directory_of(request: Request) -> PatientDirectory:
    """The app's patient directory, opened on first use and kept on the app."""
    state = request.app.state
    directory: PatientDirectory | None = getattr(state, "patient_directory", None)
    if directory is None:
        directory = open_patient_directory(state.settings.lake)
        state.patient_directory = directory
    return directory


def patient_names(request: Request, viewer: Viewer, keys: Iterable[str]) -> dict[str, PatientName]:
    """A name for each key: id and label for the keys the viewer may read, neither for others."""
    wanted = list(dict.fromkeys(keys))
    readable = readable_keys(access_store(request), viewer.principal)
    allowed = [k for k in wanted if readable is None or k in readable]
    found = patient_directory_of(request).names(allowed) if allowed else {}
    return {key: _name(key, found.get(key)) for key in wanted}


def patient_name(request: Request, viewer: Viewer, key: str) -> PatientName:
    """One patient's name as ``patient_names`` gives it."""
    return patient_names(request, viewer, [key])[key]


def patient_name_for(settings: Settings, key: str) -> PatientName:
    """A patient's name from the metadata store, with no viewer to check: for the command line,
    whose user holds the lake itself (the AGP PDF of ``glucosestream report``)."""
    return _name(key, open_patient_directory(settings.lake).names([key]).get(key))


def _name(key: str, identity: PatientIdentity | None) -> PatientName:
    if identity is None:
        return PatientName(key, None, None)
    return PatientName(key, identity.external_id, identity.label)
