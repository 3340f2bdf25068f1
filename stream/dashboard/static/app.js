// ppg-stream dashboard: one card per device, fed by Server-Sent Events from /events.
// Smooth with hundreds of devices: events only update the model; the DOM and the charts are touched
// once per animation frame, charts only for cards on screen, sorting at most once a second; every
// device keeps at most HISTORY points.
"use strict";

const HISTORY = 150;          // points per device (5 min at the 2 s hop), as the server keeps
const CHART_SPAN_S = 300;     // the chart shows the last 5 minutes of stream time
const GAP_S = 10;             // a jump in time longer than this breaks the line
const STALE_S = 10;           // online, but nothing for this long: the number is dimmed
const SORT_EVERY_MS = 1000;
const TICK_MS = 1000;         // "last seen" texts and the summary

const cardsEl = document.getElementById("cards");
const template = document.getElementById("card-template");
const summaryEl = document.getElementById("summary");
const bannerEl = document.getElementById("banner");
const emptyEl = document.getElementById("empty");
const filterEl = document.getElementById("filter");
const sortEl = document.getElementById("sort");

const cards = new Map();      // device id -> Card
const dirtyText = new Set();  // cards whose text changed since the last frame
const onScreen = new Set();   // cards intersecting the viewport
let meta = {};
let frameRequested = false;
let orderDirty = true;
let lastSortAt = 0;
let streamUp = false;
let sortTimer = null;

class Card {
  constructor(id) {
    this.id = id;
    this.el = template.content.firstElementChild.cloneNode(true);
    this.el.dataset.device = id;
    this.q = {};
    for (const name of ["name", "status", "bpm", "conf-meter", "conf-text", "model", "late", "missed", "seen"]) {
      this.q[name] = this.el.querySelector("." + name);
    }
    this.q.name.textContent = id;
    this.q.name.title = id;
    this.canvas = this.el.querySelector("canvas");
    this.ctx = this.canvas.getContext("2d");
    this.d = {};
    this.seenAt = null;     // local clock (ms) of the last HR message
    this.t = []; this.bpm = []; this.band = [];
    this.chartDirty = true;
    this.shownText = {};
  }
}

const visibility = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const card = cards.get(entry.target.dataset.device);
    if (!card) continue;
    if (entry.isIntersecting) { onScreen.add(card); if (card.chartDirty) requestFrame(); }
    else onScreen.delete(card);
  }
}, { rootMargin: "200px" });

function cardFor(id) {
  let card = cards.get(id);
  if (!card) {
    card = new Card(id);
    cards.set(id, card);
    applyFilter(card);
    cardsEl.appendChild(card.el);
    visibility.observe(card.el);
    orderDirty = true;
  }
  return card;
}

function removeCard(id) {
  const card = cards.get(id);
  if (!card) return;
  visibility.unobserve(card.el);
  card.el.remove();
  cards.delete(id);
  onScreen.delete(card);
  dirtyText.delete(card);
}

function apply(rec, receivedAt) {
  if (rec.removed) { removeCard(rec.id); return; }
  const card = cardFor(rec.id);
  card.d = rec;
  card.seenAt = rec.age == null ? null : receivedAt - rec.age * 1000;
  if (rec.reset) { card.t.length = 0; card.bpm.length = 0; card.band.length = 0; card.chartDirty = true; }
  for (const [t, bpm, band] of rec.pts) {
    const n = card.t.length;
    if (n && t <= card.t[n - 1]) continue;  // already have it (a snapshot and an update can overlap)
    card.t.push(t); card.bpm.push(bpm); card.band.push(band);
    card.chartDirty = true;
  }
  const extra = card.t.length - HISTORY;
  if (extra > 0) { card.t.splice(0, extra); card.bpm.splice(0, extra); card.band.splice(0, extra); }
  dirtyText.add(card);
  orderDirty = true;
}

function onSnapshot(event) {
  const msg = JSON.parse(event.data);
  const receivedAt = Date.now();
  const present = new Set(msg.devices.map((rec) => rec.id));
  for (const id of [...cards.keys()]) if (!present.has(id)) removeCard(id);
  for (const rec of msg.devices) apply(rec, receivedAt);
  meta = msg.meta;
  requestFrame();
}

