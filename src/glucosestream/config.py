"""Settings: one frozen dataclass with sections, and the only reader of the environment.

Precedence: defaults < environment < command-line flags. An environment variable is named
``GLUCOSESTREAM_<SECTION>__<KEY>`` (for example ``GLUCOSESTREAM_QUALITY__MAX_MG_DL=400``); its
value is parsed as JSON when it can be, else taken as a string. ``GLUCOSESTREAM_LAKE`` is a
shorthand for ``GLUCOSESTREAM_LAKE__ROOT``. Every field has a default that works on a laptop.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glucosestream.errors import ConfigError
from glucosestream.readings import check_zone

__all__ = [
    "AWS_CHECKSUM_VARIABLES",
    "SECRETS_ARN_VARIABLE",
    "AlertSettings",
    "DashboardSettings",
    "EngineSettings",
    "IngestSettings",
    "LakeSettings",
    "PipelineSettings",
    "QualitySettings",
    "Settings",
    "aws_secrets_arn",
    "child_environment",
    "ray_loopback_mode",
    "s3_checksum_policy",
]

ENV_PREFIX = "GLUCOSESTREAM_"
SECRETS_ARN_VARIABLE = ENV_PREFIX + "SECRETS_ARN"  # see aws_secrets_arn
# The AWS SDK's checksum policy (see s3_checksum_policy).
AWS_CHECKSUM_VARIABLES = ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION")
# Ray's single-node mode: "0" keeps every socket of a node and of a driver on its loopback
# address (see ray_loopback_mode).
RAY_LOOPBACK_VARIABLE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True, slots=True)
class LakeSettings:
    root: str = field(
        default="./lake",
        metadata=_help("Where the lake lives: a local folder, or s3://bucket/prefix."),
    )
    state_dir: str = field(
        default="",
        metadata=_help(
            "Local folder for the SQLite catalog, metadata store, pseudonym key and run lock; "
            "empty: the lake's _state folder (an s3:// lake needs this or database URLs)."
        ),
    )
    s3_endpoint_url: str = field(
        default="",
        metadata=_help(
            "S3 endpoint for an s3:// lake (empty: AWS); e.g. http://127.0.0.1:7480. A server "
            "that refuses streamed checksums (Ceph radosgw 16: HTTP 411) needs the process "
            "started with AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED and "
            "AWS_RESPONSE_CHECKSUM_VALIDATION=WHEN_REQUIRED."
        ),
    )
    s3_region: str = field(default="us-east-1", metadata=_help("S3 region of an s3:// lake."))
    s3_access_key_id: str = field(
        default="",
        repr=False,
        metadata=_help("S3 access key id (empty: the AWS default credential chain)."),
    )
    s3_secret_access_key: str = field(
        default="",
        repr=False,
        metadata=_help("S3 secret access key (empty: the AWS default credential chain)."),
    )
    catalog_url: str = field(
        default="",
        metadata=_help(
            "Iceberg catalog: a SQLAlchemy URL (SQL catalog), or glue://REGION (AWS Glue); "
            "empty: SQLite in the lake's _state folder."
        ),
    )
    namespace_prefix: str = field(
        default="",
        metadata=_help(
            "Prefix of the catalog namespaces (curated, results), e.g. to keep several lakes "
            "apart in one Glue account: gs_prod_ gives gs_prod_curated."
        ),
    )
    metadata_url: str = field(
        default="",
        metadata=_help(
            "SQLAlchemy URL of the metadata store; empty: SQLite in the lake's _state folder."
        ),
    )
    lock_url: str = field(
        default="",
        metadata=_help(
            "Where the run lock lives: dynamodb://TABLE (a lease in a DynamoDB table, in "
            "s3_region: for an S3 lake run from several machines or by AWS Step Functions); "
            "empty: the PostgreSQL metadata store's advisory lock, else a file lock in the "
            "state folder."
        ),
    )

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    @property
    def location(self) -> str:
        """The lake's root as a user would write it (for messages)."""
        return self.root if self.is_s3 else str(self.root_path)

    @property
    def root_path(self) -> Path:
        """The lake's folder; only for a local lake."""
        if self.is_s3:
            raise ConfigError(f"{self.root} is an object-store lake, not a local folder")
        return Path(self.root).expanduser().resolve()

    @property
    def state_path(self) -> Path:
        """The local folder of the lake's state (SQLite files, pseudonym key, run lock)."""
        if self.state_dir:
            return Path(self.state_dir).expanduser().resolve()
        if self.is_s3:
            raise ConfigError(
                f"the lake {self.root} is in object storage, so its catalog and metadata need a "
                "home: set GLUCOSESTREAM_LAKE__CATALOG_URL and GLUCOSESTREAM_LAKE__METADATA_URL "
                "(PostgreSQL) or GLUCOSESTREAM_LAKE__STATE_DIR (a local folder)"
            )
        return self.root_path / "_state"

    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{self.state_path / 'catalog.db'}"

    def resolved_metadata_url(self) -> str:
        return self.metadata_url or f"sqlite:///{self.state_path / 'metadata.db'}"


