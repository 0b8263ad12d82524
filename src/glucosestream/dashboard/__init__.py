"""The dashboard: login and sessions, the patient view, the AGP report (HTML and PDF), clinic
triage, private cohort statistics, and the JSON API behind them.

Rules: every page needs a session (made by logging in with a token); the JSON API takes the
session or ``Authorization: Bearer``. Every read of a patient's data is checked with
``access.authorize_read`` and recorded with ``access.record_access``. Data reaches a page only as
JSON inside ``<script type="application/json">`` (Jinja's ``tojson``); assets (Plotly.js
included) are served by the app, never from a CDN.
"""
