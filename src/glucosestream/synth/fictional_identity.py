"""Fictional identities for synthetic patients: the names, birth dates and serials that real
exports carry and that ingest must strip. PURE.

Drawn from their own seeded stream (cohort seed, patient index, 1), so adding a field here never
changes a patient's glucose. Names come from short lists of common given and family names; any
resemblance to a real person is chance.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Final

import numpy as np

from glucosestream.synth.profiles import Device

__all__ = ["Identity", "identity_of", "patient_id_of"]

_GIVEN: Final = (
    "Alex", "Amira", "Ben", "Carla", "Dev", "Elena", "Femi", "Grace", "Hugo", "Ines",
    "Jonas", "Kemi", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami",
    "Tara", "Umar", "Vera", "Wei", "Yara", "Zoe",
)  # fmt: skip
_FAMILY: Final = (
    "Adams", "Bauer", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jones",
    "Khan", "Lopez", "Martin", "Novak", "Okafor", "Patel", "Quint", "Rossi", "Smith", "Tanaka",
    "Udeh", "Vargas", "Weber", "Xu", "Young", "Zimmer",
)  # fmt: skip
_TRANSMITTER_CHARS: Final = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class Identity:
    """What an export knows about its patient."""

    patient_id: str
    first_name: str
    last_name: str
    birth_date: dt.date
    device_serial: str


def patient_id_of(index: int) -> str:
    """The external patient id of the patient at 0-based ``index``: P00001, P00002, ..."""
    return f"P{index + 1:05d}"


def identity_of(seed: int, index: int, device: Device) -> Identity:
    """The fictional identity of patient ``index`` in a cohort seeded ``seed``."""
    rng = np.random.default_rng([seed, index, 1])
    given = rng.integers(0, len(_GIVEN))
    family = rng.integers(0, len(_FAMILY))
    age_days = int(rng.integers(18 * 365, 80 * 365))
    serial_bits = rng.integers(0, 2**63, size=2)
    return Identity(
        patient_id=patient_id_of(index),
        first_name=_GIVEN[int(given)],
        last_name=_FAMILY[int(family)],
        birth_date=dt.date(2026, 1, 1) - dt.timedelta(days=age_days),
        device_serial=_serial(device, int(serial_bits[0]), int(serial_bits[1])),
    )


def _serial(device: Device, high: int, low: int) -> str:
    """A serial in the device's style: G6 6-character transmitter id, G7 12 digits, Libre
    app UUID (upper case as the iOS app writes it)."""
    if device.name.endswith("G6"):
        return "".join(_TRANSMITTER_CHARS[(high >> (5 * i)) % 34] for i in range(6))
    if device.name.endswith("G7"):
        return f"{high % 10**12:012d}"
    return str(uuid.UUID(int=(high << 64) | low)).upper()
