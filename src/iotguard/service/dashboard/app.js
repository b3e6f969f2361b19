// iotguard dashboard: polls the sensor's REST API and draws tables and charts. No framework, no build step.
// Every value from the API goes into the page with textContent, never as HTML: alert signatures carry
// attacker-controlled text (MQTT topics, device names).
"use strict";

const POLL_MS = 2000;
const KEY = "iotguard-token";
let token = null;
let lastAlertId = 0;
let timer = null;

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fmtTime(epoch) {
  if (epoch === null || epoch === undefined) return "";
  const d = new Date(epoch * 1000);
  return d.toISOString().replace("T", " ").slice(0, 19);
}

function fmtEve(ts) { return ts ? ts.replace("T", " ").slice(0, 19) : ""; }

function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const abs = Math.abs(n);
  if (abs >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (abs >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (abs >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return n.toFixed(digits);
}

function fmtBytes(n) { return n === null || n === undefined ? "–" : fmtNum(n, 0) + "B"; }

function sevBadge(sev) { return el("span", sev, "sev sev" + sev); }

async function api(path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: { Authorization: "Bearer " + token, ...(options.headers || {}) },
    cache: "no-store",
  });
  if (res.status === 401) {
    showLogin("The token was refused.");
    throw new Error("unauthorised");
  }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(res.status + " " + detail);
  }
  return res.json();
}

// -- login ------------------------------------------------------------------------------------------------
function showLogin(message) {
  if (timer) { clearInterval(timer); timer = null; }
  sessionStorage.removeItem(KEY);
  token = null;
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("status").textContent = "locked";
  $("status").className = "pill warn";
}

async function start(candidate) {
  token = candidate;
  try {
    await api("/api/stats");
  } catch (err) {
    if (String(err.message) !== "unauthorised") showLogin("Cannot reach the sensor: " + err.message);
    return;
  }
  sessionStorage.setItem(KEY, token);
  $("login").hidden = true;
  $("main").hidden = false;
  await refresh();
  timer = setInterval(refresh, POLL_MS);
}

// -- charts -----------------------------------------------------------------------------------------------
function lineChart(canvas, series, colors) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const n = Math.max(...series.map((s) => s.length), 0);
  const max = Math.max(1, ...series.flat());
  ctx.strokeStyle = "#26313d";
  ctx.fillStyle = "#8393a5";
  ctx.font = "11px system-ui";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad / 2 + (h - pad) * (i / 4);
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText(fmtNum(max * (1 - i / 4)), 0, y + 4);
  }
  if (n < 2) return;
  series.forEach((s, k) => {
    ctx.strokeStyle = colors[k];
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.forEach((v, i) => {
      const x = pad + (w - pad) * (i / (n - 1));
      const y = pad / 2 + (h - pad) * (1 - v / max);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
}

function rates(history, key) {
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const dt = Math.max(1e-3, history[i].t - history[i - 1].t);
    out.push(Math.max(0, (history[i][key] - history[i - 1][key]) / dt));
  }
  return out;
}

function deltas(history, key) {
  const out = [];
  for (let i = 1; i < history.length; i++) out.push(Math.max(0, history[i][key] - history[i - 1][key]));
  return out;
}

function severityChart(svg, bySeverity) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const ns = "http://www.w3.org/2000/svg";
  const colors = { 1: "#ff5d5d", 2: "#ff9f43", 3: "#f5d142", 4: "#7fb3d5" };
  const values = [1, 2, 3, 4].map((s) => bySeverity[String(s)] || 0);
  const max = Math.max(1, ...values);
  values.forEach((v, i) => {
    const barH = 130 * (v / max);
    const x = 20 + i * 75;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", x); rect.setAttribute("y", 150 - barH);
    rect.setAttribute("width", 50); rect.setAttribute("height", barH);
    rect.setAttribute("fill", colors[i + 1]);
    svg.appendChild(rect);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", x + 25); label.setAttribute("y", 170);
    label.setAttribute("text-anchor", "middle"); label.setAttribute("fill", "#8393a5");
    label.setAttribute("font-size", "12");
    label.textContent = "sev " + (i + 1);
    svg.appendChild(label);
    const count = document.createElementNS(ns, "text");
    count.setAttribute("x", x + 25); count.setAttribute("y", 145 - barH);
    count.setAttribute("text-anchor", "middle"); count.setAttribute("fill", "#d8dee6");
    count.setAttribute("font-size", "12");
    count.textContent = fmtNum(v);
    svg.appendChild(count);
  });
}

// -- tables -----------------------------------------------------------------------------------------------
function fill(table, rows) {
  const body = table.tBodies[0];
  while (body.firstChild) body.removeChild(body.firstChild);
  rows.forEach((r) => body.appendChild(r));
}

function row(cells, cls) {
  const tr = el("tr", null, cls);
  cells.forEach((c) => {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c);
    tr.appendChild(td);
  });
  return tr;
}

function renderAlerts(page) {
  $("alerts-total").textContent = "(" + page.total + ")";
  const newest = page.items.length ? (page.items[0].iotguard.alert_id || 0) : 0;
  const rows = page.items.map((a) => {
    const g = a.iotguard || {};
    const id = g.alert_id || 0;
    const tr = row([
      fmtEve(a.timestamp),
      sevBadge(a.alert.severity),
      a.alert.category,
      g.source,
      a.src_ip + (a.src_port !== undefined ? ":" + a.src_port : ""),
      (a.dest_ip || "") + (a.dest_port !== undefined ? ":" + a.dest_port : ""),
      a.alert.signature,
      g.score === null || g.score === undefined ? "" : g.score.toFixed(3),
      g.incident_id || "",
    ], id > lastAlertId && lastAlertId > 0 ? "new alert" : "alert");
    tr.children[6].className = "sig";
    return tr;
  });
  fill($("alerts"), rows);
  lastAlertId = Math.max(lastAlertId, newest);
}