@dataclass(frozen=True, slots=True)
class IngestSettings:
    pseudonym_secret: str = field(
        default="",
        repr=False,
        metadata=_help(
            "Secret key of the HMAC that turns patient ids into patient keys; empty: a random key "
            "is made once and kept in the lake's _state/pseudonym.key."
        ),
    )
    default_tz: str = field(
        default="UTC",
        metadata=_help("IANA zone for times written without an offset, unless --tz is given."),
    )
    default_device_id: str = field(
        default="unknown",
        metadata=_help("Device id used when an input has no device column."),
    )
    min_mg_dl: float = field(
        default=10.0,
        metadata=_help("Readings below this glucose (mg/dL) are quarantined as implausible."),
    )
    max_mg_dl: float = field(
        default=1000.0,
        metadata=_help("Readings above this glucose (mg/dL) are quarantined as implausible."),
    )
    keep_notes: bool = field(
        default=False,
        metadata=_help(
            "Keep the free text of note events (Nightscout notes, Clarity and Tidepool notes); "
            "off by default, as notes can hold names: the note's text is dropped and its row "
            "counted as skipped."
        ),
    )


@dataclass(frozen=True, slots=True)
class EngineSettings:
    name: str = field(default="duckdb", metadata=_help("Query engine: duckdb (in-process)."))
    threads: int = field(default=0, metadata=_help("Engine threads; 0: one per core."))
    memory_limit_mb: int = field(
        default=0, metadata=_help("Engine memory limit in MB; 0: the engine's default.")
    )


@dataclass(frozen=True, slots=True)
class QualitySettings:
    min_mg_dl: float = field(
        default=20.0,
        metadata=_help(
            "Quality gate: lowest glucose (mg/dL) a published reading may have; ingest "
            "quarantines a reading below it, and a run sets aside one ingested under a lower "
            "limit (mmol/L values labelled mg/dL land here)."
        ),
    )
    max_mg_dl: float = field(
        default=600.0,
        metadata=_help(
            "Quality gate: highest glucose (mg/dL) a published reading may have (as min_mg_dl)."
        ),
    )


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    readings_per_task: int = field(
        default=4_000_000,
        metadata=_help(
            "Readings a run's bucket task is sized for at most (new and history it reads); "
            "the memory budget (`run --memory-budget`) may make tasks smaller."
        ),
    )
    task_memory_mb: int = field(
        default=0,
        metadata=_help(
            "Memory of one bucket task in MiB where tasks run on machines of a fixed size (an "
            "AWS Lambda function's memory); 0: `run --memory-budget`, else a quarter of RAM."
        ),
    )
    min_interval: float = field(
        default=30.0,
        metadata=_help(
            "Seconds: `serve` starts a run when new batches arrived, at most once in this time."
        ),
    )
    schedule_interval: float = field(
        default=3600.0,
        metadata=_help("Seconds: `serve` also starts a run this long after the last one."),
    )
    stop_grace: float = field(
        default=10.0,
        metadata=_help("Seconds a stopping `serve` lets a run it started finish before ending it."),
    )
    maintain_interval: float = field(
        default=86400.0,
        metadata=_help("Seconds between the `maintain` runs `serve` starts; 0: none (cron it)."),
    )
    sweep_raw_zone: bool = field(
        default=True,
        metadata=_help("Runs also look for unrecorded raw batches (serve: scheduled runs only)."),
    )


