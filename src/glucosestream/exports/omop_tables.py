"""The OMOP CDM 5.4 tables the export writes, column by column, as the CDM's DDL declares them.
PURE.

Source: OHDSI/CommonDataModel, ``inst/ddl/5.4/duckdb/OMOPCDM_duckdb_5.4_ddl.sql`` (read at commit
f853f6e): each table's columns in the DDL's order, with its type and whether it is ``NOT NULL``.
The Arrow type of each CDM type: ``integer`` -> int32 (the DDL's 32-bit integer, so every id
must fit it), ``date`` -> date32, ``TIMESTAMP`` -> timestamp without zone (the export writes UTC),
``NUMERIC`` -> float64 (the Field_Level table of the same commit calls these fields ``float``),
``varchar(n)`` and ``TEXT`` -> string (a value longer than ``n`` is refused before writing).
DRUG_EXPOSURE (added later) was read in the same file at commit 0dd2175.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import pyarrow as pa

__all__ = ["CDM_TABLES", "INT32_MAX", "OmopColumn", "columns", "schema"]

INT32_MAX: Final = 2**31 - 1

# "<column> <type>[ NOT NULL]", in the DDL's order.
CDM_TABLES: Final[dict[str, tuple[str, ...]]] = {
    "person": (
        "person_id integer NOT NULL",
        "gender_concept_id integer NOT NULL",
        "year_of_birth integer NOT NULL",
        "month_of_birth integer",
        "day_of_birth integer",
        "birth_datetime TIMESTAMP",
        "race_concept_id integer NOT NULL",
        "ethnicity_concept_id integer NOT NULL",
        "location_id integer",
        "provider_id integer",
        "care_site_id integer",
        "person_source_value varchar(50)",
        "gender_source_value varchar(50)",
        "gender_source_concept_id integer",
        "race_source_value varchar(50)",
        "race_source_concept_id integer",
        "ethnicity_source_value varchar(50)",
        "ethnicity_source_concept_id integer",
    ),
    "observation_period": (
        "observation_period_id integer NOT NULL",
        "person_id integer NOT NULL",
        "observation_period_start_date date NOT NULL",
        "observation_period_end_date date NOT NULL",
        "period_type_concept_id integer NOT NULL",
    ),
    "measurement": (
        "measurement_id integer NOT NULL",
        "person_id integer NOT NULL",
        "measurement_concept_id integer NOT NULL",
        "measurement_date date NOT NULL",
        "measurement_datetime TIMESTAMP",
        "measurement_time varchar(10)",
        "measurement_type_concept_id integer NOT NULL",
        "operator_concept_id integer",
        "value_as_number NUMERIC",
        "value_as_concept_id integer",
        "unit_concept_id integer",
        "range_low NUMERIC",
        "range_high NUMERIC",
        "provider_id integer",
        "visit_occurrence_id integer",
        "visit_detail_id integer",
        "measurement_source_value varchar(50)",
        "measurement_source_concept_id integer",
        "unit_source_value varchar(50)",
        "unit_source_concept_id integer",
        "value_source_value varchar(50)",
        "measurement_event_id integer",
        "meas_event_field_concept_id integer",
    ),
    "device_exposure": (
        "device_exposure_id integer NOT NULL",
        "person_id integer NOT NULL",
        "device_concept_id integer NOT NULL",
        "device_exposure_start_date date NOT NULL",
        "device_exposure_start_datetime TIMESTAMP",
        "device_exposure_end_date date",
        "device_exposure_end_datetime TIMESTAMP",
        "device_type_concept_id integer NOT NULL",
        "unique_device_id varchar(255)",
        "production_id varchar(255)",
        "quantity integer",
        "provider_id integer",
        "visit_occurrence_id integer",
        "visit_detail_id integer",
        "device_source_value varchar(50)",
        "device_source_concept_id integer",
        "unit_concept_id integer",
        "unit_source_value varchar(50)",
        "unit_source_concept_id integer",
    ),
    "drug_exposure": (
        "drug_exposure_id integer NOT NULL",
        "person_id integer NOT NULL",
        "drug_concept_id integer NOT NULL",
        "drug_exposure_start_date date NOT NULL",
        "drug_exposure_start_datetime TIMESTAMP",
        "drug_exposure_end_date date NOT NULL",
        "drug_exposure_end_datetime TIMESTAMP",
        "verbatim_end_date date",
        "drug_type_concept_id integer NOT NULL",
        "stop_reason varchar(20)",
        "refills integer",
        "quantity NUMERIC",
        "days_supply integer",
        "sig TEXT",
        "route_concept_id integer",
        "lot_number varchar(50)",
        "provider_id integer",
        "visit_occurrence_id integer",
        "visit_detail_id integer",
        "drug_source_value varchar(50)",
        "drug_source_concept_id integer",
        "route_source_value varchar(50)",
        "dose_unit_source_value varchar(50)",
    ),
    "cdm_source": (
        "cdm_source_name varchar(255) NOT NULL",
        "cdm_source_abbreviation varchar(25) NOT NULL",
        "cdm_holder varchar(255) NOT NULL",
        "source_description TEXT",
        "source_documentation_reference varchar(255)",
        "cdm_etl_reference varchar(255)",
        "source_release_date date NOT NULL",
        "cdm_release_date date NOT NULL",
        "cdm_version varchar(10)",
        "cdm_version_concept_id integer NOT NULL",
        "vocabulary_version varchar(20) NOT NULL",
    ),
}
_VARCHAR: Final = re.compile(r"varchar\((\d+)\)")
_ARROW: Final[dict[str, pa.DataType]] = {
    "integer": pa.int32(),
    "date": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "NUMERIC": pa.float64(),
    "TEXT": pa.string(),
}


@dataclass(frozen=True, slots=True)
class OmopColumn:
    """One CDM column: its name, DDL type, whether it is NOT NULL, and for a varchar its
    length (None otherwise)."""

    name: str
    ddl_type: str
    required: bool
    max_chars: int | None

    @property
    def arrow_type(self) -> pa.DataType:
        return pa.string() if self.max_chars is not None else _ARROW[self.ddl_type]


def columns(table: str) -> tuple[OmopColumn, ...]:
    """The columns of CDM table ``table`` (lower case, as in the DDL), in order."""
    out = []
    for line in CDM_TABLES[table]:
        name, ddl_type, *rest = line.split(" ")
        length = _VARCHAR.fullmatch(ddl_type)
        out.append(OmopColumn(name, ddl_type, rest == ["NOT", "NULL"], length and int(length[1])))
    return tuple(out)


def schema(table: str) -> pa.Schema:
    """The Arrow schema of ``table``: its columns in order, NOT NULL columns not nullable."""
    return pa.schema(
        [pa.field(c.name, c.arrow_type, nullable=not c.required) for c in columns(table)]
    )
