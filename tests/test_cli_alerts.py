"""The `alerts` commands, a contract other tools call: exit codes, --json shapes, the webhook
secret printed once and never listed."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import glucosestream.cli.alerts  # noqa: F401 - registers `alerts` on main
from glucosestream.alerts.changes import AlertChange
from glucosestream.alerts.outbox import enqueue
from glucosestream.alerts.store import open_alert_store
from glucosestream.alerts.webhooks import open_webhook_store, secret_key
from glucosestream.cli import main
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import metadata_engine, open_access, open_metadata, webhook_outbox

from .conftest import SECRET

T0 = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def lake(tmp_path):
    """A lake that has ingested patient P1."""
    settings = Settings(
        lake=LakeSettings(root=str(tmp_path / "lake")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    key = patient_key(SECRET.encode(), "P1")
    open_metadata(settings.lake).register_patients({key: "P1"}, T0)
    return settings


@pytest.fixture
def env(lake):
    return {"GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET, "GLUCOSESTREAM_LAKE": lake.lake.root}


def run(cli, env, *args):
    return cli.invoke(main, ["alerts", *args], env=env)


def test_webhook_add_prints_the_secret_once_and_list_never_shows_it(cli, env, lake):
    added = run(cli, env, "webhook", "add", "https://pager.example.org/h", "--json")
    assert added.exit_code == 0, added.output
    report = json.loads(added.output)
    assert set(report) == {"webhook_id", "url", "patient", "secret", "created_at"}
    assert report["patient"] == "*"
    assert len(secret_key(report["secret"])) == 32
    store = open_webhook_store(lake.lake)
    assert store.signing_key(report["webhook_id"]) == secret_key(report["secret"])

    listed = run(cli, env, "webhook", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert report["secret"] not in listed.output
    (row,) = json.loads(listed.output)["webhooks"]
    assert set(row) == {
        "webhook_id", "url", "patient", "created_at", "created_by", "disabled_at", "deliveries",
    }  # fmt: skip
    assert row["webhook_id"] == report["webhook_id"]
    assert row["created_by"] == "cli"
    assert row["deliveries"] == dict.fromkeys(
        ["pending", "delivering", "delivered", "dead", "cancelled"], 0
    )
    human = run(cli, env, "webhook", "list")
    assert report["webhook_id"] in human.output
    assert report["secret"] not in human.output


def test_webhook_add_human_output_and_a_given_secret(cli, env):
    given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    added = run(cli, env, "webhook", "add", "http://127.0.0.1:9/h", "--secret", given)
    assert added.exit_code == 0, added.output
    assert f"signing secret: {given}\n" in added.stdout
    assert "not shown again" in added.stdout


def test_webhook_add_for_a_patient_by_the_id_as_ingested(cli, env, lake):
    added = run(cli, env, "webhook", "add", "https://x.example/h", "--patient", "P1", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["patient"] == "P1"
    (hook,) = open_webhook_store(lake.lake).webhooks()
    assert hook.patient_key == patient_key(SECRET.encode(), "P1")
    (row,) = json.loads(run(cli, env, "webhook", "list", "--json").output)["webhooks"]
    assert row["patient"] == "P1"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ftp://x.example/h"], "not an http or https URL"),
        (["https://x.example/h", "--patient", "NOBODY"], "no patient with that id"),
        (["https://x.example/h", "--patient", " "], "--patient is empty"),
        (["https://x.example/h", "--secret", "plain"], "starts with 'whsec_'"),
    ],
)
def test_webhook_add_refusals_are_one_line_exit_1_and_store_nothing(cli, env, lake, args, says):
    result = run(cli, env, "webhook", "add", *args)
    assert result.exit_code == 1
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert open_webhook_store(lake.lake).webhooks() == []


def test_webhook_remove_cancels_pending_deliveries_and_is_audited(cli, env, lake):
    hook_id = json.loads(run(cli, env, "webhook", "add", "https://x.example/h", "--json").output)[
        "webhook_id"
    ]
    with metadata_engine(lake.lake).begin() as con:
        con.execute(
            webhook_outbox.insert(),
            [
                {
                    "delivery_id": "msg_1",
                    "webhook_id": hook_id,
                    "alert_id": "al_1",
                    "event": "fired",
                    "seq": 0,
                    "body": b"{}",
                    "created_at": T0,
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": T0,
                }
            ],
        )
    removed = run(cli, env, "webhook", "remove", hook_id, "--json")
    assert removed.exit_code == 0, removed.output
    report = json.loads(removed.output)
    assert report["cancelled"] == 1
    assert report["disabled_at"]
    again = run(cli, env, "webhook", "remove", hook_id)
    assert again.exit_code == 0
    assert "was already removed" in again.stdout
    (row,) = json.loads(run(cli, env, "webhook", "list", "--json").output)["webhooks"]
    assert row["disabled_at"] == report["disabled_at"]
    assert row["deliveries"]["cancelled"] == 1
    actions = [e.action for e in open_access(lake.lake).audit.access_entries(limit=10)]
    assert sorted(actions) == ["webhook.add", "webhook.remove", "webhook.remove"]


def test_webhook_remove_of_an_unknown_id_is_not_found_exit_1(cli, env):
    result = run(cli, env, "webhook", "remove", "wh_nope")
    assert result.exit_code == 1
    assert "no webhook has the id 'wh_nope'" in result.stderr


def test_webhook_list_of_a_lake_without_webhooks(cli, env):
    result = run(cli, env, "webhook", "list")
    assert result.exit_code == 0
    assert result.stdout == "no webhooks yet\n"
    assert json.loads(run(cli, env, "webhook", "list", "--json").output) == {"webhooks": []}


def test_webhook_add_without_a_url_is_a_usage_error(cli, env):
    assert run(cli, env, "webhook", "add").exit_code == 2


# alerts list and ack ------------------------------------------------------------------------------
def fire(lake, alert_id, *, external="P1", kind="urgent_low", at=T0, event="fired", seq=0):
    key = patient_key(SECRET.encode(), external)
    open_metadata(lake.lake).register_patients({key: external}, T0)
    change = AlertChange(
        alert_id=alert_id,
        patient_key=key,
        kind=kind,
        event=event,
        seq=seq,
        at=at,
        glucose_mg_dl=52.0,
        threshold_mg_dl=55.0,
    )
    open_alert_store(lake.lake).apply([change], enqueue=enqueue)


def test_alerts_list_newest_first_with_deliveries_and_filters(cli, env, lake):
    open_webhook_store(lake.lake).add("https://x.example/h", at=T0)
    fire(lake, "al_1")
    fire(lake, "al_2", external="P2", kind="low", at=T0 + dt.timedelta(minutes=5))
    fire(
        lake,
        "al_2",
        external="P2",
        kind="low",
        at=T0 + dt.timedelta(minutes=9),
        event="cleared",
        seq=2,
    )
    result = run(cli, env, "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["alerts"]
    assert [r["alert_id"] for r in rows] == ["al_2", "al_1"]
    first = rows[1]
    assert set(first) == {
        "alert_id", "patient", "kind", "state", "level", "fired_at", "reading_ts",
        "glucose_mg_dl", "cleared_at", "acked_at", "acked_by", "suppressed", "snoozed_until",
        "deliveries",
    }  # fmt: skip
    assert (first["patient"], first["kind"], first["state"]) == ("P1", "urgent_low", "active")
    assert first["glucose_mg_dl"] == 52.0
    assert first["fired_at"] == "2026-02-01T12:00:00+00:00"
    assert first["deliveries"]["pending"] == 1
    assert rows[0]["deliveries"]["pending"] == 2  # the fire and the clear
    assert rows[0]["cleared_at"] == "2026-02-01T12:09:00+00:00"

    active = json.loads(run(cli, env, "list", "--active", "--json").output)["alerts"]
    assert [r["alert_id"] for r in active] == ["al_1"]
    mine = json.loads(run(cli, env, "list", "--patient", "P2", "--json").output)["alerts"]
    assert [r["alert_id"] for r in mine] == ["al_2"]
    assert len(json.loads(run(cli, env, "list", "--limit", "1", "--json").output)["alerts"]) == 1
    human = run(cli, env, "list")
    assert human.stdout.splitlines()[0].split()[:3] == ["alert_id", "patient", "kind"]
    assert "al_1" in human.stdout
    assert "1 pending" in human.stdout


def test_alerts_list_of_an_unknown_patient_is_not_found(cli, env):
    result = run(cli, env, "list", "--patient", "NOBODY")
    assert result.exit_code == 1
    assert "no patient with that id" in result.stderr


def test_alerts_list_without_alerts(cli, env):
    assert run(cli, env, "list").stdout == "no alerts\n"
    assert json.loads(run(cli, env, "list", "--json").output) == {"alerts": []}


def test_ack_records_once_says_when_and_is_audited(cli, env, lake):
    fire(lake, "al_1")
    acked = run(cli, env, "ack", "al_1", "--json")
    assert acked.exit_code == 0, acked.output
    row = json.loads(acked.output)
    assert row["alert_id"] == "al_1"
    assert row["acked_by"] == "cli"
    assert row["acked_at"]
    again = run(cli, env, "ack", "al_1")
    assert again.exit_code == 0
    assert f"was already acknowledged at {row['acked_at']} by cli" in again.stdout
    events = [e.event for e in open_alert_store(lake.lake).events("al_1")]
    assert events == ["fired", "acked"]  # the second ack changed nothing
    key = patient_key(SECRET.encode(), "P1")
    audit = open_access(lake.lake).audit.access_entries(key, limit=10)
    assert [(e.action, e.token_id, e.role) for e in audit] == [("alert.ack", "cli", "cli")]


def test_ack_of_an_unknown_alert_is_not_found_exit_1(cli, env):
    result = run(cli, env, "ack", "al_nope")
    assert result.exit_code == 1
    assert "no alert 'al_nope'" in result.stderr


def test_webhook_add_for_a_patient_known_only_by_an_uploader_token(cli, env):
    made = cli.invoke(main, ["token", "create", "--role", "uploader", "--patient", "NS7"], env=env)
    assert made.exit_code == 0, made.output
    added = run(cli, env, "webhook", "add", "https://x.example/h", "--patient", "NS7", "--json")
    assert added.exit_code == 0, added.output
    (row,) = json.loads(run(cli, env, "webhook", "list", "--json").output)["webhooks"]
    assert row["patient"] == "NS7"
