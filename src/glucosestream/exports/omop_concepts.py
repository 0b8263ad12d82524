"""The OMOP concept ids the OMOP export writes, each with its source, and the rows of the
summary it writes. PURE.

Only ids checked against a source are used; where none could be checked offline the CDM's
"no matching concept" **0** is written and the code goes in the ``*_source_value`` column, as
the CDM's conventions ask ("If a Standard Concept does not exist or cannot be identified, the
Concept with the CONCEPT_ID 0 is used": OHDSI/CommonDataModel ``docs/dataModelConventions``;
MEASUREMENT: "a Measurement entry is stored with only the corresponding SOURCE_CONCEPT_ID and
MEASUREMENT_SOURCE_VALUE and a MEASUREMENT_CONCEPT_ID of 0"). A site with the OMOP vocabulary
loaded maps them in one statement (docs/exports.md, "OMOP"):
``concept_id`` of ``concept`` where ``vocabulary_id = 'LOINC'`` and ``concept_code`` = the
source value.

Sources:
- [CDM] OHDSI/CommonDataModel at f853f6e: ``rmd/sqlScripts.Rmd`` (756265 "OMOP CDM Version
  5.4.0"), ``inst/csv/OMOP_CDMv5.4_Field_Level.csv`` (0 for unknown gender/race/ethnicity;
  unit 0 when a unit is given but not mapped).
- [DQD] OHDSI/DataQualityDashboard ``inst/csv/OMOP_CDMv5.4_Concept_Level.csv``: 8840
  "milligram per deciliter", 8753 "millimole per liter" (named there); 8554 is the approved unit
  of its percentage measurements ("Monocytes/100 leukocytes in Blood", "Pulse oximetry",
  "Hemoglobin A1c/Hemoglobin.total in Blood"): percent.
- [SYN] OHDSI/ETL-Synthea ``docs/articles``: 32817 "EHR" (death), 32882 "Standard algorithm
  from EHR" (observation_period). The Type Concept vocabulary was made in one step in the order
  of OHDSI/Vocabulary-v5.0 ``working/manual_changes/2020/2020-08-20.sql``, which agrees with both.
- LOINC codes: ``exports.fhir_codes`` (the HL7 CGM guide's codes, checked against LOINC's names).
  Their OMOP concept ids (LOINC 99504-3 and the CGM summary codes, added to LOINC in 2021-2023)
  could not be checked offline: 0 and the code as source value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from glucosestream.exports.fhir_codes import (
    DAYS_OF_WEAR,
    GLUCOSE_CV,
    GMI,
    MEAN_GLUCOSE,
    READING,
    SENSOR_ACTIVE,
    TIME_IN_RANGES,
    Code,
)

__all__ = [
    "CDM_VERSION",
    "CDM_VERSION_CONCEPT_ID",
    "DEVICE_CONCEPT_ID",
    "DEVICE_TYPE_CONCEPT_ID",
    "DRUG_CONCEPT_ID",
    "DRUG_TYPE_CONCEPT_ID",
    "NO_MATCHING_CONCEPT",
    "PERIOD_TYPE_CONCEPT_ID",
    "READING_CODE",
    "READING_TYPE_CONCEPT_ID",
    "SUMMARY_MEASUREMENTS",
    "SUMMARY_TYPE_CONCEPT_ID",
    "UNIT_CONCEPT_IDS",
    "SummaryMeasurement",
    "summary_markdown",
]

NO_MATCHING_CONCEPT: Final = 0  # [CDM] "No matching concept"
CDM_VERSION: Final = "v5.4"
CDM_VERSION_CONCEPT_ID: Final = 756265  # [CDM] 'OMOP CDM Version 5.4.0'
# Type concepts (provenance) [SYN]. The lake's readings come from the clinic's record of its
# patients' devices: "EHR"; the summaries and observation periods are derived from them by the
# pipeline's published algorithm: "Standard algorithm from EHR".
READING_TYPE_CONCEPT_ID: Final = 32817  # EHR
DEVICE_TYPE_CONCEPT_ID: Final = 32817  # EHR
SUMMARY_TYPE_CONCEPT_ID: Final = 32882  # Standard algorithm from EHR
PERIOD_TYPE_CONCEPT_ID: Final = 32882  # Standard algorithm from EHR
DEVICE_CONCEPT_ID: Final = NO_MATCHING_CONCEPT  # no CGM device concept checked offline
# Insulin doses come from the same devices' records as the readings: "EHR". The lake knows a
# dose's use (bolus, long-acting injection), never the insulin product, and no RxNorm concept
# was checked offline: 0, with the use as drug_source_value.
DRUG_TYPE_CONCEPT_ID: Final = 32817  # EHR
DRUG_CONCEPT_ID: Final = NO_MATCHING_CONCEPT
# UCUM unit -> unit_concept_id [DQD]; "d" (days) could not be checked: 0, "d" as source value.
UNIT_CONCEPT_IDS: Final[dict[str, int]] = {"mg/dL": 8840, "mmol/L": 8753, "%": 8554}
READING_CODE: Final[Code] = READING["mg/dL"]  # LOINC 99504-3, values in mg/dL


@dataclass(frozen=True, slots=True)
class SummaryMeasurement:
    """One MEASUREMENT row of a patient's window summary: its LOINC code and the summary metric
    (``metrics.spec`` name) that gives its value, in the code's unit."""

    code: Code
    metric: str


SUMMARY_MEASUREMENTS: Final[tuple[SummaryMeasurement, ...]] = (
    SummaryMeasurement(MEAN_GLUCOSE["mg/dL"], "mean_mg_dl"),
    *(SummaryMeasurement(r.code, r.metric) for r in TIME_IN_RANGES),
    SummaryMeasurement(GMI, "gmi_pct"),
    SummaryMeasurement(GLUCOSE_CV, "cv_pct"),
    SummaryMeasurement(DAYS_OF_WEAR, "days"),
    SummaryMeasurement(SENSOR_ACTIVE, "active_pct"),
)


def summary_markdown() -> str:
    """The summary rows of MEASUREMENT as the Markdown table of docs/exports.md (cog)."""
    lines = [
        "| LOINC (measurement_source_value) | what | value from | unit_concept_id | unit |",
        "|---|---|---|---|---|",
    ]
    for m in SUMMARY_MEASUREMENTS:
        unit = m.code.unit or ""
        lines.append(
            f"| {m.code.code} | {m.code.label} | `{m.metric}` | {UNIT_CONCEPT_IDS.get(unit, 0)} "
            f"| {unit} |"
        )
    return "\n".join(lines) + "\n"
