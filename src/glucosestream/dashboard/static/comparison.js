// The period comparison's AGP chart: both fortnights' median and interquartile band overlaid.
(function () {
  "use strict";
  const gs = window.GS, d = gs.data;
  const mmol = gs.unitLabel === "mmol/L";
  const curves = (w, color, fill, dash, name) => {
    const a = w.agp;
    if (!a.minute_of_day.length) return [];
    const hours = a.minute_of_day.map((m) => m / 60);
    const y = (k) => a[k].map(gs.convert);
    return [
      { x: hours, y: y("p25_mg_dl"), type: "scatter", mode: "lines", line: { width: 0 },
        showlegend: false, hoverinfo: "skip" },
      { x: hours, y: y("p75_mg_dl"), type: "scatter", mode: "lines", line: { width: 0 },
        fill: "tonexty", fillcolor: fill, name: name + ", 25–75%", hoverinfo: "skip" },
      { x: hours, y: y("p50_mg_dl"), type: "scatter", mode: "lines", name: name + ", median",
        line: { color, width: 2, dash },
        hovertemplate: name + " %{x:.1f}h: %{y:" + (mmol ? ".1f" : ".0f") + "}<extra></extra>" },
    ];
  };
  const traces = [
    ...curves(d.previous, "#7b8794", "rgba(123,135,148,0.22)", "dash",
      "Previous " + d.previous.start.slice(5) + "–" + d.previous.end.slice(5)),
    ...curves(d.current, "#1e3a8a", "rgba(37,99,235,0.28)", "solid",
      "This fortnight " + d.current.start.slice(5) + "–" + d.current.end.slice(5)),
  ];
  const style = { 54: ["#8c1c13", "dot"], 70: ["#3fa34d", "solid"], 180: ["#3fa34d", "solid"],
    250: ["#e8743b", "dot"] };
  const plot = Plotly.newPlot("chart-compare-agp", traces, {
    margin: { t: 8, r: 50, b: 34, l: 50 }, legend: { orientation: "h", y: 1.14, x: 0 },
    xaxis: { range: [0, 24], tickvals: [0, 3, 6, 9, 12, 15, 18, 21, 24],
      ticktext: ["12am", "3am", "6am", "9am", "12pm", "3pm", "6pm", "9pm", "12am"] },
    yaxis: gs.glucoseAxis(350, { title: { text: gs.unitLabel } }),
    shapes: [gs.hband(gs.convert(70), gs.convert(180), "rgba(63,163,77,0.10)"),
      ...d.thresholds_mg_dl.map((v) => gs.hline(gs.convert(v), ...(style[v] || ["#7b8794", "dot"])))],
  }, gs.config);
  gs.markRendered([plot]);
})();
