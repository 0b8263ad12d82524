"""The Jinja2 environment of the pages (autoescaping on) and its unit filter."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from glucosestream.readings import MG_DL_PER_MMOL_L

__all__ = ["format_glucose", "templates"]

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def format_glucose(value_mg_dl: float | None, unit: str) -> str:
    """A glucose value in the viewer's unit: whole mg/dL, or mmol/L to one decimal."""
    if value_mg_dl is None or value_mg_dl != value_mg_dl:
        return "-"
    if unit == "mmol_l":
        return f"{value_mg_dl / MG_DL_PER_MMOL_L:.1f}"
    return f"{value_mg_dl:.0f}"


templates.env.filters["glucose"] = format_glucose
templates.env.globals["unit_label"] = {"mg_dl": "mg/dL", "mmol_l": "mmol/L"}
