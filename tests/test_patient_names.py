"""Patients by who they are: the directory in the metadata store (id as ingested, the clinic's
label), names given only to viewers entitled to the patient, the name partial, erasure."""

from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import glucosestream.cli.patient_identity  # noqa: F401 - registers `patient` on main
from glucosestream.access import Principal
from glucosestream.cli import main
from glucosestream.dashboard.auth import Viewer
from glucosestream.dashboard.patient_names import (
    PatientName,
    patient_name,
    patient_name_for,
    patient_names,
)
from glucosestream.dashboard.templating import templates
from glucosestream.errors import InvalidInput
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import (
    checked_label,
    maintain,
    open_access,
    open_metadata,
    open_patient_directory,
)
from glucosestream.lake.patient_directory import LABEL_MAX_CHARS, LABEL_PATTERN
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES

from .conftest import SECRET

AT = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
KEY1, KEY2, KEY3 = "a" * 32, "b" * 32, "c" * 32
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def directory(settings):
    open_metadata(settings.lake).register_patients({KEY1: "P1", KEY2: "MRN-0002", KEY3: "P3"}, AT)
    open_access(settings.lake).clinics.add_clinic_patients("north", [KEY1, KEY2])
    return open_patient_directory(settings.lake)


def _request(settings):
    state = SimpleNamespace(settings=settings, access=open_access(settings.lake))
    return SimpleNamespace(app=SimpleNamespace(state=state))


def _viewer(role, *, clinic=None, keys=()):
    return Viewer(Principal("t" * 12, role, frozenset(keys), clinic, "x"), None, "mg_dl")


def test_a_label_is_set_found_by_substring_and_cleared(directory):
    assert directory.set_label(KEY1, "  Ada Lovelace ", at=AT, by="cli")
    assert directory.names([KEY1])[KEY1].label == "Ada Lovelace"
    assert directory.find("lovelace") == [KEY1]
    assert directory.find("p1") == [KEY1]  # the id as ingested, case aside
    assert directory.find("MRN-0002") == [KEY2]
    assert directory.find("P") == []  # an id matches whole; only labels match a part
    assert directory.find(KEY3) == [KEY3]
    assert directory.find("   ") == []
    assert directory.find("P1\x00") == directory.find("P1" + " " * 300 + "x") == []
    assert directory.set_label(KEY1, None, at=AT, by="cli")
    assert directory.names([KEY1])[KEY1].label is None
    assert directory.find("lovelace") == []
    assert not directory.set_label("d" * 32, "Nobody", at=AT, by="cli")  # unknown: not stored
    assert "d" * 32 not in directory.names(["d" * 32])


def test_a_label_search_treats_like_wildcards_as_text(directory):
    directory.set_label(KEY1, "100% ward_a", at=AT, by="cli")
    directory.set_label(KEY2, "100 wards", at=AT, by="cli")
    assert directory.find("0% w") == [KEY1]
    assert directory.find("d_a") == [KEY1]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("x" * 121, "121 characters, more than 120"),
        ("Ada\nLovelace", "U+000A"),
        ("Ada\x00", "U+0000"),
        ("Ada\u202eevil", "U+202E"),  # a right-to-left override would disguise the name
        ("Ada\ud800", "U+D800"),  # a lone surrogate: no UTF-8, no store could keep it
    ],
)
def test_a_bad_label_is_one_clear_error(directory, text, says):
    with pytest.raises(InvalidInput, match="label") as caught:
        directory.set_label(KEY1, text, at=AT, by="cli")
    assert says in str(caught.value)
    assert caught.value.status == 422
    assert directory.names([KEY1])[KEY1].label is None


def test_a_label_of_120_printable_characters_is_kept_whole():
    label = "Zoë Ñáñez-O'Brien " + "x" * 102
    assert checked_label(label) == label


