"""Access rules, tokens, the audit trail and the privacy-budget ledger."""

from __future__ import annotations

import datetime as dt

import pytest

from glucosestream.access import authenticate, authorize_read, create_token, record_access
from glucosestream.errors import AuthError, BudgetExceeded, ConfigError, Forbidden
from glucosestream.lake import open_access

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.fixture
def store(settings):
    return open_access(settings.lake)


def _principal(settings, store, role, **kwargs):
    token = create_token(settings.lake, role, label=role, now=NOW, **kwargs)
    return authenticate(store, token)


def test_read_rules_for_every_role(settings, store):
    store.clinics.add_clinic_patients("north", ["a", "b"])
    admin = _principal(settings, store, "admin")
    clinician = _principal(settings, store, "clinician", clinic_id="north")
    patient = _principal(settings, store, "patient", patient_keys=["a"])
    uploader = _principal(settings, store, "uploader", patient_keys=["a", "c"])
    expected = {
        (admin, "a"): True, (admin, "z"): True,
        (clinician, "a"): True, (clinician, "b"): True, (clinician, "c"): False,
        (patient, "a"): True, (patient, "b"): False,
        (uploader, "a"): False, (uploader, "c"): False,
    }  # fmt: skip
    for (principal, key), allowed in expected.items():
        if allowed:
            authorize_read(store, principal, key)
        else:
            with pytest.raises(Forbidden):
                authorize_read(store, principal, key)
    assert uploader.may_upload("a")
    assert uploader.may_upload("c")
    assert not uploader.may_upload("b")
    assert not patient.may_upload("a")
    assert admin.may_upload("anyone")


def test_tokens_are_stored_hashed_and_bad_ones_refused(settings, store):
    token = create_token(settings.lake, "admin", label="ops", now=NOW)
    db = (settings.lake.state_path / "metadata.db").read_bytes()
    assert token.encode() not in db
    assert authenticate(store, token).role == "admin"
    with pytest.raises(AuthError):
        authenticate(store, token + "x")
    with pytest.raises(AuthError):
        authenticate(store, None)
    with pytest.raises(ConfigError):
        create_token(settings.lake, "patient", label="p", now=NOW, patient_keys=["a", "b"])


def test_access_log_records_who_read_what(settings, store):
    clinician = _principal(settings, store, "clinician", clinic_id="north")
    record_access(store, clinician, "page", "/patients/a", at=NOW, patient_key="a")
    record_access(store, clinician, "report", "/patients/b/agp.pdf", at=NOW, patient_key="b")
    entries = store.audit.access_entries(patient_key="a")
    assert [(e.action, e.resource, e.role) for e in entries] == [
        ("page", "/patients/a", "clinician")
    ]
    assert entries[0].token_id == clinician.token_id


def test_privacy_ledger_refuses_a_release_over_budget(store):
    left = store.ledger.spend(
        "cohort-2026", 0.4, 1.0, mechanism="laplace", query="mean", token_id="t", at=NOW
    )
    assert left == pytest.approx(0.6)
    store.ledger.spend(
        "cohort-2026", 0.6, 1.0, mechanism="laplace", query="tir", token_id="t", at=NOW
    )
    with pytest.raises(BudgetExceeded, match="has 0 of its budget 1 left"):
        store.ledger.spend(
            "cohort-2026", 0.1, 1.0, mechanism="laplace", query="cv", token_id="t", at=NOW
        )
    assert store.ledger.spent("cohort-2026") == pytest.approx(1.0)
    assert store.ledger.spent("other") == 0.0