@dataclass(frozen=True, slots=True)
class AlertSettings:
    stale_warn_min: float = field(
        default=20.0, metadata=_help("Minutes without a reading before a stale-data alert.")
    )
    stale_urgent_min: float = field(
        default=40.0,
        metadata=_help("Minutes without a reading before a stale-data alert becomes urgent."),
    )
    fresh_min: float = field(
        default=15.0,
        metadata=_help(
            "A reading older than this many minutes when it arrives (a backfill) can clear an "
            "alert but not fire one."
        ),
    )
    window_h: float = field(
        default=3.0, metadata=_help("Hours of each patient's recent readings kept for alerts.")
    )
    max_attempts: int = field(
        default=20,
        metadata=_help(
            "Attempts to deliver a webhook before it is a dead letter (about 2.3 days with the "
            "defaults)."
        ),
    )
    backoff_first_s: float = field(
        default=1.0,
        metadata=_help("Seconds before a failed webhook delivery is retried the first time."),
    )
    backoff_max_s: float = field(
        default=43200.0,
        metadata=_help("Longest wait in seconds between webhook attempts (each doubles, ±20%)."),
    )
    timeout_s: float = field(
        default=10.0, metadata=_help("Seconds a webhook receiver has to answer one delivery.")
    )
    claim_s: float = field(
        default=30.0,
        metadata=_help(
            "Seconds a delivery a `serve` claimed stays its own; a claim of a stopped `serve` "
            "is taken over after this."
        ),
    )


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    host: str = field(default="127.0.0.1", metadata=_help("Address `serve` listens on."))
    port: int = field(default=8000, metadata=_help("Port `serve` listens on."))
    privacy_budget_epsilon: float = field(
        default=1.0,
        metadata=_help("Total privacy budget (epsilon) of each cohort dataset's releases."),
    )
    privacy_min_patients: int = field(
        default=20,
        metadata=_help(
            "Fewest patients with data a cohort release may describe; below it the release is "
            "refused and spends nothing."
        ),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    lake: LakeSettings = field(default_factory=LakeSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, overlay: Mapping[str, str] = {}
    ) -> Settings:
        """Defaults overlaid with ``GLUCOSESTREAM_*`` variables from ``environ`` (os.environ),
        then with those of ``overlay`` (values from a secret store: ``aws_secrets_arn``)."""
        stray = sorted(k for k in overlay if not k.startswith(ENV_PREFIX))
        if stray:
            raise ConfigError(
                f"settings from a secret store must be {ENV_PREFIX}* names; got {', '.join(stray)}"
            )
        env = {**(os.environ if environ is None else environ), **overlay}
        sections: dict[str, dict[str, Any]] = {}
        for name, raw in env.items():
            if not name.startswith(ENV_PREFIX):
                continue
            key = name[len(ENV_PREFIX) :].lower()
            key = "lake__root" if key == "lake" else key
            if "__" not in key:
                continue
            section, _, field_name = key.partition("__")
            sections.setdefault(section, {})[field_name] = (name, raw)
        settings = cls()
        for section, values in sections.items():
            settings = settings._with_env_section(section, values)
        check_zone(settings.ingest.default_tz, f"{ENV_PREFIX}INGEST__DEFAULT_TZ")
        return settings

    def _with_env_section(self, section: str, values: dict[str, Any]) -> Settings:
        known = {f.name: f for f in dataclasses.fields(self)}
        if section not in known:
            name = next(iter(values.values()))[0]
            raise ConfigError(
                f"environment variable {name} names an unknown section {section!r}; "
                f"expected one of {', '.join(sorted(known))}"
            )
        current = getattr(self, section)
        fields = {f.name: f for f in dataclasses.fields(current)}
        changes: dict[str, Any] = {}
        for field_name, (var, raw) in values.items():
            if field_name not in fields:
                raise ConfigError(
                    f"environment variable {var} names an unknown setting {field_name!r}; "
                    f"expected one of {', '.join(sorted(fields))} (see docs/configuration.md)"
                )
            changes[field_name] = _coerce(var, raw, type(getattr(current, field_name)))
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **changes)})

    def to_env(self) -> dict[str, str]:
        """Every field as the ``GLUCOSESTREAM_<SECTION>__<KEY>`` variable that gives it (secrets
        too: for a child process, never for a log), so ``from_env(s.to_env()) == s``."""
        sections = {s.name.upper(): getattr(self, s.name) for s in dataclasses.fields(self)}
        return {
            f"{ENV_PREFIX}{name}__{f.name.upper()}": _env_value(getattr(section, f.name))
            for name, section in sections.items()
            for f in dataclasses.fields(section)
        }

    def override(self, section: str, **changes: Any) -> Settings:
        """A copy with some fields of one section replaced (used for command-line flags)."""
        kept = {k: v for k, v in changes.items() if v is not None}
        if not kept:
            return self
        current = getattr(self, section)
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **kept)})


