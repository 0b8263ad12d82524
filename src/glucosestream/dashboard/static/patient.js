// The patient view: four trend charts and the daily traces, from the JSON in #page-data.
(function () {
  "use strict";
  const gs = window.GS, d = gs.data, days = d.days, t = d.targets;
  const x = days.map((r) => r.date);
  const layout = (title, yTitle, shapes) => ({
    title: { text: title }, margin: { t: 40, r: 10, b: 40, l: 50 },
    legend: { orientation: "h", y: -0.2 }, yaxis: { title: { text: yTitle }, rangemode: "tozero" },
    shapes: shapes || [],
  });
  const line = (key, name, color, conv) => ({
    x, y: days.map((r) => conv ? gs.convert(r[key]) : r[key]), name, type: "scatter",
    mode: "lines+markers", line: { color },
    customdata: days.map((r) => [r.readings, r.pct_active]),
    hovertemplate: "%{x}: %{y:.1f}<br>%{customdata[0]} readings, %{customdata[1]:.0f}% active" +
      "<extra>" + name + "</extra>",
  });
  const plots = [
    Plotly.newPlot("chart-mean", [line("mean_mg_dl", "Mean glucose", "#2563eb", true)],
      layout("Mean glucose", gs.unitLabel, [gs.hband(gs.convert(70), gs.convert(180), "rgba(63,163,77,0.08)")]), gs.config),
    Plotly.newPlot("chart-tir", [
      line("pct_70_180", "in range 70–180", "#16a34a"),
      line("pct_below_70", "below 70", "#dc2626"),
      line("pct_below_54", "below 54", "#7f1d1d"),
      line("pct_above_180", "above 180", "#f59e0b"),
    ], layout("Time in ranges", "% of readings", [
      gs.hline(t.pct_70_180_min, "#16a34a"), gs.hline(t.pct_below_70_max, "#dc2626"),
      gs.hline(t.pct_below_54_max, "#7f1d1d"), gs.hline(t.pct_above_180_max, "#f59e0b"),
    ]), gs.config),
    Plotly.newPlot("chart-cv", [line("cv_pct", "CV", "#7c3aed")],
      layout("Glucose variability (CV)", "%", [gs.hline(t.cv_pct_max)]), gs.config),
    Plotly.newPlot("chart-gmi", [line("gmi_pct", "GMI", "#0f766e")],
      layout("Glucose management indicator", "%", [gs.hline(t.gmi_pct_max)]), gs.config),
  ];
  // Daily traces on one time axis; a gap between days breaks the line.
  const tx = [], ty = [];
  const stamp = (date, minute) => {
    const h = Math.floor(minute / 60), m = Math.floor(minute % 60), s = Math.round((minute % 1) * 60);
    const pad = (n) => String(n).padStart(2, "0");
    return date + "T" + pad(h) + ":" + pad(m) + ":" + pad(Math.min(s, 59));
  };
  for (const day of d.traces) {
    day.minute.forEach((m, i) => { tx.push(stamp(day.date, m)); ty.push(gs.convert(day.mg_dl[i])); });
    tx.push(null); ty.push(null);
  }
  const shapes = [gs.hband(gs.convert(70), gs.convert(180), "rgba(63,163,77,0.10)")].concat(
    d.episodes.map((e) => ({
      type: "rect", xref: "x", yref: "paper", x0: e.start_local, x1: e.end_local, y0: 0, y1: 1,
      fillcolor: gs.episodeColor(e), line: { width: 0 }, layer: "below",
    })));
  plots.push(Plotly.newPlot("chart-traces", [{
    x: tx, y: ty, type: "scatter", mode: "lines", name: "Glucose", line: { color: "#1f2933", width: 1 },
    connectgaps: false, hovertemplate: "%{x}: %{y:.1f} " + gs.unitLabel + "<extra></extra>",
  }], {
    margin: { t: 10, r: 10, b: 40, l: 50 }, yaxis: { title: { text: gs.unitLabel } },
    xaxis: { type: "date" }, shapes, showlegend: false,
  }, gs.config));
  gs.markRendered(plots);
})();
