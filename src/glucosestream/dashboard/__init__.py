"""The dashboard: HTML pages (Jinja2) and their JSON endpoints. Plotly.js is served from the
installed ``plotly`` package, so the pages work with no network."""
