// The swarmpilot dashboard's script, served as /dashboard.js. It reads GET /v1/services and
// each service's GET /v1/services/{service}/history every 5 seconds and draws, per service:
// conditions as badges, demand with target capacity and forecast on one chart, replicas
// current and desired on a chart below it with the traffic state as a band, the last events,
// and a form to pin, pause or clear an override (asked to confirm in the page first; the API's
// answer is shown). Text goes in with textContent only.
"use strict";

const REFRESH_MS = 5000;
const W = 720, H = 170, PAD_L = 48, PAD_R = 16, PAD_T = 8, PAD_B = 20, BAND = 8;
const STATE_COLORS = { normal: "#12b76a", flash_crowd: "#f79009", flood: "#f04438", degraded: "#c11574", unknown: "#98a2b3" };
// Conditions whose True status asks for attention; for the others False does.
const TRUE_IS_TROUBLE = new Set(["ScalingLimited", "TrafficState", "RolloutInProgress"]);
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "swarmpilot.token";
const EVENTS_SHOWN = 10;

const $ = (id) => document.getElementById(id);
let range = "1h";
let refreshes = 0;
const cards = new Map();

function el(name, attrs, text) {
  const node = name.startsWith("svg:") ? document.createElementNS(SVG, name.slice(4)) : document.createElement(name);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
function authHeaders() { return token() ? { Authorization: "Bearer " + token() } : {}; }

function setState(text, isError) {
  const state = $("state");
  state.textContent = text;
  state.className = isError ? "error" : "";
}

function showLogin() {
  $("login").hidden = Boolean(token());
  $("logout").hidden = !token();
}

async function getJson(path) {
  const response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON: reported by the caller */ }
  return { response, body };
}

async function refresh() {
  const used = token();
  let answer;
  try {
    answer = await getJson("/v1/services");
  } catch (error) {
    setState("operator unreachable: " + error.message, true);
    return;
  }
  const { response, body } = answer;
  if (response.status === 401 || response.status === 403) {
    // Forget a refused token, unless another was typed while this request was under way.
    if (used && token() === used) sessionStorage.removeItem(TOKEN_KEY);
    if (token() !== used) return;
    showLogin();
    setState((body && body.detail) || "a read token is needed", true);
    return;
  }
  if (!response.ok || !body) {
    setState((body && body.detail) || ("HTTP " + response.status), true);
    return;
  }
  showLogin();
  const services = body.services || [];
  const histories = await Promise.all(services.map((s) =>
    getJson("/v1/services/" + encodeURIComponent(s.service) + "/history?range=" + range)
      .then(({ response, body }) => (response.ok && body ? body : null))
      .catch(() => null)));
  render(services, histories);
  setState("updated " + new Date().toLocaleTimeString());
  // How many refreshes have drawn the page: lets a test tell "by the next refresh" from time.
  document.body.dataset.refreshes = String(++refreshes);
}

function render(services, histories) {
  const main = $("services");
  const names = new Set(services.map((s) => s.service));
  for (const [name, card] of cards) {
    if (!names.has(name)) { card.root.remove(); cards.delete(name); }
  }
  const empty = main.querySelector(":scope > .empty");
  if (services.length === 0) {
    if (!empty) main.append(el("div", { class: "empty" }, "No service with a scaling policy yet. Label one with io.swarmpilot.policy."));
    return;
  }
  if (empty) empty.remove();
  services.forEach((s, i) => {
    let card = cards.get(s.service);
    if (!card) {
      card = newCard(s.service);
      cards.set(s.service, card);
      main.append(card.root);
    }
    fill(card, s, histories[i]);
  });
}

// The parts of a card redrawn on each refresh, and the override form kept across refreshes.
function newCard(service) {
  const root = el("section", { class: "card", "data-service": service });
  const card = {
    root,
    title: el("h2"),
    conditions: el("div", { class: "conditions" }),
    facts: el("div", { class: "facts" }),
    demandTitle: el("div", { class: "chart-title" }),
    demand: el("div", { class: "chart-box demand" }),
    replicas: el("div", { class: "chart-box replicas" }),
    legend: el("div", { class: "legend" }),
    decision: el("div", { class: "decision" }),
    events: el("ol", { class: "events" }),
  };
  for (const [cls, name] of [["demand", "demand"], ["capacity", "target capacity (replicas × target)"], ["forecast", "forecast"],
    ["replicas", "replicas"], ["desired", "desired"]]) {
    const item = el("span");
    item.append(el("i", { class: cls }), name);
    card.legend.append(item);
  }
  for (const state of Object.keys(STATE_COLORS)) {
    const item = el("span");
    item.append(el("i", { class: "state " + state }), state.replace("_", " "));
    card.legend.append(item);
  }
  root.append(card.title, card.conditions, card.facts, card.demandTitle, card.demand,
    el("div", { class: "chart-title" }, "replicas (band: traffic state)"), card.replicas, card.legend,
    card.decision, el("h3", {}, "Events"), card.events, overrideForm(service));
  return card;
}