def child_environment(settings: Settings) -> dict[str, str]:
    """A child's environment (``serve``'s runs): ours, with ``settings.to_env()`` for ours."""
    ours = (n for n in os.environ if n.startswith(ENV_PREFIX))
    replaced = {n for n in ours if "__" in n or n == f"{ENV_PREFIX}LAKE"}
    return {**{n: v for n, v in os.environ.items() if n not in replaced}, **settings.to_env()}


def aws_secrets_arn(environ: Mapping[str, str] | None = None) -> str:
    """``GLUCOSESTREAM_SECRETS_ARN``: a Secrets Manager secret whose JSON object holds more
    ``GLUCOSESTREAM_*`` variables (a database URL, the pseudonym key) for an AWS Lambda function,
    so they are never in its plain environment; empty when unset."""
    env = os.environ if environ is None else environ
    return env.get(SECRETS_ARN_VARIABLE, "")


def s3_checksum_policy(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The AWS SDK's checksum policy as the process environment sets it (read, never written).

    pyarrow's S3 client (the AWS C++ SDK) takes this policy only from the environment or
    ``~/.aws/config``, not from its options. Its default sends streamed checksums, which older
    S3-compatible servers refuse (Ceph radosgw 16: HTTP 411 MissingContentLength); for those the
    process is started with both variables set to ``WHEN_REQUIRED``.
    """
    env = os.environ if environ is None else environ
    return {name: env[name] for name in AWS_CHECKSUM_VARIABLES if name in env}


def ray_loopback_mode(address: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether a driver of the Ray cluster at ``address`` runs in Ray's loopback mode; switched
    on here (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in ``environ``, os.environ) when the
    address is a loopback one (127.0.0.1, localhost, ::1) and the variable is unset.

    Ray reads the variable when it is imported, so this runs before ``import ray``. Without it,
    Ray rewrites a loopback node address to the first network interface's, and a driver given
    ``127.0.0.1:PORT`` waits for ever on that other address. A cluster meant to stay on loopback
    is started with the same variable: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head
    --node-ip-address 127.0.0.1``.
    """
    env = os.environ if environ is None else environ
    if RAY_LOOPBACK_VARIABLE not in env and _is_loopback_host(_ray_host(address)):
        env[RAY_LOOPBACK_VARIABLE] = "0"
    return env.get(RAY_LOOPBACK_VARIABLE) == "0"


def _ray_host(address: str) -> str:
    """The host of a Ray address: ``HOST:PORT``, ``[IPV6]:PORT`` or ``ray://HOST:PORT``."""
    where = address.removeprefix("ray://")
    if where.startswith("["):
        return where[1:].partition("]")[0]
    return where.rpartition(":")[0] if where.count(":") == 1 else where


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env_value(value: object) -> str:
    """A value as ``_coerce`` reads it back: JSON, or a string as is (quoted if JSON-like)."""
    try:
        as_json = not isinstance(value, str) or isinstance(json.loads(value), str)
    except ValueError:
        as_json = False
    return json.dumps(value) if as_json else str(value)


def _coerce(var: str, raw: str, kind: type) -> Any:
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    if kind is str:
        return raw if not isinstance(value, str) else value
    if kind is bool and isinstance(value, bool):
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(
        f"environment variable {var}={raw!r} is not a valid {kind.__name__}; "
        f"set it to a {kind.__name__} or unset it"
    )
