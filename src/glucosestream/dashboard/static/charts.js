// Shared by the pages' scripts: page data, units, threshold axes, Plotly defaults. Values arrive
// in mg/dL; the page data carries the unit, the one conversion factor (readings.py), the
// thresholds the glucose axes mark and the ranges' labels in the viewer's unit (range_labels.py).
window.GS = (function () {
  "use strict";
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const mmol = data.unit === "mmol_l";
  const factor = data.mg_dl_per_mmol_l;
  const convert = (v) => (v === null || v === undefined) ? null : (mmol ? v / factor : v);
  const fmt = (v) => (v === null || v === undefined) ? "–"
    : (mmol ? (v / factor).toFixed(1) : v.toFixed(0));
  // A glucose axis from 0 to topMgDl with its ticks at the consensus thresholds (54/70/180/250
  // mg/dL, 3.0/3.9/10.0/13.9 mmol/L) and at the top, labelled in the viewer's unit.
  const glucoseAxis = (topMgDl, extra) => {
    const marks = data.thresholds_mg_dl.concat([topMgDl]);
    return Object.assign({
      range: [0, convert(topMgDl)], tickvals: marks.map(convert), ticktext: marks.map(fmt),
      tickmode: "array", gridcolor: "#e4e7eb",
    }, extra || {});
  };
  return {
    data,
    unitLabel: mmol ? "mmol/L" : "mg/dL",
    ranges: data.ranges,
    convert,
    fmt,
    glucoseAxis,
    config: { displayModeBar: false, responsive: true, staticPlot: false },
    hline: (y, color, dash, xref, yref) => ({
      type: "line", xref: xref || "paper", yref: yref || "y", x0: 0, x1: 1, y0: y, y1: y,
      line: { dash: dash || "dash", color: color || "#7b8794", width: 1 },
    }),
    hband: (y0, y1, color, xref, yref) => ({
      type: "rect", xref: xref || "paper", yref: yref || "y", x0: 0, x1: 1, y0, y1,
      fillcolor: color, line: { width: 0 }, layer: "below",
    }),
    episodeColor: (e) => e.type === "hypo"
      ? (e.level === "lv2" ? "rgba(140,28,19,0.28)" : "rgba(224,72,61,0.22)")
      : (e.level === "lv2" ? "rgba(232,116,59,0.28)" : "rgba(246,195,74,0.28)"),
    markRendered: (promises) => Promise.all(promises).then(() => {
      document.body.setAttribute("data-rendered", "1");
    }),
  };
})();