function onUpdate(event) {
  const msg = JSON.parse(event.data);
  const receivedAt = Date.now();
  if (msg.devices) for (const rec of msg.devices) apply(rec, receivedAt);
  if (msg.meta) meta = msg.meta;
  requestFrame();
}

function requestFrame() {
  if (!frameRequested) { frameRequested = true; requestAnimationFrame(frame); }
}

function frame() {
  frameRequested = false;
  for (const card of dirtyText) renderText(card);
  dirtyText.clear();
  for (const card of onScreen) if (card.chartDirty) drawChart(card);
  const now = performance.now();
  if (orderDirty && now - lastSortAt >= SORT_EVERY_MS) { applyOrder(); lastSortAt = now; }
  else if (orderDirty && sortTimer === null) {
    sortTimer = setTimeout(() => { sortTimer = null; requestFrame(); }, SORT_EVERY_MS - (now - lastSortAt));
  }
  renderSummary();
}

function setText(card, key, text) {
  if (card.shownText[key] !== text) { card.shownText[key] = text; card.q[key].textContent = text; }
}

function renderText(card) {
  const d = card.d;
  const status = d.status || "unknown";
  card.el.classList.toggle("offline", status === "offline");
  card.q.status.className = "status " + status;
  setText(card, "status", status);
  setText(card, "bpm", d.bpm == null ? "–" : String(Math.round(d.bpm)));
  card.q.bpm.title = d.bpm == null ? "" : `${d.bpm} bpm`;
  if (d.conf == null) {
    card.q["conf-meter"].hidden = true;
    setText(card, "conf-text", d.source === "device" ? "the device's own HR" : "");
  } else {
    card.q["conf-meter"].hidden = false;
    card.q["conf-meter"].value = d.conf;
    setText(card, "conf-text", `confidence ${Math.round(d.conf * 100)} %`);
  }
  setText(card, "model", d.model || "–");
  card.q.model.title = d.model || "";
  setText(card, "late", String(d.late));
  setText(card, "missed", String(d.missed));
  card.q.late.classList.toggle("warn", d.late > 0);
  card.q.missed.classList.toggle("warn", d.missed > 0);
  renderSeen(card, Date.now());
  if (filterEl.value) applyFilter(card);  // the model may have arrived after the card
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s ago`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
}

function renderSeen(card, now) {
  const offline = card.d.status === "offline";
  let text;
  if (card.seenAt == null) text = offline ? "offline · not seen since the dashboard started" : "no heart rate yet";
  else text = (offline ? "offline · last seen " : "updated ") + ago(now - card.seenAt);
  setText(card, "seen", text);
  card.el.classList.toggle("stale", !offline && card.seenAt != null && now - card.seenAt > STALE_S * 1000);
}

// --- chart: HR line with its confidence band, last CHART_SPAN_S of stream time -------------------

function drawChart(card) {
  card.chartDirty = false;
  const canvas = card.canvas, g = card.ctx;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const n = card.t.length;
  if (!n) return;
  const tEnd = card.t[n - 1], tStart = tEnd - CHART_SPAN_S;
  let first = 0;
  while (first < n - 1 && card.t[first] < tStart) first++;
  let lo = Infinity, hi = -Infinity;
  for (let i = first; i < n; i++) {
    const b = card.band[i] || 0;
    lo = Math.min(lo, card.bpm[i] - b); hi = Math.max(hi, card.bpm[i] + b);
  }
  if (hi - lo < 20) { const mid = (hi + lo) / 2; lo = mid - 10; hi = mid + 10; }
  lo = Math.floor(lo / 5) * 5; hi = Math.ceil(hi / 5) * 5;
  const left = 26, right = 2, top = 3, bottom = 3;
  const x = (t) => left + (t - tStart) / CHART_SPAN_S * (w - left - right);
  const y = (v) => top + (hi - v) / (hi - lo) * (h - top - bottom);

  g.font = "10px system-ui, sans-serif"; g.fillStyle = "#6b7380"; g.textBaseline = "middle";
  g.fillText(String(hi), 0, top + 4); g.fillText(String(lo), 0, h - bottom - 4);
  g.strokeStyle = "#e3e6ea"; g.lineWidth = 1;
  g.beginPath(); g.moveTo(left, top + 0.5); g.lineTo(w - right, top + 0.5);
  g.moveTo(left, h - bottom - 0.5); g.lineTo(w - right, h - bottom - 0.5); g.stroke();

  // runs of points without a gap: each gets its band polygon and its line
  const runs = [];
  let start = first;
  for (let i = first + 1; i <= n; i++) {
    if (i === n || card.t[i] - card.t[i - 1] > GAP_S) { runs.push([start, i]); start = i; }
  }
  g.fillStyle = "rgba(214, 41, 79, 0.16)";
  for (const [a, b] of runs) {
    if (card.band[a] == null) continue;
    g.beginPath();
    for (let i = a; i < b; i++) g.lineTo(x(card.t[i]), y(card.bpm[i] + (card.band[i] || 0)));
    for (let i = b - 1; i >= a; i--) g.lineTo(x(card.t[i]), y(card.bpm[i] - (card.band[i] || 0)));
    g.closePath(); g.fill();
  }
  g.strokeStyle = "#d6294f"; g.lineWidth = 1.6; g.lineJoin = "round";
  for (const [a, b] of runs) {
    g.beginPath();
    for (let i = a; i < b; i++) g.lineTo(x(card.t[i]), y(card.bpm[i]));
    if (b - a === 1) g.arc(x(card.t[a]), y(card.bpm[a]), 1.5, 0, 2 * Math.PI);
    g.stroke();
  }
}

// --- sorting and filtering ------------------------------------------------------------------------

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

function applyOrder() {
  orderDirty = false;
  const sorted = [...cards.values()].sort(SORTS[sortEl.value] || byId);
  sorted.forEach((card, i) => { if (card.order !== i) { card.order = i; card.el.style.order = i; } });
}

function applyFilter(card) {
  const text = filterEl.value.trim().toLowerCase();
  const match = !text || card.id.toLowerCase().includes(text) || (card.d.model || "").toLowerCase().includes(text);
  card.el.hidden = !match;
}

filterEl.addEventListener("input", () => { for (const card of cards.values()) applyFilter(card); renderSummary(); });
sortEl.addEventListener("change", () => { orderDirty = true; lastSortAt = 0; requestFrame(); });

// --- summary, banner, clock -----------------------------------------------------------------------

function renderSummary() {
  let shown = 0;
  for (const card of cards.values()) if (!card.el.hidden) shown++;
  const parts = [`${cards.size} devices`];
  if (shown !== cards.size) parts.push(`${shown} shown`);
  if (meta.online != null) parts.push(`${meta.online} online`, `${meta.offline} offline`);
  if (meta.rate != null) parts.push(`${meta.rate} msg/s`);
  const broker = meta.broker ? `${meta.broker} ${meta.broker_state}` : "";
  summaryEl.textContent = parts.join(" · ") + (broker ? " · " : "");
  if (broker) {
    const span = document.createElement("span");
    span.textContent = broker;
    if (meta.broker_state !== "connected") span.className = "bad";
    summaryEl.appendChild(span);
  }
  document.getElementById("prefix").textContent = (meta.prefix || "ppg") + "/+/hr";
  emptyEl.hidden = cards.size > 0;
  let problem = "";
  if (!streamUp) problem = "Lost the connection to the dashboard server: reconnecting…";
  else if (meta.broker_state && meta.broker_state !== "connected") problem = `The MQTT broker ${meta.broker} is not answering: retrying. The cards show the last values received.`;
  bannerEl.hidden = !problem;
  bannerEl.textContent = problem;
}

setInterval(() => {
  const now = Date.now();
  for (const card of onScreen) renderSeen(card, now);
  renderSummary();
}, TICK_MS);

const events = new EventSource("/events");
events.addEventListener("snapshot", onSnapshot);
events.addEventListener("update", onUpdate);
events.addEventListener("open", () => { streamUp = true; renderSummary(); });
events.addEventListener("error", () => { streamUp = false; renderSummary(); });