@hypothesis_settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=LABEL_MAX_CHARS))
def test_the_label_pattern_says_exactly_what_checked_label_accepts(text):
    """The OpenAPI schema's pattern (LABEL_PATTERN) and the check itself agree on every text
    (st.text() draws no lone surrogates: the check refuses those, the pattern cannot name them)."""
    try:
        checked_label(text)
        accepted = True
    except InvalidInput:
        accepted = False
    assert accepted == bool(re.fullmatch(LABEL_PATTERN, text))


def test_names_go_only_to_viewers_entitled_to_the_patient(settings, directory):
    directory.set_label(KEY2, "Grace Hopper", at=AT, by="cli")
    request = _request(settings)
    clinician = patient_names(request, _viewer("clinician", clinic="north"), [KEY1, KEY2, KEY3])
    assert clinician[KEY1] == PatientName(KEY1, "P1", None)
    assert clinician[KEY2] == PatientName(KEY2, "MRN-0002", "Grace Hopper")
    assert clinician[KEY3] == PatientName(KEY3, None, None)  # another clinic's: nothing
    other = patient_name(request, _viewer("clinician", clinic="south"), KEY2)
    assert other == PatientName(KEY2, None, None)
    mine = patient_names(request, _viewer("patient", keys=[KEY1]), [KEY1, KEY2])
    assert (mine[KEY1].external_id, mine[KEY2].external_id) == ("P1", None)
    admin = patient_names(request, _viewer("admin"), [KEY3, "e" * 32])
    assert admin[KEY3].external_id == "P3"
    assert admin["e" * 32] == PatientName("e" * 32, None, None)  # unknown: as if not entitled
    assert patient_names(request, _viewer("uploader", keys=[KEY1]), [KEY1])[KEY1].known is False


def test_shown_is_the_label_else_the_id_else_the_key(settings, directory):
    assert PatientName(KEY1, "P1", "Ada").shown == "Ada"
    assert PatientName(KEY1, "P1", None).shown == "P1"
    assert PatientName(KEY1, None, None).shown == "patient aaaaaaaa"
    directory.set_label(KEY3, "Carol", at=AT, by="cli")
    assert patient_name_for(settings, KEY3) == PatientName(KEY3, "P3", "Carol")


def _partial(**context):
    return templates.get_template("_patient_name.html").render(**context)


def test_the_name_partial_escapes_a_hostile_label_and_shows_the_id_and_key():
    html = _partial(name=PatientName(KEY1, "P&1", HOSTILE))
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "ID P&amp;1" in html
    assert KEY1[:8] in html


def test_the_name_partial_leaves_lines_to_write_in_only_when_asked():
    for name in (None, PatientName(KEY1, None, None)):
        printed = _partial(name=name, write_in=True)
        assert "Name:" in printed
        assert "DOB:" in printed
        assert "Name:" not in _partial(name=name)
    assert "patient <code" in _partial(name=PatientName(KEY1, None, None))
    assert _partial(name=None).strip() == ""
    assert "Name:" not in _partial(name=PatientName(KEY1, "P1", None), write_in=True)


def test_erasing_a_patient_erases_their_label(settings, directory):
    directory.set_label(KEY1, "Ada Lovelace", at=AT, by="cli")
    open_metadata(settings.lake).forget_patient(KEY1)
    assert KEY1 not in directory.names([KEY1])
    assert directory.find("Ada") == []


# ---- the command line (cli/patient_identity.py) -----------------------------------------------


@pytest.fixture
def cli_env(settings):
    key = patient_key(SECRET.encode(), "P00001")
    open_metadata(settings.lake).register_patients({key: "P00001"}, AT)
    env = {
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE": settings.lake.root,
    }
    return env, key


def _cli(cli, env, *args):
    return cli.invoke(main, ["patient", *args], env=env)


