// ppg-stream dashboard: one card per device, fed by Server-Sent Events from /events.
//
// Smooth with hundreds of devices: events only update the model (at most HISTORY points a device);
// the page is drawn once per animation frame; only the cards on screen exist in the DOM (a pool of
// elements re-bound to devices as the view scrolls or re-sorts), so a re-sort or an update costs the
// same for 10 devices as for 2000; a card's text and chart are redrawn only when its device changed;
// sorting by a live value happens at most once a second.
"use strict";

const HISTORY = 150;          // points per device (5 min at the 2 s hop), as the server keeps
const CHART_SPAN_S = 300;     // the chart shows the last 5 minutes of stream time
const GAP_S = 10;             // a jump in time longer than this breaks the line
const STALE_S = 10;           // online, but nothing for this long: the number is dimmed
const SORT_EVERY_MS = 1000;
const TICK_MS = 1000;         // "last seen" texts and the summary
const CARD_MIN_W = 260, CARD_H = 236, GAP = 12, OVERSCAN_ROWS = 1;  // CARD_H matches .card's height

const cardsEl = document.getElementById("cards");
const template = document.getElementById("card-template");
const summaryEl = document.getElementById("summary");
const bannerEl = document.getElementById("banner");
const emptyEl = document.getElementById("empty");
const filterEl = document.getElementById("filter");
const sortEl = document.getElementById("sort");
const clearOfflineEl = document.getElementById("clear-offline");

const devices = new Map();    // device id -> Device (the model)
let view = [];                // devices passing the filter, in display order
let viewStale = true;         // the order may have changed (values moved)
let viewInvalid = true;       // membership, filter or sort key changed: rebuild now
let lastSortAt = -Infinity;
let sortTimer = null;
let meta = {};
let frameRequested = false;
let streamUp = false;

class Device {
  constructor(id) {
    this.id = id;
    this.d = {};
    this.seenAt = null;       // local clock (ms) of the last HR message
    this.t = []; this.bpm = []; this.band = [];
    this.version = 0;         // bumped by every change: a bound card re-renders when it differs
    this.chartVersion = 0;    // bumped when points change
    this.card = null;         // the Card showing it, if on screen
  }
}

class Card {
  constructor() {
    this.el = template.content.firstElementChild.cloneNode(true);
    this.q = {};
    for (const name of ["name", "status", "clear", "bpm", "conf-meter", "conf-text", "model", "late", "missed", "seen"]) {
      this.q[name] = this.el.querySelector("." + name);
    }
    this.canvas = this.el.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.device = null;
    this.version = -1; this.chartVersion = -1;
    this.x = null; this.y = null; this.w = null;
    this.shown = {};
    this.el.hidden = true;
    cardsEl.appendChild(this.el);
  }
}
const pool = [];              // every Card element made so far (about a screenful)

// --- the model ---------------------------------------------------------------------------------

function apply(rec, receivedAt) {
  if (rec.removed) {
    const gone = devices.get(rec.id);
    if (gone) { unbind(gone); devices.delete(rec.id); viewInvalid = true; }
    return;
  }
  let dev = devices.get(rec.id);
  if (!dev) { dev = new Device(rec.id); devices.set(rec.id, dev); viewInvalid = true; }
  if (dev.d.model !== rec.model && filterEl.value) viewInvalid = true;  // the filter also matches models
  dev.d = rec;
  dev.seenAt = rec.age == null ? null : receivedAt - rec.age * 1000;
  if (rec.reset) { dev.t.length = 0; dev.bpm.length = 0; dev.band.length = 0; dev.chartVersion++; }
  for (const [t, bpm, band] of rec.pts) {
    const n = dev.t.length;
    if (n && t <= dev.t[n - 1]) continue;  // already have it (a snapshot and an update can overlap)
    dev.t.push(t); dev.bpm.push(bpm); dev.band.push(band);
    dev.chartVersion++;
  }
  const extra = dev.t.length - HISTORY;
  if (extra > 0) { dev.t.splice(0, extra); dev.bpm.splice(0, extra); dev.band.splice(0, extra); }
  dev.version++;
  viewStale = true;
}

function onSnapshot(event) {
  const msg = JSON.parse(event.data);
  const receivedAt = Date.now();
  const present = new Set(msg.devices.map((rec) => rec.id));
  for (const [id, dev] of devices) if (!present.has(id)) { unbind(dev); devices.delete(id); }
  for (const rec of msg.devices) apply(rec, receivedAt);
  meta = msg.meta;
  viewInvalid = true;
  requestFrame();
}

function onUpdate(event) {
  const msg = JSON.parse(event.data);
  const receivedAt = Date.now();
  if (msg.devices) for (const rec of msg.devices) apply(rec, receivedAt);
  if (msg.meta) meta = msg.meta;
  requestFrame();
}

