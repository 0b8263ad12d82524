// The AGP report's charts: the smoothed percentile curves by time of day and the report's
// daily profiles (data.days tiles, the counted days only: a partial day is named, not drawn).
(function () {
  "use strict";
  const gs = window.GS, d = gs.data, a = d.agp, r = gs.ranges;
  const hours = a.minute_of_day.map((m) => m / 60);
  const curve = (key) => a[key].map(gs.convert);
  const hover = (name) => name + " %{x:.1f}h: %{y:" + (gs.unitLabel === "mg/dL" ? ".0f" : ".1f") +
    "} " + gs.unitLabel + "<extra></extra>";
  const band = (lo, hi, color, name) => [
    { x: hours, y: curve(lo), type: "scatter", mode: "lines", line: { width: 0 }, showlegend: false, hoverinfo: "skip" },
    { x: hours, y: curve(hi), type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty",
      fillcolor: color, name, hovertemplate: hover(name) },
  ];
  const traces = [
    ...band("p05_mg_dl", "p95_mg_dl", "rgba(37,99,235,0.15)", "5–95%"),
    ...band("p25_mg_dl", "p75_mg_dl", "rgba(37,99,235,0.35)", "25–75%"),
    { x: hours, y: curve("p50_mg_dl"), type: "scatter", mode: "lines", name: "Median",
      line: { color: "#1e3a8a", width: 2 }, hovertemplate: hover("Median") },
    { x: [null], y: [null], type: "scatter", mode: "lines", name: "Target " + r.target + " " + r.unit,
      line: { color: "#3fa34d", width: 6 }, hoverinfo: "skip" },
  ];
  const top = 350;
  const hourTicks = { tickvals: [0, 3, 6, 9, 12, 15, 18, 21, 24],
    ticktext: ["12am", "3am", "6am", "9am", "12pm", "3pm", "6pm", "9pm", "12am"] };
  const plots = [Plotly.newPlot("chart-agp", traces, {
    margin: { t: 24, r: 10, b: 30, l: 45 }, legend: { orientation: "h", y: 1.02, yanchor: "bottom", x: 0 },
    xaxis: Object.assign({ range: [0, 24] }, hourTicks),
    yaxis: gs.glucoseAxis(top, { title: { text: gs.unitLabel }, tickfont: { size: 8 } }),
    shapes: [gs.hband(gs.convert(70), gs.convert(180), "rgba(63,163,77,0.12)"),
             gs.hline(gs.convert(70), "#3fa34d", "solid"), gs.hline(gs.convert(180), "#3fa34d", "solid"),
             gs.hline(gs.convert(54), "#8c1c13", "dot"), gs.hline(gs.convert(250), "#e8743b", "dot")],
  }, gs.config)];
  // The daily profiles: 2 rows x 7 columns, one subplot per counted calendar day of the period.
  const n = d.days, cols = Math.ceil(n / 2);
  const start = new Date(d.start + "T00:00:00Z");
  const byDate = Object.fromEntries(d.traces.map((t) => [t.date, t]));
  const daily = [], shapes = [], annotations = [];
  for (let i = 0; i < n; i++) {
    const date = new Date(start.getTime() + i * 86400000).toISOString().slice(0, 10);
    const ax = i === 0 ? "" : String(i + 1);
    const day = byDate[date] || { minute: [], mg_dl: [] };
    daily.push({ x: day.minute.map((m) => m / 60), y: day.mg_dl.map(gs.convert), type: "scatter",
      mode: "lines", line: { color: "#1f2933", width: 1 }, xaxis: "x" + ax, yaxis: "y" + ax,
      showlegend: false, hovertemplate: date + " " + hover("").slice(1) });
    shapes.push(gs.hband(gs.convert(70), gs.convert(180), "rgba(63,163,77,0.12)",
      "x" + ax + " domain", "y" + ax));
    for (const e of d.episodes.filter((e) => e.start_local.slice(0, 10) === date)) {
      const h = (s) => Number(s.slice(11, 13)) + Number(s.slice(14, 16)) / 60;
      const end = e.end_local.slice(0, 10) === date ? h(e.end_local) : 24;
      shapes.push({ type: "rect", xref: "x" + ax, yref: "y" + ax + " domain", x0: h(e.start_local),
        x1: end, y0: 0, y1: 1, fillcolor: gs.episodeColor(e), line: { width: 0 }, layer: "below" });
    }
    annotations.push({ text: date.slice(5), xref: "x" + ax + " domain", yref: "y" + ax + " domain",
      x: 0.02, y: 0.98, showarrow: false, xanchor: "left", yanchor: "top", font: { size: 9 } });
  }
  const layout = { grid: { rows: 2, columns: cols, pattern: "independent", xgap: 0.04, ygap: 0.12 },
    margin: { t: 6, r: 6, b: 18, l: 30 }, shapes, annotations };
  for (let i = 1; i <= n; i++) {
    const s = i === 1 ? "" : String(i), first = i % cols === 1;
    layout["xaxis" + s] = { range: [0, 24], tickvals: [12], ticktext: ["12pm"], tickfont: { size: 8 } };
    // Every tile has gridlines at the four thresholds; the first of each row labels the target
    // range's two (the tiles are too short to label all four apart).
    const axis = gs.glucoseAxis(top, { tickfont: { size: 7 }, showticklabels: first });
    axis.ticktext = axis.ticktext.map((t, k) => (k === 1 || k === 2 ? t : ""));
    layout["yaxis" + s] = axis;
  }
  plots.push(Plotly.newPlot("chart-daily", daily, layout, gs.config));
  gs.markRendered(plots);
})();
