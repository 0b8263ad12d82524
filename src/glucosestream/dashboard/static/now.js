// The patient page's "now" panel: draws today's trace from #now-data and refreshes the panel
// every 30 s from GET /v1/patients/{key}/now with the page's session. Text only goes in through
// textContent, never as HTML. window.GSNow.refresh() refreshes at once (the browser test).
(function () {
  "use strict";
  const MG_DL_PER_MMOL_L = 18.0156, REFRESH_MS = 30000;
  const boot = JSON.parse(document.getElementById("now-data").textContent);
  const mmol = boot.unit === "mmol_l";
  const unitLabel = mmol ? "mmol/L" : "mg/dL";
  const conv = (v) => (v === null || v === undefined) ? null : (mmol ? v / MG_DL_PER_MMOL_L : v);
  const fmt = (v) => (v === null || v === undefined) ? "-" : conv(v).toFixed(mmol ? 1 : 0);
  const el = (id) => document.getElementById(id);
  const when = (iso) => iso.slice(0, 16).replace("T", " ") + " UTC";
  const pad = (n) => String(n).padStart(2, "0");
  const stamp = (date, minute) => date + "T" + pad(Math.floor(minute / 60)) + ":" +
    pad(Math.floor(minute % 60)) + ":" + pad(Math.min(59, Math.round((minute % 1) * 60)));

  function node(tag, attrs, children) {
    const n = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => n.setAttribute(k, v));
    (children || []).forEach((c) => n.append(c));
    return n;
  }

  function form(alertId, cls, fields, label) {
    const token = document.querySelector("input[name=csrf_token]");
    const f = node("form", { method: "post", action: "/alerts/" + encodeURIComponent(alertId),
      class: "inline " + cls });
    f.append(node("input", { type: "hidden", name: "csrf_token", value: token ? token.value : "" }));
    fields.forEach((x) => f.append(x));
    f.append(node("button", { type: "submit" }, [label]));
    return f;
  }

  function alertItem(a) {
    const parts = [node("strong", {}, [boot.labels[a.kind] || a.kind])];
    let text = (a.level ? " (" + a.level + ")" : "") + " since " + when(a.fired_at);
    if (a.glucose_mg_dl !== null) text += ", " + fmt(a.glucose_mg_dl) + " " + unitLabel;
    parts.push(text);
    parts.push(a.acked_at ? node("span", { class: "acked" }, ["acknowledged"])
      : form(a.alert_id, "ack", [], "Acknowledge"));
    if (a.snoozed_until) {
      parts.push(node("span", { class: "snoozed" }, ["snoozed until " + a.snoozed_until.slice(11, 16) + " UTC"]));
    } else {
      const choices = a.kind === "urgent_low" ? [["30", "30 min"]]  // its longest snooze
        : [["30", "30 min"], ["60", "1 h"], ["120", "2 h"]];
      const minutes = node("select", { name: "minutes" },
        choices.map(([v, t]) => node("option", { value: v }, [t])));
      parts.push(form(a.alert_id, "snooze", [minutes], "Snooze"));
    }
    return node("li", { "data-alert": a.alert_id, class: "alert kind-" + a.kind }, parts);
  }

  function deadItem(a) {
    const n = a.deliveries.dead || 0;
    return node("li", { "data-alert": a.alert_id }, [node("strong", {}, [boot.labels[a.kind] || a.kind]),
      " of " + when(a.fired_at) + ": " + n + " webhook " + (n === 1 ? "delivery" : "deliveries") +
      " failed every attempt"]);
  }

  function draw(p) {
    if (!window.Plotly) return Promise.resolve();
    const band = { type: "rect", xref: "paper", yref: "y", x0: 0, x1: 1, y0: conv(70), y1: conv(180),
      fillcolor: "rgba(63,163,77,0.10)", line: { width: 0 }, layer: "below" };
    return window.Plotly.react("chart-now", [{
      x: p.trace.minute.map((m) => stamp(p.trace.date, m)), y: p.trace.mg_dl.map(conv),
      type: "scatter", mode: "lines+markers", marker: { size: 4 }, line: { color: "#1f2933", width: 1 },
      hovertemplate: "%{x}: %{y:.1f} " + unitLabel + "<extra></extra>",
    }], {
      margin: { t: 10, r: 10, b: 30, l: 50 }, showlegend: false, shapes: [band],
      xaxis: { type: "date", range: [p.trace.date + "T00:00:00", p.trace.date + "T23:59:59"] },
      yaxis: { title: { text: unitLabel }, range: [conv(40), conv(Math.max(300, ...p.trace.mg_dl) + 10)] },
    }, { displayModeBar: false, responsive: true });
  }

  function render(p) {
    const badge = el("now-stale"), arrow = el("now-arrow");
    el("now").className = "now" + (p.stale ? " stale-" + p.stale : "");
    el("now-glucose").textContent = fmt(p.glucose_mg_dl);
    arrow.textContent = p.arrow || "";
    arrow.title = p.direction || "no trend";
    el("now-age").textContent = p.minutes_ago === null ? "no reading in the last 24 hours"
      : Math.floor(p.minutes_ago) + " min ago";
    badge.hidden = !p.stale;
    badge.className = "badge" + (p.stale ? " stale-" + p.stale : "");
    badge.textContent = !p.stale ? "" : "No data for " +
      Math.floor(p.stale === "urgent" ? p.stale_urgent_min : p.stale_warn_min) + " minutes or more";
    el("now-unpublished").textContent = p.unpublished
      ? p.unpublished + " of these readings not yet published." : "";
    el("now-alerts").replaceChildren(...(p.alerts.length ? p.alerts.map(alertItem)
      : [node("li", { class: "none" }, ["No active alerts."])]));
    el("now-dead").hidden = !p.dead_letters.length;
    el("now-dead").querySelector("ul").replaceChildren(...p.dead_letters.map(deadItem));
    return draw(p).then(() => el("now").setAttribute("data-at", p.at));
  }

  function refresh() {
    return fetch(boot.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status)))
      .then((body) => render(body.now))
      .catch(() => el("now").setAttribute("data-refresh-failed", "1"));
  }

  render(boot.panel);
  setInterval(refresh, REFRESH_MS);
  window.GSNow = { refresh };
})();
