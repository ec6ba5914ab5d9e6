// The status page: polls /api/status for a server's metrics and draws
// the numbers and their recent history.
"use strict";

const HISTORY = 60;
const history = {};
let timer = null;
let polls = 0;
let generation = 0;

function push(key, v) {
  (history[key] = history[key] || []).push(v);
  if (history[key].length > HISTORY) history[key].shift();
}

function spark(id, key) {
  const c = $(id);
  if (!c) return;
  const h = history[key] || [];
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (h.length < 2) return;
  const lo = Math.min(0, ...h), hi = Math.max(...h);
  const span = hi - lo || 1;
  const step = c.width / Math.max(h.length - 1, 1);
  ctx.strokeStyle = "#3b82f6";
  ctx.lineWidth = 2;
  ctx.beginPath();
  h.forEach((v, i) => {
    const x = i * step;
    const y = c.height - 3 - ((v - lo) / span) * (c.height - 6);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function num(id, v, key) {
  $(id).textContent = Number.isInteger(v) ? String(v) : v.toFixed(2);
  if (key) { push(key, v); spark("c-" + key, key); }
}

function table(id, rows) {
  const tb = $(id).tBodies[0];
  clear(tb);
  if (!rows.length) { tb.append(el("tr", {}, el("td", { class: "muted", text: "none yet" }))); return; }
  for (const r of rows) tb.append(el("tr", {}, el("td", { text: r.label }), el("td", { class: "num-cell", text: String(r.value) })));
}

function fmtBytes(b) {
  if (b < 1024) return b + " B";
  if (b < 1 << 20) return (b / 1024).toFixed(1) + " KiB";
  return (b / (1 << 20)).toFixed(1) + " MiB";
}

function render(s) {
  $("error").hidden = true;
  $("dash").hidden = false;
  $("sim-banner").hidden = !s.simulated;
  $("title").textContent = s.service + " at " + s.url;
  $("relay").hidden = !s.relay;
  $("kms").hidden = !s.kms;
  if (s.relay) {
    const r = s.relay;
    num("m-connections", r.connections, "connections");
    num("m-connections-total", r.connections_total, "connections-total");
    num("m-delivered", r.delivered, "delivered");
    num("m-mailbox-messages", r.mailbox_messages, "mailbox-messages");
    num("m-mailbox-bytes", r.mailbox_bytes, "mailbox-bytes");
    $("m-mailbox-bytes").textContent = fmtBytes(r.mailbox_bytes);
    const ok = r.attestations.filter(a => a.label === "ok").reduce((n, a) => n + a.value, 0);
    const bad = r.attestations.filter(a => a.label !== "ok").reduce((n, a) => n + a.value, 0);
    $("m-attest").textContent = ok + " / " + bad;
    push("attest", ok + bad); spark("c-attest", "attest");
    table("t-attest", r.attestations);
    table("t-nacks", r.nacks);
    table("t-frames", r.frames);
  }
  if (s.kms) {
    const k = s.kms;
    num("m-keys", k.keys);
    num("m-requests", k.requests.reduce((n, r) => n + r.value, 0), "requests");
    table("t-requests", k.requests);
    const tb = $("t-latency").tBodies[0];
    clear(tb);
    for (const l of k.latency) tb.append(el("tr", {}, el("td", { text: l.operation }), el("td", { class: "num-cell", text: String(l.count) }), el("td", { class: "num-cell", text: (l.mean_seconds * 1000).toFixed(3) + " ms" })));
  }
  const p = s.process;
  $("process").textContent = "goroutines " + p.goroutines + " · resident " + fmtBytes(p.resident_bytes) + (p.start_time ? " · started " + p.start_time : "") + " · fetched " + s.fetched_at;
}

async function poll(addr) {
  const res = await api("/api/status?addr=" + encodeURIComponent(addr));
  polls++;
  $("state").textContent = "refreshed " + polls + " times";
  $("state").dataset.polls = String(polls);
  if (!res.ok) {
    const box = $("error");
    clear(box);
    box.append(el("strong", { text: "Cannot read the metrics: " }), res.body.error || "unknown error");
    box.hidden = false;
    return;
  }
  render(res.body);
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", e => {
    e.preventDefault();
    const addr = $("addr").value.trim();
    if (timer) clearTimeout(timer);
    for (const k of Object.keys(history)) delete history[k];
    polls = 0;
    const gen = ++generation;
    // One request at a time: the next is scheduled when this one ends.
    const loop = async () => {
      await poll(addr);
      if (gen === generation) timer = setTimeout(loop, Number($("interval").value));
    };
    loop();
  });
  const q = new URLSearchParams(location.search).get("addr");
  if (q) { $("addr").value = q; $("watch").click(); }
});