function renderIncidents(page) {
  fill($("incidents"), page.items.map((i) => {
    const tr = row([
      i.id, sevBadge(i.severity), i.family,
      i.src_ips && i.src_ips.length > 1 ? i.src_ips.length + " sources" : i.src_ip,
      i.alert_count, fmtTime(i.last_seen), i.status, i.summary,
    ], "incident");
    tr.children[7].className = "sig";
    return tr;
  }));
}

function renderBlocks(page) {
  $("c-blocks").textContent = page.total;
  $("c-dry").textContent = page.dry_run ? "dry run: nothing applied" : (page.dry_run === false ? "enforcing" : "");
  fill($("blocks"), page.items.map((b) => {
    const button = el("button", "release", "small");
    button.type = "button";
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api("/api/blocks/" + encodeURIComponent(b.target) + "/release", { method: "POST" });
      } catch (err) {
        button.textContent = err.message;
      }
      refresh();
    });
    return row([b.action, b.target, b.remaining_s === null ? "" : Math.round(b.remaining_s) + " s",
      b.dry_run ? "yes" : "no", button], "block");
  }));
}

function renderDevices(page) {
  $("devices-total").textContent = "(" + page.total + ")";
  fill($("devices"), page.items.map((d) => {
    const fp = d.fingerprint || {};
    const behaviour = fp.flagged ? el("span", "unlike itself (" + fp.drift.toFixed(2) + ")", "flag")
      : el("span", fp.samples ? "drift " + (fp.drift || 0).toFixed(2) : "learning", "muted");
    const t = d.traffic || {};
    return row([
      d.address, d.name || "", d.mac || "", fmtTime(d.first_seen), fmtTime(d.last_seen),
      (d.protocols || []).join(" "),
      t.flows_out + " / " + t.flows_in, fmtBytes(t.bytes_out) + " / " + fmtBytes(t.bytes_in),
      d.alerts, behaviour,
    ], "device");
  }));
}

function renderStats(s) {
  const c = s.counters || {};
  const hist = s.history || [];
  const pps = rates(hist, "packets"), fps = rates(hist, "flows");
  $("c-pps").textContent = fmtNum(pps.length ? pps[pps.length - 1] : 0);
  $("c-packets").textContent = fmtNum(c.packets || 0) + " total";
  $("c-fps").textContent = fmtNum(fps.length ? fps[fps.length - 1] : 0, 1);
  $("c-flows").textContent = fmtNum((c.flows_final || 0)) + " final, " + fmtNum(c.flows_early || 0) + " early";
  $("c-alerts").textContent = fmtNum(s.alerts.total);
  $("c-alerts-sev").textContent = Object.entries(s.alerts.by_source || {}).map(([k, v]) => k + " " + v).join(", ");
  const drops = s.drops || {};
  const totalDrops = Object.values(drops).reduce((a, b) => a + b, 0);
  $("c-drops").textContent = fmtNum(totalDrops);
  $("c-drops-detail").textContent = Object.entries(drops).filter(([, v]) => v > 0).map(([k, v]) => k + " " + fmtNum(v)).join(", ") || "none";
  const g = s.gauges || {};
  $("c-devices").textContent = fmtNum(g.devices || 0);
  $("c-devices-flagged").textContent = g.devices_flagged ? g.devices_flagged + " unlike themselves" : "";
  $("c-rss").textContent = fmtBytes(s.rss_bytes);
  $("c-infer").textContent = s.inference && s.inference.mean_ms !== null ? "inference " + s.inference.mean_ms.toFixed(2) + " ms/batch" : "";
  const info = s.info || {};
  $("meta").textContent = [info.source, info.model ? "model " + info.model : "", "up " + Math.round(s.uptime_s) + " s"].filter(Boolean).join(" · ");
  $("footer-version").textContent = "iotguard " + (info.version || "");
  lineChart($("chart-traffic"), [pps, rates(hist, "drops")], ["#4fb3ff", "#ff5d5d"]);
  lineChart($("chart-alerts"), [deltas(hist, "alerts")], ["#f5b942"]);
  severityChart($("chart-severity"), s.alerts.by_severity || {});
  const health = s.health || {};
  const ok = health.ok !== false;
  $("status").textContent = ok ? "running" : "degraded";
  $("status").className = "pill " + (ok ? "ok" : "bad");
}

async function refresh() {
  if (!token) return;
  try {
    const [stats, alerts, incidents, blocks, devices] = await Promise.all([
      api("/api/stats?history=true"),
      api("/api/alerts?limit=50"),
      api("/api/incidents?limit=20"),
      api("/api/blocks"),
      api("/api/devices?limit=50"),
    ]);
    renderStats(stats);
    renderAlerts(alerts);
    renderIncidents(incidents);
    renderBlocks(blocks);
    renderDevices(devices);
    $("c-incidents").textContent = fmtNum(incidents.items.filter((i) => i.status === "open").length);
    $("c-incidents-total").textContent = incidents.total + " total";
  } catch (err) {
    if (String(err.message) === "unauthorised") return;
    $("status").textContent = "unreachable";
    $("status").className = "pill bad";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    start($("token").value.trim());
  });
  $("logout").addEventListener("click", () => showLogin(""));
  // A token in the fragment (#token=...) never reaches the server or its logs; drop it from the address bar.
  const hash = new URLSearchParams(location.hash.slice(1));
  const fromHash = hash.get("token");
  if (fromHash) history.replaceState(null, "", location.pathname);
  const saved = fromHash || sessionStorage.getItem(KEY);
  if (saved) start(saved); else showLogin("");
});
