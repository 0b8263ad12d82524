// Shared by the pages' scripts: page data, units, Plotly defaults. Values arrive in mg/dL.
window.GS = (function () {
  "use strict";
  const MG_DL_PER_MMOL_L = 18.0156;
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const mmol = data.unit === "mmol_l";
  const convert = (v) => (v === null || v === undefined) ? null : (mmol ? v / MG_DL_PER_MMOL_L : v);
  return {
    data,
    unitLabel: mmol ? "mmol/L" : "mg/dL",
    convert,
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
