// igtflow live view: frames, their age on the server's clock, the STALE rule, table and plots.
// Plain JS and canvas on purpose: the page must load fast on any tablet and has nothing to build.
"use strict";

const STALE_PERIODS = 2;   // frames stopped for this many frame periods: stale
const PING_EVERY_MS = 1000;
const PINGS_KEPT = 20;

const state = {
  staleMs: 250,
  offsetMs: null,          // server clock minus this browser's clock (best ping)
  rttMs: null,
  pings: [],
  views: new Map(),        // name -> {canvas, ctx, age, pending, shown, arrivals}
  connected: false,
  stale: true,
  reason: null,
  staleSince: null,        // server-clock ms when the page turned stale
  staleSinceLocal: null,   // the same on this browser's clock (against frame arrivals)
  painted: [],             // [seq, capture → painted ms] of the main view, for the bench
  held: false,
};

function localMs() { return performance.timeOrigin + performance.now(); }
function serverMs() { return localMs() + (state.offsetMs ?? 0); }

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws${location.search}`;
}

function connect() {
  const ws = new WebSocket(socketUrl());
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    state.connected = true;
    document.getElementById("link").textContent = "connected";
    ping(ws);
    // A few quick pings first: a usable clock offset before the first frames are judged.
    for (let i = 1; i <= 4; i++) setTimeout(() => ping(ws), 60 * i);
    state.pinger = setInterval(() => ping(ws), PING_EVERY_MS);
  };
  ws.onclose = (event) => {
    state.connected = false;
    clearInterval(state.pinger);
    if (event.code === 1006 && !state.everOpened) {
      document.getElementById("denied").style.display = "block";
    }
    document.getElementById("link").textContent = "disconnected; retrying";
    setTimeout(connect, 1000);
  };
  ws.onmessage = (event) => {
    state.everOpened = true;
    if (typeof event.data === "string") onText(JSON.parse(event.data));
    else onFrame(event.data);
  };
}

function ping(ws) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping", t0: localMs() }));
}

function onText(message) {
  if (message.type === "pong") {
    const t1 = localMs();
    const rtt = t1 - message.t0;
    state.pings.push({ rtt, offset: message.server_ms - (message.t0 + t1) / 2 });
    if (state.pings.length > PINGS_KEPT) state.pings.shift();
    // The exchange with the shortest round trip bounds the offset best (NTP's filter).
    const best = state.pings.reduce((a, b) => (b.rtt < a.rtt ? b : a));
    state.offsetMs = best.offset;
    state.rttMs = best.rtt;
  } else if (message.type === "stats") {
    onStats(message);
  }
}

function view(name) {
  let v = state.views.get(name);
  if (!v) {
    const box = document.createElement("div");
    box.className = "view";
    box.id = "view-" + name;
    const caption = document.createElement("div");
    caption.className = "caption";
    const label = document.createElement("span");
    label.textContent = name;
    const age = document.createElement("span");
    age.className = "age";
    caption.append(label, age);
    // The caption sits above the picture, never on it: the picture is exactly the frame sent.
    const canvas = document.createElement("canvas");
    box.append(caption, canvas);
    document.getElementById("views").appendChild(box);
    v = { canvas, ctx: canvas.getContext("2d"), age, pending: null, shown: null, arrivals: [],
          frames: 0 };
    state.views.set(name, v);
  }
  return v;
}

function onFrame(buffer) {
  const headLength = new DataView(buffer).getUint32(0, true);
  const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headLength)));
  const v = view(head.view);
  const now = localMs();
  // The first frame comes on connecting, off the stream's cadence: no gap is measured from it.
  if (v.frames++ === 1) v.arrivals = [];
  v.arrivals.push(now);
  if (v.arrivals.length > 16) v.arrivals.shift();
  const blob = new Blob([new Uint8Array(buffer, 4 + headLength)], { type: "image/jpeg" });
  createImageBitmap(blob).then((bitmap) => {
    // Latest only here too: a frame decoded after a newer one is dropped.
    if (v.pending && v.pending.head.seq > head.seq) { bitmap.close(); return; }
    if (v.pending) v.pending.bitmap.close();
    v.pending = { head, bitmap };
  });
}

function framePeriod(v) {
  if (v.arrivals.length < 4) return null;
  const gaps = v.arrivals.slice(1).map((t, i) => t - v.arrivals[i]).sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)];
}

function paint() {
  if (!state.held) {
    for (const [name, v] of state.views) {
      if (v.pending) {
        const { head, bitmap } = v.pending;
        v.pending = null;
        if (v.canvas.width !== bitmap.width || v.canvas.height !== bitmap.height) {
          v.canvas.width = bitmap.width;
          v.canvas.height = bitmap.height;
        }
        v.ctx.drawImage(bitmap, 0, 0);
        bitmap.close();
        v.shown = head;
        if (name === mainView()) state.painted.push([head.seq, serverMs() - head.stamp_ms]);
        if (state.painted.length > 10000) state.painted.splice(0, 5000);
      }
    }
    judge();
  }
  requestAnimationFrame(paint);
}

function mainView() {
  return state.views.has("overlay") ? "overlay" : state.views.keys().next().value;
}

// The overlay's rule: older than stale_ms since capture (or judged stale by the overlay itself)
// is stale; so is a feed that stopped for STALE_PERIODS frame periods, or a lost connection.
function judge() {
  const now = serverMs();
  let reason = state.connected ? "" : "DISCONNECTED";
  if (!state.views.size && !reason) reason = "NO FRAMES";
  // Text is rewritten ten times a second, not every animation frame: each rewrite costs a
  // layout, and five screens on a small machine add up.
  const writeText = now - (state.textAt ?? 0) >= 100;
  if (writeText) state.textAt = now;
  for (const [name, v] of state.views) {
    if (!v.shown) { reason = reason || "NO FRAMES"; continue; }
    const age = now - v.shown.stamp_ms;
    if (writeText) v.age.textContent = `${age.toFixed(0)} ms old`;
    const period = framePeriod(v);
    const silent = localMs() - v.arrivals[v.arrivals.length - 1];
    if (!reason && age > state.staleMs) reason = `STALE ${age.toFixed(0)} ms (${name})`;
    if (!reason && v.shown.stale) reason = `STALE (${name}, judged by the overlay)`;
    if (!reason && period !== null && silent > STALE_PERIODS * period) {
      reason = `STALE: no frame for ${silent.toFixed(0)} ms (${name})`;
    }
  }
  const stale = reason !== "";
  if (stale && !state.stale) { state.staleSince = now; state.staleSinceLocal = localMs(); }
  if (!stale) state.staleSince = state.staleSinceLocal = null;
  if (stale !== state.stale) document.body.classList.toggle("stale", stale);
  state.stale = stale;
  if (reason !== state.reason || writeText) {
    state.reason = reason;
    document.getElementById("banner").textContent = reason;
  }
  if (writeText && state.offsetMs !== null) {
    document.getElementById("clock").textContent =
      `clock offset ${state.offsetMs.toFixed(1)} ms (±${(state.rttMs / 2).toFixed(1)})`;
  }
}

function onStats(stats) {
  state.staleMs = stats.stale_ms;
  document.getElementById("title").textContent = stats.title;
  document.title = stats.title;
  const body = document.querySelector("#table tbody");
  body.replaceChildren(...stats.table.map((row) => {
    const tr = document.createElement("tr");
    tr.className = row.level;
    const cells = [row.node, row.rate_hz, row.p50_ms ?? "–", row.p99_ms ?? "–",
                   row.text || row.level || ""];
    cells.forEach((value, i) => {
      const td = document.createElement("td");
      td.textContent = value;
      if (i === 4) td.className = "text";
      tr.appendChild(td);
    });
    return tr;
  }));
  const drops = Object.entries(stats.drops).map(([k, n]) => `${k}: ${n} dropped`).join(", ");
  const browsers = stats.browsers.map((b) => b.stalled_ms > 500 ?
    `${b.remote} stalled ${(b.stalled_ms / 1000).toFixed(1)} s` : b.remote).join(", ");
  document.getElementById("drops").textContent =
    `${stats.browsers.length} browser(s): ${browsers}` + (drops ? `; ${drops}` : "");
  plot("latency", stats.latency, stats.now_ms, Math.max(stats.stale_ms * 1.2, 50), stats.stale_ms);
  plot("confidence", stats.confidence, stats.now_ms, 1, null);
}

function plot(id, points, nowMs, minTop, limit) {
  const canvas = document.getElementById(id);
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const top = Math.max(minTop, ...points.map((p) => p[1]));
  const x = (t) => w - ((nowMs - t) / 60000) * w;
  const y = (v) => h - (v / top) * (h - 12);
  if (limit !== null) {
    ctx.strokeStyle = "#c00";
    ctx.beginPath(); ctx.moveTo(0, y(limit)); ctx.lineTo(w, y(limit)); ctx.stroke();
  }
  ctx.strokeStyle = "#6cf";
  ctx.beginPath();
  points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
  ctx.stroke();
  ctx.fillStyle = "#aaa";
  ctx.fillText(top.toFixed(top < 2 ? 2 : 0), 4, 10);
}

// What tests and `igtflow bench web` read from the page.
window.igtflowView = {
  state,
  shown: (name) => state.views.get(name ?? mainView())?.shown ?? null,
  lastArrival: (name) => state.views.get(name ?? mainView())?.arrivals.at(-1) ?? null,
  period: (name) => { const v = state.views.get(name ?? mainView()); return v ? framePeriod(v) : null; },
  takePainted: () => state.painted.splice(0),
  // Freeze the picture (for a screenshot of one known frame); returns the frame shown.
  hold: () => { state.held = true; return window.igtflowView.shown(); },
  release: () => { state.held = false; },
};

connect();
requestAnimationFrame(paint);