function fill(card, s, history) {
  card.title.replaceChildren(s.service);
  if (s.trafficState) card.title.append(el("span", { class: "badge " + s.trafficState }, s.trafficState.replace("_", " ")));
  if (s.override) {
    const o = s.override;
    const what = o.replicas !== undefined ? "pinned at " + o.replicas : o.pause ? "paused" : o.pauseScaleIn ? "no scale-in" : "no scale-out";
    card.title.append(el("span", { class: "badge override", title: (o.reason || "") + " (" + (o.by || "?") + ")" },
      what + " until " + new Date(o.expiresAt).toLocaleTimeString()));
  }

  card.conditions.replaceChildren();
  for (const c of s.conditions || []) {
    const trouble = TRUE_IS_TROUBLE.has(c.type) ? c.status === "True" : c.status === "False";
    const cls = c.status === "Unknown" ? "unknown" : trouble ? "bad" : "ok";
    card.conditions.append(el("span", {
      class: "badge condition " + cls, "data-condition": c.type, "data-status": c.status,
      title: c.reason + ": " + c.message + " (since " + new Date(c.lastTransitionTime).toLocaleString() + ")",
    }, c.type + (c.status === "True" ? "" : "=" + c.status)));
  }

  card.facts.replaceChildren();
  card.facts.append(el("span", {}, "replicas " + (s.current ?? "?") + " → " + (s.desired ?? "?")));
  const spec = s.policy && s.policy.spec;
  if (spec) card.facts.append(el("span", {}, "bounds " + spec.minReplicas + "–" + spec.maxReplicas));
  for (const m of s.metrics || []) {
    const value = typeof m.compared === "number" ? m.compared : m.value;
    const target = m.target ? Object.values(m.target)[0] : undefined;
    const shown = m.error ? "error" : typeof value === "number" ? format(value) : "–";
    card.facts.append(el("span", { title: m.error || "" }, m.name + " " + shown + (target !== undefined ? "/" + target : "")));
  }
  for (const line of s.diagnostics || []) card.facts.append(el("span", { class: "error" }, line));
  if (s.lastError) card.facts.append(el("span", { class: "error" }, s.lastError));

  const samples = history ? history.samples : (s.samples || []);
  const points = samples.map((p) => ({ ...p, t: Date.parse(p.at) }));
  const to = history ? Date.parse(history.to) : Date.now();
  const from = history ? Date.parse(history.from) : to - 3600 * 1000;
  const span = fitSpan(points, from, to);
  const metric = (history && history.demandMetric) || s.demandMetric || "demand";
  card.demandTitle.textContent = metric + ": demand, target capacity and forecast";
  card.demand.replaceChildren(chart("demand", points, span, [
    { cls: "demand", value: (p) => p.demand },
    { cls: "capacity", value: (p) => p.capacity, step: true },
    { cls: "forecast", value: (p) => p.forecast },
  ], false));
  const bounds = spec ? [spec.minReplicas, spec.maxReplicas] : [];
  card.replicas.replaceChildren(chart("replicas", points, span, [
    { cls: "replicas", value: (p) => p.replicas, step: true },
    { cls: "desired", value: (p) => p.desired, step: true },
  ], true, bounds));

  const decisions = s.decisions || [];
  const last = decisions[decisions.length - 1];
  card.decision.textContent = last ? "last decision: " + last.reason + (last.message ? " — " + last.message : "") : "";

  card.events.replaceChildren();
  const events = (s.events || []).slice(-EVENTS_SHOWN).reverse();
  if (events.length === 0) card.events.append(el("li", { class: "empty" }, "no events yet"));
  for (const e of events) {
    const item = el("li", { class: e.type, "data-reason": e.reason });
    item.append(el("span", { class: "when", title: e.at }, new Date(e.at).toLocaleTimeString()),
      el("span", { class: "type" }, e.type), el("span", { class: "reason" }, e.reason),
      el("span", { class: "message" }, e.message + (e.count > 1 ? " (×" + e.count + ")" : "")));
    card.events.append(item);
  }
}