// --- the view: filter, sort, and the cards on screen -----------------------------------------------

const byId = (a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const num = (v, missing) => (v == null ? missing : v);
const SORTS = {
  "id": byId,
  "hr-desc": (a, b) => num(b.d.bpm, -1) - num(a.d.bpm, -1) || byId(a, b),
  "hr-asc": (a, b) => num(a.d.bpm, 1e9) - num(b.d.bpm, 1e9) || byId(a, b),
  "conf-asc": (a, b) => num(a.d.conf, 2) - num(b.d.conf, 2) || byId(a, b),
  "status": (a, b) => (b.d.status === "offline") - (a.d.status === "offline") || byId(a, b),
  "missed-desc": (a, b) => num(b.d.missed, 0) - num(a.d.missed, 0) || byId(a, b),
  "seen-desc": (a, b) => num(b.seenAt, 0) - num(a.seenAt, 0) || byId(a, b),
};

function matches(dev, text) {
  return !text || dev.id.toLowerCase().includes(text) || (dev.d.model || "").toLowerCase().includes(text);
}

function rebuildView(now) {
  const text = filterEl.value.trim().toLowerCase();
  view = [...devices.values()].filter((dev) => matches(dev, text)).sort(SORTS[sortEl.value] || byId);
  viewInvalid = viewStale = false;
  lastSortAt = now;
}

function unbind(dev) {
  const card = dev.card;
  if (!card) return;
  card.device = null;
  card.el.hidden = true;
  delete card.el.dataset.device;
  dev.card = null;
}

function layout() {
  const width = cardsEl.clientWidth;
  const cols = Math.max(1, Math.floor((width + GAP) / (CARD_MIN_W + GAP)));
  const cardW = Math.floor((width - (cols - 1) * GAP) / cols);
  const rows = Math.ceil(view.length / cols);
  cardsEl.style.height = `${rows > 0 ? rows * (CARD_H + GAP) - GAP : 0}px`;
  const top = cardsEl.getBoundingClientRect().top;  // relative to the viewport
  const firstRow = Math.max(0, Math.floor(-top / (CARD_H + GAP)) - OVERSCAN_ROWS);
  const lastRow = Math.min(rows - 1, Math.floor((window.innerHeight - top) / (CARD_H + GAP)) + OVERSCAN_ROWS);
  const first = firstRow * cols, last = Math.min(view.length - 1, (lastRow + 1) * cols - 1);
  return { cols, cardW, first, last };
}

function renderCards() {
  const { cols, cardW, first, last } = layout();
  const wanted = new Set();
  for (let i = first; i <= last; i++) wanted.add(view[i]);
  for (const card of pool) if (card.device && !wanted.has(card.device)) unbind(card.device);
  const free = pool.filter((card) => !card.device);
  for (let i = first; i <= last; i++) {
    const dev = view[i];
    let card = dev.card;
    if (!card) {
      card = free.pop() || (pool.push(new Card()), pool[pool.length - 1]);
      card.device = dev; dev.card = card;
      card.version = card.chartVersion = -1;
      card.shown = {};
      card.el.dataset.device = dev.id;
      card.el.hidden = false;
    }
    const x = (i % cols) * (cardW + GAP), y = Math.floor(i / cols) * (CARD_H + GAP);
    if (card.x !== x || card.y !== y) { card.x = x; card.y = y; card.el.style.transform = `translate(${x}px, ${y}px)`; }
    if (card.w !== cardW) { card.w = cardW; card.el.style.width = `${cardW}px`; card.chartVersion = -1; }
    if (card.version !== dev.version) { renderText(card, dev); card.version = dev.version; }
    if (card.chartVersion !== dev.chartVersion) { drawChart(card, dev); card.chartVersion = dev.chartVersion; }
  }
}

// --- one frame ------------------------------------------------------------------------------------

function requestFrame() {
  if (!frameRequested) { frameRequested = true; requestAnimationFrame(frame); }
}

function frame(now) {
  frameRequested = false;
  if (viewInvalid || (viewStale && now - lastSortAt >= SORT_EVERY_MS)) rebuildView(now);
  else if (viewStale && sortTimer === null) {
    sortTimer = setTimeout(() => { sortTimer = null; requestFrame(); }, SORT_EVERY_MS - (now - lastSortAt));
  }
  renderCards();
  renderSummary();
}

// --- a card's text -----------------------------------------------------------------------------------

function setText(card, key, text) {
  if (card.shown[key] !== text) { card.shown[key] = text; card.q[key].textContent = text; }
}

function renderText(card, dev) {
  const d = dev.d;
  const status = d.status || "unknown";
  setText(card, "name", dev.id);
  card.q.name.title = dev.id;
  card.el.classList.toggle("offline", status === "offline");
  card.q.status.className = "status " + status;
  setText(card, "status", status);
  card.q.clear.hidden = status !== "offline";
  const unsure = d.ok === false;  // the message said reliable: false (below the stream's --min-confidence)
  setText(card, "bpm", d.bpm == null || unsure ? "–" : String(Math.round(d.bpm)));
  card.q.bpm.title = d.bpm == null ? "" : unsure ? "no reliable estimate" : `${d.bpm} bpm`;
  card.el.classList.toggle("unsure", unsure);
  card.q["conf-meter"].hidden = d.conf == null;
  if (d.conf == null) setText(card, "conf-text", d.source === "device" ? "the device's own HR" : "");
  else {
    card.q["conf-meter"].value = d.conf;
    setText(card, "conf-text", unsure ? `no reliable estimate (confidence ${Math.round(d.conf * 100)} %)`
                                      : `confidence ${Math.round(d.conf * 100)} %`);
  }
  setText(card, "model", d.model || "–");
  card.q.model.title = d.model ? `model ${d.model}` : "";
  setText(card, "late", String(d.late ?? 0));
  setText(card, "missed", String(d.missed ?? 0));
  card.q.late.classList.toggle("warn", d.late > 0);
  card.q.missed.classList.toggle("warn", d.missed > 0);
  renderSeen(card, dev, Date.now());
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s ago`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
}

function renderSeen(card, dev, now) {
  const offline = dev.d.status === "offline";
  let text;
  if (dev.seenAt == null) text = offline ? "offline · not seen since the dashboard started" : "no heart rate yet";
  else text = (offline ? "offline · last seen " : "updated ") + ago(now - dev.seenAt);
  setText(card, "seen", text);
  card.el.classList.toggle("stale", !offline && dev.seenAt != null && now - dev.seenAt > STALE_S * 1000);
}

// --- a card's chart: HR line with its confidence band, last CHART_SPAN_S of stream time ----------------
// Both axes are labelled: y in bpm with a gridline at each tick (every card scales to its own range, and
// says so), x in stream time (minutes:seconds since the stream started) with a tick every minute.

function niceStep(span) {
  for (const step of [5, 10, 20, 25, 50, 100]) if (span / step <= 3) return step;
  return 200;
}

function clock(t) {
  const s = Math.round(t), m = Math.floor(s / 60);
  return `${m}:${String(s - 60 * m).padStart(2, "0")}`;
}

function drawChart(card, dev) {
  const canvas = card.canvas, g = card.ctx;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const n = dev.t.length;
  if (!n) return;
  const tEnd = dev.t[n - 1], tStart = tEnd - CHART_SPAN_S;
  let first = 0;
  while (first < n - 1 && dev.t[first] < tStart) first++;
  let lo = Infinity, hi = -Infinity;
  for (let i = first; i < n; i++) {
    const b = dev.band[i] || 0;
    lo = Math.min(lo, dev.bpm[i] - b); hi = Math.max(hi, dev.bpm[i] + b);
  }
  if (hi - lo < 20) { const mid = (hi + lo) / 2; lo = mid - 10; hi = mid + 10; }
  const step = niceStep(hi - lo);
  lo = Math.floor(lo / step) * step; hi = Math.ceil(hi / step) * step;
  const left = 30, right = 4, top = 6, bottom = 14;
  const x = (t) => left + (t - tStart) / CHART_SPAN_S * (w - left - right);
  const y = (v) => top + (hi - v) / (hi - lo) * (h - top - bottom);

  g.font = "10px system-ui, sans-serif"; g.fillStyle = "#6b7380"; g.strokeStyle = "#e3e6ea"; g.lineWidth = 1;
  g.textAlign = "right"; g.textBaseline = "middle";
  g.beginPath();
  for (let v = lo; v <= hi; v += step) {
    const yy = Math.round(y(v)) + 0.5;
    g.moveTo(left, yy); g.lineTo(w - right, yy);
    g.fillText(String(v), left - 4, yy);
  }
  g.textAlign = "center"; g.textBaseline = "alphabetic";
  for (let t = Math.ceil(Math.max(tStart, 0) / 60) * 60; t <= tEnd; t += 60) {
    const xx = Math.round(x(t)) + 0.5;
    g.moveTo(xx, top); g.lineTo(xx, h - bottom + 3);
    g.fillText(clock(t), Math.min(Math.max(xx, left + 12), w - right - 12), h - 2);
  }
  g.stroke();

  // runs of points without a gap: each gets its band polygon and its line
  const runs = [];
  let start = first;
  for (let i = first + 1; i <= n; i++) {
    if (i === n || dev.t[i] - dev.t[i - 1] > GAP_S) { runs.push([start, i]); start = i; }
  }
  g.fillStyle = "rgba(214, 41, 79, 0.16)";
  for (const [a, b] of runs) {
    if (dev.band[a] == null) continue;
    g.beginPath();
    for (let i = a; i < b; i++) g.lineTo(x(dev.t[i]), y(dev.bpm[i] + (dev.band[i] || 0)));
    for (let i = b - 1; i >= a; i--) g.lineTo(x(dev.t[i]), y(dev.bpm[i] - (dev.band[i] || 0)));
    g.closePath(); g.fill();
  }
  g.strokeStyle = "#d6294f"; g.lineWidth = 1.6; g.lineJoin = "round";
  for (const [a, b] of runs) {
    g.beginPath();
    for (let i = a; i < b; i++) g.lineTo(x(dev.t[i]), y(dev.bpm[i]));
    if (b - a === 1) g.arc(x(dev.t[a]), y(dev.bpm[a]), 1.5, 0, 2 * Math.PI);
    g.stroke();
  }
  card.canvas.dataset.scale = `${lo}-${hi} bpm, ${clock(Math.max(tStart, 0))}-${clock(tEnd)}`;  // what the axes say, for tests and tools
}

// --- controls, summary, banner, clock ---------------------------------------------------------------

filterEl.addEventListener("input", () => { viewInvalid = true; window.scrollTo(0, 0); requestFrame(); });

// clearing: an offline card's "clear" button, or "clear offline" for all of them; the server forgets the
// device, clears its retained status on the broker, and every browser drops the card with the next update
async function clearDevices(query) {
  const response = await fetch(`/api/devices?${query}`, { method: "DELETE" });
  if (!response.ok) { clearProblem = `Could not clear: ${await response.text()}`; clearProblemUntil = Date.now() + 5000; renderSummary(); }
}
let clearProblem = "", clearProblemUntil = 0;
cardsEl.addEventListener("click", (event) => {
  const button = event.target.closest("button.clear");
  const card = button && pool.find((c) => c.el.contains(button));
  if (card && card.device) clearDevices("id=" + encodeURIComponent(card.device.id));
});
clearOfflineEl.addEventListener("click", () => {
  if (confirm(`Forget the ${meta.offline} offline devices, here and on the broker?`)) clearDevices("status=offline");
});
sortEl.addEventListener("change", () => { viewInvalid = true; requestFrame(); });
window.addEventListener("scroll", requestFrame, { passive: true });
window.addEventListener("resize", requestFrame);

function renderSummary() {
  const parts = [`${devices.size} devices`];
  if (view.length !== devices.size) parts.push(`${view.length} shown`);
  if (meta.online != null) parts.push(`${meta.online} online`, `${meta.offline} offline`);
  if (meta.rate != null) parts.push(`${formatRate(meta.rate)} msg/s`);
  const broker = meta.broker ? `${meta.broker} ${meta.broker_state}` : "";
  const text = parts.join(" · ") + (broker ? " · " : "");
  if (summaryEl.dataset.text !== text + broker) {
    summaryEl.dataset.text = text + broker;
    summaryEl.textContent = text;
    if (broker) {
      const span = document.createElement("span");
      span.textContent = broker;
      if (meta.broker_state !== "connected") span.className = "bad";
      summaryEl.appendChild(span);
    }
  }
  document.getElementById("prefix").textContent = (meta.prefix || "ppg") + "/+/hr";
  clearOfflineEl.hidden = !(meta.offline > 0);
  const clearText = `clear ${meta.offline} offline`;
  if (clearOfflineEl.textContent !== clearText) clearOfflineEl.textContent = clearText;
  emptyEl.hidden = devices.size > 0;
  let problem = "";
  if (!streamUp) problem = "Lost the connection to the dashboard server: reconnecting…";
  else if (Date.now() < clearProblemUntil) problem = clearProblem;
  else if (meta.broker_state === "refused") problem = `The MQTT broker ${meta.broker} refused the dashboard: ${meta.error || ""}`;
  else if (meta.broker_state && meta.broker_state !== "connected") problem = `The MQTT broker ${meta.broker} is not answering: retrying. The cards show the last values received.`;
  bannerEl.hidden = !problem;
  if (bannerEl.textContent !== problem) bannerEl.textContent = problem;
}

// heart-rate messages a second over the last 10 s: 0.5 for one device at the 2 s hop
function formatRate(rate) {
  return rate >= 10 ? String(Math.round(rate)) : rate.toFixed(1);
}

setInterval(() => {
  const now = Date.now();
  for (const card of pool) if (card.device) renderSeen(card, card.device, now);
  renderSummary();
}, TICK_MS);

const events = new EventSource("/events");
events.addEventListener("snapshot", onSnapshot);
events.addEventListener("update", onUpdate);
events.addEventListener("open", () => { streamUp = true; renderSummary(); });
events.addEventListener("error", () => { streamUp = false; renderSummary(); });
