// Draws the patient page's four trend charts from the JSON embedded in #daily-data.
(function () {
  "use strict";
  const days = JSON.parse(document.getElementById("daily-data").textContent);
  const x = days.map((d) => d.date);
  const layout = (title, yTitle, target) => ({
    title: { text: title },
    margin: { t: 40, r: 10, b: 40, l: 50 },
    legend: { orientation: "h", y: -0.2 },
    yaxis: { title: { text: yTitle }, rangemode: "tozero" },
    shapes: target === undefined ? [] : [{
      type: "line", xref: "paper", x0: 0, x1: 1, y0: target, y1: target,
      line: { dash: "dash", color: "#7b8794" },
    }],
  });
  const line = (key, name, color) => ({
    x, y: days.map((d) => d[key]), name, type: "scatter", mode: "lines+markers",
    line: { color },
    customdata: days.map((d) => [d.readings, d.pct_active]),
    hovertemplate: "%{x}: %{y:.1f}<br>%{customdata[0]} readings, %{customdata[1]:.0f}% active" +
      "<extra>" + name + "</extra>",
  });
  const config = { displayModeBar: false, responsive: true };
  Plotly.newPlot("chart-mean", [line("mean_mg_dl", "Mean glucose", "#2563eb")],
    layout("Mean glucose", "mg/dL"), config);
  Plotly.newPlot("chart-tir", [
    line("pct_70_180", "70–180 mg/dL", "#16a34a"),
    line("pct_below_70", "below 70", "#dc2626"),
    line("pct_above_180", "above 180", "#f59e0b"),
  ], layout("Time in ranges", "% of readings", 70), config);
  Plotly.newPlot("chart-cv", [line("cv_pct", "CV", "#7c3aed")],
    layout("Glucose variability (CV)", "%", 36), config);
  Plotly.newPlot("chart-gmi", [line("gmi_pct", "GMI", "#0f766e")],
    layout("Glucose management indicator", "%"), config);
})();