// The time axis: the range chosen, shortened to where the data starts, so a young service's
// samples fill the chart instead of its right edge.
function fitSpan(points, from, to) {
  const first = points.length ? Math.max(from, points[0].t) : from;
  const end = Math.max(to, points.length ? points[points.length - 1].t : to);
  return { start: first, end: Math.max(end, first + 10000) };
}

function chart(kind, points, span, series, band, bounds) {
  const svg = el("svg:svg", {
    viewBox: "0 0 " + W + " " + H, role: "img", class: "chart " + kind,
    "data-from": span.start, "data-to": span.end, "data-points": points.length,
  });
  const plotH = H - PAD_T - PAD_B - (band ? BAND + 4 : 0);
  const plotW = W - PAD_L - PAD_R;
  svg.append(el("svg:rect", { class: "plot", x: PAD_L, y: PAD_T, width: plotW, height: plotH }));
  const x = (t) => PAD_L + ((t - span.start) / (span.end - span.start)) * plotW;
  const values = points.flatMap((p) => series.map((s) => s.value(p))).concat(bounds || []).filter((v) => typeof v === "number");
  const top = niceMax(Math.max(1, ...values), band);
  const y = (v) => PAD_T + plotH - (v / top) * plotH;

  for (let i = 0; i <= 4; i++) {
    const v = (top * (4 - i)) / 4;
    const py = y(v);
    svg.append(el("svg:line", { class: "grid", x1: PAD_L, x2: W - PAD_R, y1: py, y2: py }));
    svg.append(el("svg:text", { x: PAD_L - 4, y: py + 3, "text-anchor": "end" }, band && !Number.isInteger(v) ? "" : format(v)));
  }
  const { ticks, withSeconds } = timeTicks(span);
  const clock = withSeconds ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  for (const t of ticks) {
    svg.append(el("svg:text", { x: x(t), y: H - 4, "text-anchor": "middle" }, new Date(t).toLocaleTimeString([], clock)));
  }
  for (const bound of bounds || []) {
    svg.append(el("svg:line", { class: "series bound", x1: PAD_L, x2: W - PAD_R, y1: y(bound), y2: y(bound) }));
  }
  if (points.length === 0) {
    svg.append(el("svg:text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no samples yet"));
    return svg;
  }
  for (const s of series) {
    let d = "";
    for (const p of points) {
      const v = s.value(p);
      if (typeof v !== "number") continue;
      const px = x(p.t).toFixed(1), py = y(v).toFixed(1);
      if (d === "") d = "M" + px + " " + py;
      else if (s.step) d += "H" + px + "V" + py;
      else d += "L" + px + " " + py;
    }
    if (d) svg.append(el("svg:path", { class: "series " + s.cls, d }));
  }
  if (band) {
    // One rectangle per run of the same state.
    const bandY = PAD_T + plotH + 4;
    let run = null;
    const flush = (end) => {
      if (!run) return;
      svg.append(el("svg:rect", {
        class: "state " + run.state, x: x(run.t).toFixed(1), y: bandY,
        width: Math.max(0.5, x(end) - x(run.t)).toFixed(1), height: BAND, fill: STATE_COLORS[run.state] || "#98a2b3",
      }));
    };
    for (const p of points) {
      if (run && run.state === p.state) continue;
      flush(p.t);
      run = p.state ? { state: p.state, t: p.t } : null;
    }
    flush(points[points.length - 1].t);
  }
  return svg;
}

// A round top for the y axis (whole numbers for replicas).
function niceMax(v, whole) {
  if (whole) return Math.max(4, Math.ceil(v / 4) * 4);
  const magnitude = Math.pow(10, Math.floor(Math.log10(v)));
  for (const step of [1, 2, 2.5, 5, 10]) if (v <= step * magnitude) return step * magnitude;
  return 10 * magnitude;
}

// At most eight ticks at round times, with seconds when they are under a minute apart.
function timeTicks(span) {
  const seconds = (span.end - span.start) / 1000;
  const step = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].find((s) => seconds / s <= 8) || 14400;
  const stepMs = step * 1000;
  const ticks = [];
  for (let t = Math.ceil(span.start / stepMs) * stepMs; t <= span.end; t += stepMs) ticks.push(t);
  return { ticks, withSeconds: step < 60 };
}

function format(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : Number.isInteger(v) ? String(v) : v.toFixed(2); }

