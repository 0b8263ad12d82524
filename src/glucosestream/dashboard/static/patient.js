// The patient view: four trend charts and the daily traces (with the bolus and carb markers),
// from the JSON in #page-data. The counted days and a partial newest day (shown apart, never
// counted) are drawn differently.
(function () {
  "use strict";
  const gs = window.GS, d = gs.data, days = d.days, t = d.targets, r = gs.ranges;
  const partialRows = d.partial_days || [];
  const layout = (title, yTitle, shapes, yaxis) => ({
    title: { text: title }, margin: { t: 40, r: 10, b: 40, l: 50 },
    legend: { orientation: "h", y: -0.2 },
    yaxis: Object.assign({ title: { text: yTitle }, rangemode: "tozero" }, yaxis || {}),
    shapes: shapes || [],
  });
  const valueFormat = (conv) => conv ? (gs.unitLabel === "mg/dL" ? ".0f" : ".1f") : ".1f";
  const series = (rows, key, name, color, conv, partial) => ({
    x: rows.map((row) => row.date), y: rows.map((row) => conv ? gs.convert(row[key]) : row[key]),
    name: partial ? name + " (partial day, not counted)" : name, type: "scatter",
    mode: partial ? "markers" : "lines+markers", showlegend: !partial,
    line: { color }, marker: partial ? { color, symbol: "circle-open", size: 9 } : { color },
    customdata: rows.map((row) => [row.readings, row.pct_active]),
    hovertemplate: "%{x}: %{y:" + valueFormat(conv) + "}" + (conv ? " " + gs.unitLabel : "") +
      (partial ? " (partial day, not counted)" : "") +
      "<br>%{customdata[0]} readings, %{customdata[1]:.0f}% active<extra>" + name + "</extra>",
  });
  const line = (key, name, color, conv) => [series(days, key, name, color, conv, false)]
    .concat(partialRows.length ? [series(partialRows, key, name, color, conv, true)] : []);
  const plots = [
    Plotly.newPlot("chart-mean", line("mean_mg_dl", "Mean glucose", "#2563eb", true),
      layout("Mean glucose", gs.unitLabel,
        [gs.hband(gs.convert(70), gs.convert(180), "rgba(63,163,77,0.08)")],
        gs.glucoseAxis(300, { rangemode: undefined })), gs.config),
    Plotly.newPlot("chart-tir", [
      ...line("pct_70_180", "in range " + r.target + " " + r.unit, "#16a34a"),
      ...line("pct_below_70", "below " + r.t70, "#dc2626"),
      ...line("pct_below_54", "below " + r.t54, "#7f1d1d"),
      ...line("pct_above_180", "above " + r.t180, "#f59e0b"),
    ], layout("Time in ranges", "% of readings", [
      gs.hline(t.pct_70_180_min, "#16a34a"), gs.hline(t.pct_below_70_max, "#dc2626"),
      gs.hline(t.pct_below_54_max, "#7f1d1d"), gs.hline(t.pct_above_180_max, "#f59e0b"),
    ]), gs.config),
    Plotly.newPlot("chart-cv", line("cv_pct", "CV", "#7c3aed"),
      layout("Glucose variability (CV)", "%", [gs.hline(t.cv_pct_max)]), gs.config),
    Plotly.newPlot("chart-gmi", line("gmi_pct", "GMI", "#0f766e"),
      layout("Glucose management indicator", "%", [gs.hline(t.gmi_pct_max)]), gs.config),
  ];
  // Daily traces on one time axis; a gap between days breaks the line. The partial day is grey
  // on a grey band labelled as such.
  const stamp = (date, minute) => {
    const h = Math.floor(minute / 60), m = Math.floor(minute % 60), s = Math.round((minute % 1) * 60);
    const pad = (n) => String(n).padStart(2, "0");
    return date + "T" + pad(h) + ":" + pad(m) + ":" + pad(Math.min(s, 59));
  };
  const points = (dayList) => {
    const tx = [], ty = [];
    for (const day of dayList) {
      day.minute.forEach((m, i) => { tx.push(stamp(day.date, m)); ty.push(gs.convert(day.mg_dl[i])); });
      tx.push(null); ty.push(null);
    }
    return [tx, ty];
  };
  const hover = "%{x}: %{y:" + valueFormat(true) + "} " + gs.unitLabel;
  const [tx, ty] = points(d.traces);
  const traces = [{
    x: tx, y: ty, type: "scatter", mode: "lines", name: "Glucose", line: { color: "#1f2933", width: 1 },
    connectgaps: false, hovertemplate: hover + "<extra></extra>",
  }];
  const shapes = [gs.hband(gs.convert(70), gs.convert(180), "rgba(63,163,77,0.10)")].concat(
    d.episodes.map((e) => ({
      type: "rect", xref: "x", yref: "paper", x0: e.start_local, x1: e.end_local, y0: 0, y1: 1,
      fillcolor: gs.episodeColor(e), line: { width: 0 }, layer: "below",
    })));
  const annotations = [];
  if (d.partial) {
    const p = d.partial;
    if (p.trace) {
      const [px, py] = points([p.trace]);
      traces.push({ x: px, y: py, type: "scatter", mode: "lines", name: "Partial day",
        line: { color: "#9aa5b1", width: 1 }, hovertemplate: hover + " (partial day)<extra></extra>" });
    }
    shapes.push({ type: "rect", xref: "x", yref: "paper", x0: p.date + "T00:00:00",
      x1: p.date + "T" + p.until + ":59", y0: 0, y1: 1, fillcolor: "rgba(123,135,148,0.15)",
      line: { width: 0 }, layer: "below" });
    annotations.push({ text: "partial: " + p.date + " to " + p.until + ", not counted", xref: "x",
      yref: "paper", x: p.date + "T" + p.until + ":59", y: 1, xanchor: "right", yanchor: "bottom",
      showarrow: false, font: { size: 10, color: "#52606d" } });
  }
  // Bolus (blue triangles, units) and carb (orange circles, grams) markers on the traces, at
  // the glucose of their moment (trace_markers.py): a bolus just above the line pointing at
  // it, carbs just below, so a meal bolus shows both; with no reading near, at the top.
  const markers = d.markers || [];
  // The axis leaves room above the highest glucose for a bolus marker and its label.
  const highest = Math.max(...d.traces.flatMap((x) => x.mg_dl),
    ...markers.filter((e) => e.kind === "bolus" && e.mg_dl !== null).map((e) => e.mg_dl + 40));
  const top = Math.ceil(Math.max(350, highest) / 50) * 50;
  const markerTrace = (list, name, what, unit, style) => ({
    x: list.map((e) => stamp(e.date, e.minute)),
    y: list.map((e) => gs.convert(e.mg_dl === null ? top * 0.96 : e.mg_dl + style.offset)),
    type: "scatter", mode: style.label ? "markers+text" : "markers", name,
    text: list.map((e) => style.label ? e.amount + " " + unit : ""),
    textposition: style.position, textfont: { size: 9, color: style.color },
    marker: { symbol: style.symbol, color: style.color, size: style.size,
      line: { width: 1, color: "#ffffff" } },
    customdata: list.map((e) => [e.time, e.amount,
      e.mg_dl === null ? "no reading near" : gs.fmt(e.mg_dl) + " " + gs.unitLabel]),
    hovertemplate: "%{customdata[0]}: %{customdata[1]} " + unit + " " + what +
      " (glucose %{customdata[2]})<extra></extra>",
  });
  const ofKind = (kind, test) => markers.filter((e) => e.kind === kind && test(e));
  const markerTraces = [
    markerTrace(ofKind("bolus", (e) => e.subtype !== "automatic"), "Bolus (U)", "bolus", "U",
      { symbol: "triangle-down", color: "#1d4ed8", size: 10, label: true, position: "top center",
        offset: 18 }),
    markerTrace(ofKind("bolus", (e) => e.subtype === "automatic"), "Automatic bolus (U)",
      "automatic bolus", "U",
      { symbol: "triangle-down", color: "#60a5fa", size: 6, label: false, offset: 10 }),
    markerTrace(ofKind("carbs", () => true), "Carbs (g)", "carbs", "g",
      { symbol: "circle", color: "#c2410c", size: 9, label: true, position: "bottom center",
        offset: -18 }),
  ].filter((t) => t.x.length);
  traces.push(...markerTraces);
  // The x axis spans the days drawn, midnight to midnight (the partial day's label would
  // otherwise widen it).
  const dates = d.traces.map((x) => x.date).concat(d.partial ? [d.partial.date] : []).sort();
  const dayAfter = (date) => new Date(Date.parse(date + "T00:00:00Z") + 86400000).toISOString().slice(0, 10);
  const xrange = dates.length ? [dates[0] + "T00:00:00", dayAfter(dates[dates.length - 1]) + "T00:00:00"] : undefined;
  plots.push(Plotly.newPlot("chart-traces", traces, {
    margin: { t: 20, r: 10, b: 40, l: 50 },
    yaxis: gs.glucoseAxis(top, { title: { text: gs.unitLabel } }),
    xaxis: { type: "date", range: xrange }, shapes, annotations,
    showlegend: markerTraces.length > 0, legend: { orientation: "h", y: -0.12 },
  }, gs.config));
  gs.markRendered(plots);
})();
