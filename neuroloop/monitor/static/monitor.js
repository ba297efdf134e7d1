// neuroloop live monitor: a read-only view of the running loop, drawn on plain canvases
// (no library, no network beyond this server). The only thing it can send that reaches the
// loop is the E-STOP. Every frame is acknowledged after it is drawn: the server sends a page
// no more than it can draw, and drops a page that stops acknowledging.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const STATE_COLOURS = ["#d9d9d9", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const SUP_CLASS = {DISARMED: "", ARMED: "ok", STIMULATING: "ok", HOLD: "warn", FAULT: "bad", ESTOP: "bad"};
  let meta = null, ws = null, framesSeen = 0, lastFrameAt = 0, estopSentAt = null;
  const TRACE_S = 5, HIST = 300;
  let traces = null;                       // {raw: [[]], filt: [[]], first, stride}
  const outHist = [], e2eHist = [];

  function colour(i) { return STATE_COLOURS[((i % STATE_COLOURS.length) + STATE_COLOURS.length) % STATE_COLOURS.length]; }
  function name(i) { return meta && i >= 0 && i < meta.intention_names.length ? meta.intention_names[i] : (i < 0 ? "unknown" : String(i)); }
  function ctx(id) { const c = $(id); const g = c.getContext("2d"); g.clearRect(0, 0, c.width, c.height); return [c, g]; }

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(proto + "://" + location.host + "/ws");
    ws.onopen = () => setConn("live", "ok");
    ws.onclose = () => { setConn("disconnected", "bad"); setTimeout(connect, 1000); };
    ws.onerror = () => setConn("error", "bad");
    ws.onmessage = (ev) => {
      let m; try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === "meta") { setMeta(m); }
      else if (m.type === "frame") { try { onFrame(m); } finally { ack(); } }
      else if (m.type === "estop_ack") { onEstopAck(m); }
    };
  }
  function ack() { framesSeen += 1; if (ws && ws.readyState === 1) ws.send(JSON.stringify({type: "ack", n: framesSeen})); }
  function setConn(text, cls) { const e = $("connection"); e.textContent = text; e.className = "pill " + cls; }

  function setMeta(m) {
    meta = m; framesSeen = 0;
    $("scenario").textContent = (m.scenario || "") + (m.fast ? " (simulated clock)" : "");
    traces = {raw: m.channel_names.map(() => []), filt: m.channel_names.map(() => []), first: 0, stride: 1};
    $("signals-note").textContent = m.channel_names.length + " of " + m.n_channels +
      " channels: raw (grey) and " + m.display_band_hz.map((x) => x.toFixed(0)).join("-") + " Hz filtered (blue), last " + TRACE_S + " s";
  }

  function onFrame(f) {
    lastFrameAt = performance.now();
    if (f.cycle === null || f.cycle === undefined) return;
    $("cycle").textContent = f.cycle;
    $("decoded-state").textContent = name(f.state);
    $("decoded-state").style.color = f.state > 0 ? colour(f.state) : "#555";
    $("true-state").textContent = name(f.true_state);
    $("confidence").textContent = f.confidence === null ? "-" : f.confidence.toFixed(3);
    $("e2e-p50").textContent = fmt(f.latency.e2e_p50_us);
    $("e2e-p99").textContent = fmt(f.latency.e2e_p99_us);
    $("compute").textContent = fmt(f.latency.compute_p50_us) + " / " + fmt(f.latency.compute_p99_us);
    $("misses").textContent = f.misses;
    const sup = meta.supervisor_states[f.supervisor_state] || String(f.supervisor_state);
    const se = $("supervisor-state"); se.textContent = sup; se.className = "pill " + (SUP_CLASS[sup] || "");
    if (f.closed) setConn("run ended", "warn");
    pushSamples(f.samples);
    outHist.push(f.outputs); if (outHist.length > HIST) outHist.shift();
    e2eHist.push([f.e2e_us, f.missed]); if (e2eHist.length > HIST) e2eHist.shift();
    drawTraces(); drawProbabilities(f); drawElectrode(f); drawOutputs(); drawFeatures(f); drawLatency();
    for (const text of f.events || []) addEvent(text);
    showEstop(f.estop, sup);
    $("server-stats").textContent = "server: " + f.server.clients + " page(s), " + f.server.frames_sent +
      " frames, " + f.server.dropped_stalled + " stalled page(s) dropped, " + f.server.cycles_skipped + " cycles skipped";
  }
  function fmt(x) { return x === null || x === undefined || Number.isNaN(x) ? "-" : Math.round(x); }

  function pushSamples(s) {
    if (!traces || !s || !s.raw.length) return;
    const keep = Math.ceil(TRACE_S * meta.sampling_rate_hz / s.stride);
    for (let j = 0; j < s.raw.length; j++) {
      const r = traces.raw[j], q = traces.filt[j];
      for (const v of s.raw[j]) r.push(v);
      for (const v of s.filtered[j]) q.push(v);
      if (r.length > keep) r.splice(0, r.length - keep);
      if (q.length > keep) q.splice(0, q.length - keep);
    }
    traces.stride = s.stride;
  }
  function drawSeries(g, xs, ys, x0, y0, w, h, lo, hi, style, n) {
    g.strokeStyle = style; g.beginPath();
    let started = false;
    for (let i = 0; i < ys.length; i++) {
      const v = ys[i]; if (v === null || v === undefined) { started = false; continue; }
      const x = x0 + (xs === null ? i / Math.max(n - 1, 1) : xs[i]) * w;
      const y = y0 + h - (Math.min(Math.max(v, lo), hi) - lo) / (hi - lo || 1) * h;
      if (started) g.lineTo(x, y); else { g.moveTo(x, y); started = true; }
    }
    g.stroke();
  }
  function range(arr) {
    let lo = Infinity, hi = -Infinity;
    for (const v of arr) if (v !== null && Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (!Number.isFinite(lo)) return [0, 1];
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    return [lo, hi];
  }
  function drawTraces() {
    const [c, g] = ctx("traces"); if (!traces) return;
    const n = traces.raw.length, h = c.height / Math.max(n, 1);
    const keep = Math.ceil(TRACE_S * meta.sampling_rate_hz / traces.stride);
    g.font = "11px sans-serif"; g.lineWidth = 1;
    for (let j = 0; j < n; j++) {
      const y0 = j * h, [lo, hi] = range(traces.raw[j]);
      const [flo, fhi] = range(traces.filt[j]);
      const off = keep - traces.raw[j].length;
      const xs = traces.raw[j].map((_, i) => (off + i) / keep);
      drawSeries(g, xs, traces.raw[j], 60, y0 + 2, c.width - 64, h / 2 - 4, lo, hi, "#999", keep);
      drawSeries(g, xs, traces.filt[j], 60, y0 + h / 2, c.width - 64, h / 2 - 4, flo, fhi, "#1f5fbf", keep);
      g.fillStyle = "#333"; g.fillText(meta.channel_names[j], 2, y0 + h / 2);
    }
  }
  function drawProbabilities(f) {
    const [c, g] = ctx("probabilities"); const p = f.probabilities || []; const n = p.length;
    const bw = (c.width - 10) / Math.max(n, 1); g.font = "10px sans-serif";
    for (let i = 0; i < n; i++) {
      const v = p[i] === null ? 0 : p[i];
      g.fillStyle = colour(i); g.fillRect(5 + i * bw + 2, c.height - 30 - v * (c.height - 40), bw - 4, v * (c.height - 40));
      g.fillStyle = i === f.state ? "#000" : "#666";
      g.save(); g.translate(5 + i * bw + bw / 2, c.height - 2); g.fillText(name(i).slice(0, 12), -bw / 2 + 2, 0); g.restore();
    }
  }
  function drawElectrode(f) {
    const [c, g] = ctx("electrode"); const amp = f.amplitude_ma || [];
    const lay = meta.layout; let total = 0; for (const a of amp) if (a < 0) total -= a;
    $("amplitude").textContent = total.toFixed(2);
    $("program").textContent = f.program_id > 0 ? (meta.programs[String(f.program_id)] || ("program " + f.program_id)) +
      (meta.envelopes[String(f.program_id)] ? " (envelope " + meta.envelopes[String(f.program_id)].join("-") + " mA)" : "") : "off";
    $("stim-params").textContent = f.program_id > 0 ? (f.frequency_hz + " Hz, " + f.pulse_width_us + " µs") : "";
    let vmax = 0.5; for (const a of amp) vmax = Math.max(vmax, Math.abs(a));
    const fill = (a) => { const t = Math.max(-1, Math.min(1, a / vmax)); if (Math.abs(a) < 1e-9) return "#fff";
      return t < 0 ? "rgba(33,102,172," + (0.25 + 0.75 * -t) + ")" : "rgba(178,24,43," + (0.25 + 0.75 * t) + ")"; };
    g.font = "10px sans-serif";
    if (!lay) {  // no catalogue layout: contacts in a row
      const w = c.width / Math.max(amp.length, 1);
      amp.forEach((a, i) => { g.fillStyle = fill(a); g.fillRect(i * w + 2, 40, w - 4, 60); g.strokeRect(i * w + 2, 40, w - 4, 60); });
      return;
    }
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const b of lay.bodies) { x0 = Math.min(x0, b.x0); x1 = Math.max(x1, b.x1); y0 = Math.min(y0, b.y0); y1 = Math.max(y1, b.y1); }
    const s = Math.min((c.width - 90) / (x1 - x0), (c.height - 30) / (y1 - y0));
    const X = (x) => 10 + (x - x0) * s, Y = (y) => 20 + (y - y0) * s;
    g.fillStyle = "#555"; g.fillText(lay.name, 4, 12);
    for (const b of lay.bodies) { g.fillStyle = "#e6e6e6"; g.strokeStyle = "#999"; g.fillRect(X(b.x0), Y(b.y0), (b.x1 - b.x0) * s, (b.y1 - b.y0) * s); g.strokeRect(X(b.x0), Y(b.y0), (b.x1 - b.x0) * s, (b.y1 - b.y0) * s); }
    lay.contacts.forEach((k, i) => {
      const a = amp[i] || 0; g.fillStyle = fill(a); g.strokeStyle = "#000";
      if (k.round) { g.beginPath(); g.ellipse(X(k.x), Y(k.y), k.w * s / 2, k.h * s / 2, 0, 0, 2 * Math.PI); g.fill(); g.stroke(); }
      else { g.fillRect(X(k.x - k.w / 2), Y(k.y - k.h / 2), k.w * s, k.h * s); g.strokeRect(X(k.x - k.w / 2), Y(k.y - k.h / 2), k.w * s, k.h * s); }
      g.fillStyle = "#222"; g.fillText(k.name + (Math.abs(a) > 1e-9 ? " " + a.toFixed(2) : ""), X(k.x + k.w / 2) + 2, Y(k.y) + 3);
    });
  }
  function drawOutputs() {
    const [c, g] = ctx("outputs"); const n = meta.n_outputs; if (!n) { g.fillText("this decoder has no continuous outputs", 10, 20); return; }
    const h = c.height / n; g.font = "10px sans-serif";
    for (let j = 0; j < n; j++) {
      const ys = outHist.map((o) => o[j]); const [lo, hi] = range(ys);
      drawSeries(g, null, ys, 0, j * h + 12, c.width, h - 16, lo, hi, colour(j + 1), HIST);
      const last = ys[ys.length - 1];
      g.fillStyle = "#222"; g.fillText(meta.output_names[j] + " [" + (meta.output_units[j] || "") + "] " + (last === null || last === undefined ? "-" : last.toFixed(3)), 2, j * h + 10);
    }
  }
  function drawFeatures(f) {
    const [c, g] = ctx("features"); const v = f.features || []; if (!v.length) return;
    const bands = Math.max(meta.bands_hz.length, 1); const per = Math.ceil(v.length / bands);
    const [lo, hi] = range(v); const cw = c.width / per, ch = (c.height - 12) / bands;
    for (let i = 0; i < v.length; i++) {
      const t = v[i] === null ? 0 : (v[i] - lo) / (hi - lo || 1);
      g.fillStyle = "hsl(" + (240 - 240 * t) + ",70%," + (30 + 40 * t) + "%)";
      g.fillRect((i % per) * cw, Math.floor(i / per) * ch, Math.ceil(cw), Math.ceil(ch));
    }
    $("features-note").textContent = v.length + " values" + (f.features_stride > 1 ? " (every " + f.features_stride + "th)" : "") + ", " + lo.toFixed(2) + ".." + hi.toFixed(2);
  }
  function drawLatency() {
    const [c, g] = ctx("latency"); const ys = e2eHist.map((e) => e[0]);
    const dl = meta.deadline_ms ? meta.deadline_ms * 1000 : null;
    const hi = Math.max(...ys.filter((y) => y !== null), dl ? Math.min(dl, 2 * Math.max(...ys)) : 1, 1);
    drawSeries(g, null, ys, 0, 4, c.width, c.height - 8, 0, hi * 1.1, "#ff7f0e", HIST);
    if (dl && dl <= hi * 1.1) { const y = 4 + (c.height - 8) * (1 - dl / (hi * 1.1)); g.setLineDash([5, 4]); g.strokeStyle = "red"; g.beginPath(); g.moveTo(0, y); g.lineTo(c.width, y); g.stroke(); g.setLineDash([]); }
    g.fillStyle = "red"; e2eHist.forEach((e, i) => { if (e[1]) g.fillRect(i / HIST * c.width, 0, 2, 6); });
    g.fillStyle = "#222"; g.font = "10px sans-serif"; g.fillText("max " + Math.round(Math.max(...ys)) + " µs", 4, 12);
  }
  function addEvent(text) {
    let e; try { e = JSON.parse(text); } catch (x) { e = {kind: "?", detail: text}; }
    const li = document.createElement("li");
    li.textContent = "cycle " + e.cycle + ": " + (e.reason || e.input || e.kind) + (e.contact >= 0 ? " contact " + e.contact : "") + (e.detail ? " — " + e.detail : "") + (e.payload && typeof e.payload === "string" ? " (" + e.payload + ")" : "");
    const list = $("events"); list.insertBefore(li, list.firstChild);
    while (list.children.length > 50) list.removeChild(list.lastChild);
  }
  function showEstop(e, sup) {
    if (!e || (!e.requests && estopSentAt === null)) return;
    const b = $("estop-status"); b.classList.remove("hidden");
    if (e.applied >= e.requests && e.requests > 0) {
      b.textContent = "E-STOP latched at cycle " + e.cycle + " (" + e.latency_ms + " ms from request to zero command" +
        (e.output_zero ? ", output zero" : "") + "); supervisor " + sup + ". Re-arm only from the operator's terminal (type rearm).";
    } else { b.textContent = "E-STOP sent; waiting for the loop to apply it…"; }
  }
  function onEstopAck(m) { $("estop-status").classList.remove("hidden"); }
  function estop() {
    estopSentAt = performance.now();
    const b = $("estop-status"); b.classList.remove("hidden"); b.textContent = "E-STOP sent…";
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({type: "estop"}));
    else fetch("/api/estop", {method: "POST"});  // the socket is down: the same STOP by HTTP
  }
  $("estop").addEventListener("click", estop);
  setInterval(() => { if (lastFrameAt && performance.now() - lastFrameAt > 3000 && ws && ws.readyState === 1) setConn("stale (no frame for 3 s)", "warn"); }, 1000);
  connect();
})();
