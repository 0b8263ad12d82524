"""The codes, units and profiles of the FHIR export, each named once with its source. PURE.

Source: the HL7 FHIR Implementation Guide "Continuous Glucose Monitoring" 1.0.0 (STU 1,
``hl7.fhir.uv.cgm``, http://hl7.org/fhir/uv/cgm; its FHIR Shorthand in github.com/HL7/cgm
``input/fsh/profiles.fsh``, read at commit 0b247ae). Each code below is the one the guide's
profile fixes; LOINC's own names are quoted from the LOINC database (loinc.org; checked in the
HealthAssure LOINC mirror pages of 104641-6 and 104642-4, and the guide's 2025 ballot
ConceptMap ``CGMSummaryToLoinc``, which maps its "time in very low" to 104642-4).

The two below-range codes: LOINC names **104642-4** "Time below range, very low in Reporting
Period Interstitial fluid by calculation" (< 54 mg/dL, < 3.0 mmol/L) and **104641-6** "Time
below range, low ..." (54-69 mg/dL). The guide's profiles assign them that way round
(``timeInVeryLow`` 104642-4, ``timeInLow`` 104641-6), but the comments beside the codes in its
FSH call 104642-4 "time below glucose threshold level 1" and 104641-6 "level 2", which is
backwards (level 2 hypoglycaemia is < 54 mg/dL: Battelino 2019, Diabetes Care 42:1593). The
export follows LOINC and the profiles: very low (< 54) is 104642-4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "CATEGORY_LABORATORY",
    "CGM_IG",
    "DAYS_OF_WEAR",
    "GLUCOSE_CV",
    "GMI",
    "LOINC",
    "MEAN_GLUCOSE",
    "PROFILES",
    "READING",
    "REPORT_CATEGORY",
    "SENSOR_ACTIVE",
    "SUMMARY_PANEL",
    "TIMES_IN_RANGES",
    "TIME_IN_RANGES",
    "UCUM",
    "Code",
    "RangeCode",
]

LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
CGM_IG: Final = "http://hl7.org/fhir/uv/cgm"


@dataclass(frozen=True, slots=True)
class Code:
    """A LOINC code, a short label of what it measures (ours, for the docs: not LOINC's name;
    the resources carry no ``display``, as the guide's examples, so a receiver shows its own
    LOINC names), and the UCUM unit of its value (None: it has no value of its own)."""

    code: str
    label: str
    unit: str | None


@dataclass(frozen=True, slots=True)
class RangeCode:
    """A times-in-ranges component: its code and the period-metrics column it takes."""

    code: Code
    metric: str


# CGM sensor readings: profiles cgm-sensor-reading-mass-per-volume / -moles-per-volume.
READING: Final = {
    "mg/dL": Code("99504-3", "CGM sensor reading (mass per volume)", "mg/dL"),
    "mmol/L": Code("105272-9", "CGM sensor reading (moles per volume)", "mmol/L"),
}
# Summary members (profiles cgm-summary-*), with the period metric each takes.
MEAN_GLUCOSE: Final = {
    "mg/dL": Code("97507-8", "Mean glucose (mass per volume)", "mg/dL"),
    "mmol/L": Code("105273-7", "Mean glucose (moles per volume)", "mmol/L"),
}
GMI: Final = Code("97506-0", "Glucose management indicator", "%")
GLUCOSE_CV: Final = Code("104638-2", "Coefficient of variation of glucose", "%")
DAYS_OF_WEAR: Final = Code("104636-6", "Days of sensor wear", "d")
SENSOR_ACTIVE: Final = Code("104637-4", "Sensor active time", "%")
TIMES_IN_RANGES: Final = Code("106793-3", "Times in ranges panel", None)
# The five components of 106793-3, lowest range first (profile cgm-summary-times-in-ranges).
TIME_IN_RANGES: Final = (
    RangeCode(Code("104642-4", "Time below range, very low (< 54 mg/dL)", "%"), "pct_below_54"),
    RangeCode(Code("104641-6", "Time below range, low (54-69 mg/dL)", "%"), "pct_54_69"),
    RangeCode(Code("97510-2", "Time in range (70-180 mg/dL)", "%"), "pct_70_180"),
    RangeCode(Code("104640-8", "Time above range, high (181-250 mg/dL)", "%"), "pct_181_250"),
    RangeCode(Code("104639-0", "Time above range, very high (> 250 mg/dL)", "%"), "pct_above_250"),
)
# The summary panel (profile cgm-summary) and the PDF report (cgm-summary-pdf) share one code.
SUMMARY_PANEL: Final = Code("107931-8", "CGM summary panel, reporting period", None)
CATEGORY_LABORATORY: Final = {
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "laboratory",
}
REPORT_CATEGORY: Final = {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}
# meta.profile of each kind of resource (the guide's StructureDefinition ids).
PROFILES: Final = {
    "reading:mg/dL": "cgm-sensor-reading-mass-per-volume",
    "reading:mmol/L": "cgm-sensor-reading-moles-per-volume",
    "mean:mg/dL": "cgm-summary-mean-glucose-mass-per-volume",
    "mean:mmol/L": "cgm-summary-mean-glucose-moles-per-volume",
    "ranges": "cgm-summary-times-in-ranges",
    "gmi": "cgm-summary-gmi",
    "cv": "cgm-summary-coefficient-of-variation",
    "wear": "cgm-summary-days-of-wear",
    "active": "cgm-summary-sensor-active-percentage",
    "summary": "cgm-summary",
    "report": "cgm-summary-pdf",
    "device": "cgm-device",
    "bundle": "cgm-data-submission-bundle",
}