def test_cli_sets_finds_and_clears_a_label_and_audits_without_its_text(cli, cli_env, settings):
    env, key = cli_env
    made = _cli(cli, env, "label", "P00001", "Ada Lovelace (MRN 1234)")
    assert made.exit_code == 0, made.output
    assert key in made.output
    found = _cli(cli, env, "find", "mrn 12", "--json")
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["patients"] == [
        {"patient_key": key, "external_id": "P00001", "label": "Ada Lovelace (MRN 1234)"}
    ]
    line = _cli(cli, env, "find", "p00001").output.strip()
    assert line == f"{key}\tP00001\tAda Lovelace (MRN 1234)"
    cleared = _cli(cli, env, "label", "P00001", "--clear", "--json")
    assert cleared.exit_code == 0, cleared.output
    assert json.loads(cleared.output)["label"] is None
    assert _cli(cli, env, "find", "lovelace").output.strip() == "no patient found"
    entries = open_access(settings.lake).audit.access_entries(key)
    # newest first; the last find found nothing, so its entry names no patient
    assert [e.action for e in entries] == [
        "patient.label.clear",
        "patient.find",
        "patient.find",
        "patient.label.set",
    ]
    assert open_access(settings.lake).audit.access_entries()[0].action == "patient.find"
    assert all(e.token_id == "cli" and "Lovelace" not in e.resource for e in entries)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("label", "P00001", "bad\tlabel"), 1, "U+0009"),
        (("label", "P00001", "x" * 200), 1, "200 characters, more than 120"),
        (("label", "P99999", "Ada"), 1, "no patient with that id"),
        (("label", "P00001"), 2, "--clear"),
        (("label", "P00001", "Ada", "--clear"), 2, "not both"),
    ],
)
def test_cli_refuses_a_bad_label_or_patient_in_one_line(cli, cli_env, settings, args, code, says):
    env, key = cli_env
    result = _cli(cli, env, *args)
    assert result.exit_code == code, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert open_patient_directory(settings.lake).names([key])[key].label is None


# ---- the lake never holds the label; erasure removes it --------------------------------------

EXTERNAL_ID = "EXT-4711-QZ"
LABEL = "Zebulon Quartermaine MRN-88421"


def _readings(day: int) -> list[dict]:
    start = dt.datetime(2026, 1, 5 + day, tzinfo=dt.UTC)
    return [
        {
            "patient_id": EXTERNAL_ID,
            "time": (start + dt.timedelta(minutes=5 * i)).isoformat(),
            "glucose_mg_dl": 100.0 + i % 50,
            "tz": "UTC",
        }
        for i in range(288)
    ]


def _lake_holding(root, needles: tuple[str, ...]) -> list[str]:
    """Files of the lake's data zones (everything but the metadata state) holding any needle:
    every value of every Parquet file read back, and the bytes of every other file."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "_state" not in p.parts):
        if path.suffix == ".parquet":
            text = repr(pq.read_table(path).to_pylist())
        else:
            text = path.read_bytes().decode("latin-1")
        hits += [f"{path.relative_to(root)}: {n}" for n in needles if n.lower() in text.lower()]
    return hits


def test_the_label_never_reaches_the_lake_and_is_erased_with_the_patient(settings):
    ingest_records(settings, _readings(0))
    key = patient_key(SECRET.encode(), EXTERNAL_ID)
    directory = open_patient_directory(settings.lake)
    assert directory.set_label(key, LABEL, at=AT, by="test")
    ingest_records(settings, _readings(1))
    assert run_pipeline(settings).status == "published"
    root = settings.lake.root_path
    assert len(_lake_holding(root, (key,))) > 3  # the scan finds what the lake does hold
    assert _lake_holding(root, (LABEL, "Quartermaine", EXTERNAL_ID)) == []
    assert directory.find("quartermaine") == [key]

    maintain(settings.lake, TABLES, erase_patient_key=key)
    assert directory.names([key]) == {}
    assert directory.find("quartermaine") == []
    assert directory.find(EXTERNAL_ID) == []