// The override form: what to do, for how long and why; then a confirmation in the page; then
// the API's answer.
function overrideForm(service) {
  const details = el("details", { class: "override" });
  details.append(el("summary", {}, "Override"));
  const form = el("form", { class: "override-form" });
  const action = el("select", { class: "action", "aria-label": "override" });
  for (const [value, label] of [["pin", "pin at"], ["pause", "pause"], ["pauseScaleIn", "pause scale-in"],
    ["pauseScaleOut", "pause scale-out"], ["clear", "clear the override"]]) {
    action.append(el("option", { value }, label));
  }
  const replicas = el("input", { class: "replicas", type: "number", min: "0", step: "1", placeholder: "replicas", "aria-label": "replicas" });
  const ttlLabel = el("span", {}, "for");
  const ttl = el("input", { class: "ttl", value: "30m", "aria-label": "TTL (e.g. 30m, 2h)" });
  const reason = el("input", { class: "reason", placeholder: "reason (required)", "aria-label": "reason" });
  const review = el("button", { type: "submit", class: "review" }, "Review…");
  form.append(action, replicas, ttlLabel, ttl, reason, review);
  const confirm = el("div", { class: "confirm", role: "alertdialog", hidden: "" });
  const answer = el("pre", { class: "answer", hidden: "" });
  details.append(form, confirm, answer);

  const sync = () => {
    const clearing = action.value === "clear";
    replicas.hidden = action.value !== "pin";
    ttlLabel.hidden = ttl.hidden = reason.hidden = clearing;
  };
  action.addEventListener("change", sync);
  sync();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    answer.hidden = true;
    let request;
    try {
      request = overrideRequest(service, action.value, replicas.value, ttl.value, reason.value);
    } catch (problem) {
      show(answer, problem.message, true);
      return;
    }
    const yes = el("button", { type: "button", class: request.method === "DELETE" ? "danger confirm-yes" : "primary confirm-yes" }, "Confirm");
    const no = el("button", { type: "button", class: "confirm-no" }, "Cancel");
    confirm.replaceChildren(el("p", {}, request.summary + "?"), yes, no);
    confirm.hidden = false;
    no.addEventListener("click", () => { confirm.hidden = true; });
    yes.addEventListener("click", async () => {
      confirm.hidden = true;
      yes.disabled = true;
      show(answer, "sending…", false);
      try {
        const response = await fetch(request.path, {
          method: request.method, cache: "no-store",
          headers: request.body ? { ...authHeaders(), "Content-Type": "application/json" } : authHeaders(),
          body: request.body,
        });
        let text = await response.text();
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* shown as sent */ }
        show(answer, "HTTP " + response.status + "\n" + text, !response.ok, response.status);
        refresh();
      } catch (error) {
        show(answer, "the operator did not answer: " + error.message, true);
      }
    });
  });
  return details;
}

// The request for one form submission, or an Error naming the field to fix.
function overrideRequest(service, action, replicas, ttl, reason) {
  const path = "/v1/services/" + encodeURIComponent(service) + "/override";
  if (action === "clear") return { method: "DELETE", path, summary: "Clear the override of " + service };
  if (!ttl.trim()) throw new Error("ttl: how long it lasts, such as 30m or 2h");
  if (!reason.trim()) throw new Error("reason: say why, for whoever looks at the service next");
  const body = { ttl: ttl.trim(), reason: reason.trim() };
  let what;
  if (action === "pin") {
    const n = Number(replicas);
    if (replicas.trim() === "" || !Number.isInteger(n) || n < 0) throw new Error("replicas: a whole number from 0 up");
    body.replicas = n;
    what = "Pin " + service + " at " + n + " replicas";
  } else {
    body[action] = true;
    what = { pause: "Pause all scaling of ", pauseScaleIn: "Pause scale-in of ", pauseScaleOut: "Pause scale-out of " }[action] + service;
  }
  return { method: "POST", path, body: JSON.stringify(body), summary: what + " for " + body.ttl + " (" + body.reason + ")" };
}

function show(answer, text, isError, status) {
  answer.textContent = text;
  answer.className = "answer" + (isError ? " error" : "");
  if (status !== undefined) answer.setAttribute("data-status", String(status));
  else answer.removeAttribute("data-status");
  answer.hidden = false;
}

function chooseRange(chosen) {
  range = chosen;
  for (const button of $("ranges").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === chosen));
  }
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of $("ranges").querySelectorAll("button")) {
    button.addEventListener("click", () => chooseRange(button.dataset.range));
  }
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = $("token").value.trim();
    if (typed) sessionStorage.setItem(TOKEN_KEY, typed);
    $("token").value = "";
    refresh();
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); refresh(); });
  showLogin();
  refresh();
  setInterval(refresh, REFRESH_MS);
});
