// The daily overlay: one line per local day over the same 24 hours, thresholds marked.
(function () {
  "use strict";
  const gs = window.GS, d = gs.data;
  const mmol = gs.unitLabel === "mmol/L";
  const n = Math.max(d.days.length - 1, 1);
  // Older days lighter, newer darker: one blue from #9fb8e8 to #0b2a6f.
  const shade = (i) => {
    const t = i / n, mix = (a, b) => Math.round(a + (b - a) * t);
    return "rgb(" + mix(159, 11) + "," + mix(184, 42) + "," + mix(232, 111) + ")";
  };
  const fmt = mmol ? ".1f" : ".0f";
  // A gap in a day's readings (over GAP_MIN minutes) stays a gap: a null between its ends.
  const GAP_MIN = 30;
  const withGaps = (day) => {
    const x = [], y = [];
    day.minute.forEach((m, j) => {
      if (j > 0 && m - day.minute[j - 1] > GAP_MIN) { x.push(null); y.push(null); }
      x.push(m / 60); y.push(gs.convert(day.mg_dl[j]));
    });
    return { x, y };
  };
  const traces = d.days.map((day, i) => ({
    ...withGaps(day), type: "scatter",
    mode: "lines", name: day.date + (day.partial ? " (partial)" : ""),
    line: { color: day.partial ? "#e8743b" : shade(i), width: 1.4, dash: day.partial ? "dot" : "solid" },
    hovertemplate: day.date + " %{x:.2f}h: %{y:" + fmt + "} " + gs.unitLabel + "<extra></extra>",
  }));
  const names = { 54: "very low", 70: "low", 180: "high", 250: "very high" };
  const colors = { 54: "#8c1c13", 70: "#3fa34d", 180: "#3fa34d", 250: "#e8743b" };
  const marks = d.thresholds_mg_dl;
  const plot = Plotly.newPlot("chart-overlay", traces, {
    margin: { t: 10, r: 90, b: 40, l: 52 }, hovermode: "closest",
    legend: { orientation: "h", y: -0.14, font: { size: 10 } },
    xaxis: { range: [0, 24], tickvals: [0, 3, 6, 9, 12, 15, 18, 21, 24],
      ticktext: ["12am", "3am", "6am", "9am", "12pm", "3pm", "6pm", "9pm", "12am"],
      title: { text: "local time of day" } },
    yaxis: gs.glucoseAxis(400, { title: { text: gs.unitLabel } }),
    shapes: [gs.hband(gs.convert(d.target_mg_dl[0]), gs.convert(d.target_mg_dl[1]), "rgba(63,163,77,0.12)"),
      ...marks.map((v) => gs.hline(gs.convert(v), colors[v], v === 70 || v === 180 ? "solid" : "dot"))],
    annotations: marks.map((v) => ({ xref: "paper", x: 1, xanchor: "left", y: gs.convert(v),
      yref: "y", text: gs.fmt(v) + " " + names[v], showarrow: false, font: { size: 9, color: colors[v] } })),
  }, gs.config);
  gs.markRendered([plot]);
})();
