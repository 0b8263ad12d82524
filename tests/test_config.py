from __future__ import annotations

import pytest

from glucosestream.config import Settings, s3_checksum_policy
from glucosestream.errors import ConfigError


def test_defaults_work_locally():
    settings = Settings.from_env({})
    assert settings.lake.root == "./lake"
    assert settings.engine.name == "duckdb"
    assert settings.lake.resolved_metadata_url().endswith("_state/metadata.db")


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {
        "GLUCOSESTREAM_QUALITY__MAX_MG_DL": "400",
        "GLUCOSESTREAM_LAKE": "/data/lake",
        "GLUCOSESTREAM_DASHBOARD__PORT": "9000",
        "GLUCOSESTREAM_INGEST__DEFAULT_TZ": "Europe/Paris",
        "UNRELATED": "x",
    }
    settings = Settings.from_env(env)
    assert settings.quality.max_mg_dl == 400.0
    assert isinstance(settings.quality.max_mg_dl, float)
    assert settings.lake.root == "/data/lake"
    assert settings.dashboard.port == 9000
    assert settings.ingest.default_tz == "Europe/Paris"
    assert settings.override("lake", root="/elsewhere").lake.root == "/elsewhere"
    assert settings.override("lake", root=None).lake.root == "/data/lake"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("GLUCOSESTREAM_NOPE__X", "1", "unknown section"),
        ("GLUCOSESTREAM_LAKE__NOPE", "1", "unknown setting"),
        ("GLUCOSESTREAM_DASHBOARD__PORT", "eighty", "not a valid int"),
        ("GLUCOSESTREAM_QUALITY__MIN_MG_DL", "true", "not a valid float"),
    ],
)
def test_bad_environment_names_the_variable(name, value, words):
    with pytest.raises(ConfigError, match=words) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)


def test_secret_is_not_in_repr():
    settings = Settings.from_env({"GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": "s3cr3t-value"})
    assert settings.ingest.pseudonym_secret == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings)


def test_the_s3_checksum_policy_is_read_from_the_environment_never_written():
    env = {"AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED", "OTHER": "x"}
    assert s3_checksum_policy(env) == {"AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED"}
    assert env == {"AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED", "OTHER": "x"}
    assert s3_checksum_policy({}) == {}
