// The live status page. Everything shown comes from the agent as JSON and is put into the page with
// textContent / DOM nodes only — never innerHTML — so a hostile name from a device is shown as text.
"use strict";
(function () {
  const app = document.getElementById("app");
  const csrf = app.dataset.csrf;
  const operator = app.dataset.role === "operator";
  const SVG = "http://www.w3.org/2000/svg";
  const cells = new Map();      // resource path -> {value, age, spark}
  const history = new Map();    // resource path -> [[t, v], ...]
  let tracks = {};
  let providers = [];
  let historySeconds = 300;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  function show(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(2);
    if (typeof value === "object" && value.type === "Point" && Array.isArray(value.coordinates))
      return value.coordinates[1].toFixed(5) + ", " + value.coordinates[0].toFixed(5);
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }
  function age(ts) {
    if (!ts) return "";
    const s = Math.max(0, Date.now() / 1000 - ts);
    return s < 60 ? s.toFixed(1) + " s" : s < 3600 ? (s / 60).toFixed(0) + " min" : (s / 3600).toFixed(1) + " h";
  }
  function definitions(target, pairs) {
    target.replaceChildren();
    for (const [k, v, id] of pairs) target.append(el("dt", { text: k }), el("dd", id ? { text: show(v), "data-testid": id } : { text: show(v) }));
  }

  // --- sensors --------------------------------------------------------------------------------------
  function renderSensors() {
    const root = document.getElementById("sensors");
    root.replaceChildren();
    cells.clear();
    for (const p of providers) {
      const table = el("table");
      table.append(el("tr", {}, el("th", { text: "resource" }), el("th", { text: "value" }),
        el("th", { text: "unit" }), el("th", { text: "age" }), el("th", { text: "last minutes" })));
      for (const s of p.services) {
        for (const r of s.resources) {
          if (r.kind === "ACTION") continue;
          const value = el("td", { class: "value", "data-testid": "value-" + r.path });
          if (isFrame(r.value)) frameCell(value, r.value); else value.textContent = show(r.value);
          const ageCell = el("td", { class: "muted", text: age(r.timestamp) });
          const spark = svg("svg", { class: "spark", viewBox: "0 0 100 20", preserveAspectRatio: "none" });
          const row = el("tr", {}, el("td", { text: s.name + "/" + r.name }), value,
            el("td", { text: r.unit || "" }), ageCell, el("td", {}, spark));
          table.append(row);
          cells.set(r.path, { value, age: ageCell, spark, timestamp: r.timestamp });
          drawSpark(r.path);
        }
      }
      const title = el("h3", { text: p.friendlyName + (p.friendlyName !== p.name ? " (" + p.name + ")" : "") });
      root.append(el("div", { class: "provider", "data-testid": "provider-" + p.name }, title, table));
    }
    renderActions();
  }
  function drawSpark(path) {
    const cell = cells.get(path);
    const points = history.get(path);
    if (!cell || !points || points.length < 2) return;
    // The x axis spans what is known, up to the history window: a fresh page still shows a line.
    const now = Date.now() / 1000, from = Math.max(now - historySeconds, points[0][0]);
    const width = Math.max(1, now - from);
    const values = points.map((p) => p[1]);
    const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
    const coords = points.map(([t, v]) =>
      (((t - from) / width) * 100).toFixed(1) + "," + (19 - ((v - lo) / span) * 18).toFixed(1));
    cell.spark.replaceChildren(svg("polyline", { points: coords.join(" ") }));
  }
  function applyValues(updates) {
    for (const u of updates) {
      const cell = cells.get(u.path);
      if (typeof u.value === "number") {
        const points = history.get(u.path) || [];
        points.push([u.timestamp, u.value]);
        const from = Date.now() / 1000 - historySeconds;
        while (points.length && points[0][0] < from) points.shift();
        history.set(u.path, points);
      }
      if (u.path.endsWith("/admin/location") && u.value && u.value.type === "Point") {
        const provider = u.path.split("/")[0];
        (tracks[provider] = tracks[provider] || []).push([u.timestamp, u.value.coordinates]);
        renderPosition();
      }
      if (isFrame(u.value)) frameUpdate(u.path, u.value);
      if (!cell) continue;
      if (isFrame(u.value)) frameCell(cell.value, u.value); else cell.value.textContent = show(u.value);
      cell.timestamp = u.timestamp;
      cell.age.textContent = age(u.timestamp);
      drawSpark(u.path);
    }
  }

  // --- position: the track on a plain coordinate plot (no tile server: the truck may be offline) -------
  function renderPosition() {
    const root = document.getElementById("position");
    const names = Object.keys(tracks).filter((n) => tracks[n].length);
    if (!names.length) return;
    root.replaceChildren();
    for (const name of names) {
      const pts = tracks[name].map((p) => p[1]);
      const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
      const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
      const w = maxX - minX || 1e-4, h = maxY - minY || 1e-4;
      const project = ([x, y]) => [((x - minX) / w) * 90 + 5, 95 - ((y - minY) / h) * 90];
      const plot = svg("svg", { class: "track", viewBox: "0 0 100 100", preserveAspectRatio: "none" });
      plot.append(svg("polyline", { points: pts.map((p) => project(p).map((c) => c.toFixed(2)).join(",")).join(" ") }));
      const [cx, cy] = project(pts[pts.length - 1]);
      plot.append(svg("circle", { cx: cx.toFixed(2), cy: cy.toFixed(2), r: "1.8" }));
      const last = pts[pts.length - 1];
      root.append(el("p", { class: "muted", "data-testid": "position-" + name,
        text: name + ": " + last[1].toFixed(5) + "° N, " + last[0].toFixed(5) + "° E" }), plot);
    }
  }

  // --- status frames --------------------------------------------------------------------------------
  function renderStatus(s) {
    const badge = document.getElementById("health");
    badge.textContent = s.health.status;
    badge.className = "badge " + s.health.status;
    const ks = s.identity.keystore;
    definitions(document.getElementById("identity"), [
      ["device", s.identity.device_id], ["agent", s.identity.version], ["profile", s.identity.profile],
      ["keystore", ks.configured === false ? "not configured" : ks.kind],
      ["identity key", ks.fingerprint || "—"]]);
    const warning = document.getElementById("keystore-warning");
    if (ks.configured === false || ks.insecure) {
      warning.hidden = false;
      warning.textContent = ks.insecure
        ? "Insecure software keystore in use: keys are files on disk, not in the TPM."
        : "No keystore configured: published data is not signed.";
    } else warning.hidden = true;

    const conn = document.getElementById("connections");
    conn.replaceChildren();
    if (!s.connections.publishers.length) conn.append(el("p", { class: "muted", text: "SOXFire: not configured. MQTT: not configured." }));
    for (const p of s.connections.publishers) {
      conn.append(el("dl", {}, el("dt", { text: p.name }), el("dd", { class: "state-" + p.state, text: p.state + (p.detail ? " — " + p.detail : "") }),
        el("dt", { text: "last ack" }), el("dd", { text: p.last_ack ? age(p.last_ack) + " ago" : "never" }),
        el("dt", { text: "pending" }), el("dd", { text: show(p.depth) + " (lag " + show(p.lag_s) + " s)" })));
    }
    const o = s.connections.outbox;
    if (o) conn.append(el("dl", { "data-testid": "outbox" }, el("dt", { text: "outbox" }), el("dd", { text: o.records + " records, " + (o.bytes / 1024).toFixed(0) + " KiB" }),
      el("dt", { text: "oldest" }), el("dd", { text: o.oldest_age_s ? o.oldest_age_s.toFixed(0) + " s" : "—" }),
      el("dt", { text: "evicted" }), el("dd", { text: String(o.evicted) })));

    renderPrivacy(s.privacy);

    const sys = s.system;
    definitions(document.getElementById("system"), [
      ["CPU", sys.cpu_percent == null ? "—" : sys.cpu_percent + " %"], ["agent CPU", sys.agent_cpu_percent == null ? "—" : sys.agent_cpu_percent + " %"],
      ["memory", sys.memory ? sys.memory.used_percent + " % of " + sys.memory.total_mib + " MiB" : "—"],
      ["agent memory", sys.agent_rss_mib + " MiB"], ["temperature", sys.temperature_c == null ? "no sensor" : sys.temperature_c + " °C"],
      ["disk", sys.disk ? sys.disk.free_gib + " GiB free" : "—"], ["uptime", age(Date.now() / 1000 - sys.uptime_s)],
      ["agent uptime", age(Date.now() / 1000 - sys.agent_uptime_s)]]);

    const comps = document.getElementById("components");
    comps.replaceChildren(el("tr", {}, el("th", { text: "component" }), el("th", { text: "state" }), el("th", { text: "restarts" })));
    for (const [name, c] of Object.entries(s.components)) {
      comps.append(el("tr", { "data-testid": "component-" + name }, el("td", { text: name }),
        el("td", { class: "state-" + c.state, text: c.state + (c.detail ? " — " + c.detail : "") }), el("td", { text: String(c.restarts) })));
    }
    document.getElementById("logs").textContent = s.logs.join("\n");
    for (const cell of cells.values()) cell.age.textContent = age(cell.timestamp);
  }

  // --- privacy: each camera's anonymizer and its latest anonymized frame -----------------------------
  // The JSON never holds the image (the server swaps a frame record for a summary with a URL): the
  // image is fetched on its own, once per new frame, one request at a time, however fast frames come.
  const FRAME_FORMAT = "msec-frame/1";
  const cameras = new Map();    // camera id -> {root, empty, caption, state, facts, frame, load}
  const framePaths = new Map(); // frame resource path -> camera id
  function isFrame(value) { return value !== null && typeof value === "object" && value.format === FRAME_FORMAT; }
  // Double-buffered: a new frame loads in a detached image that replaces the shown one once it has
  // loaded, so the page never shows a blank or half-loaded frame; one request at a time, the newest wins.
  // A frame that fails to load leaves the last good one in place (it is anonymized too, just older).
  function frameLoader(attrs, first, onShown) {
    let current = first, shown = null, wanted = null, wantedFrame = null, busy = false;
    function next() {
      if (busy || wanted === null || wanted === shown) return;
      busy = true;
      const target = wanted, frame = wantedFrame, img = el("img", attrs);
      img.onload = () => { busy = false; shown = target; current.replaceWith(img); current = img; onShown(frame); next(); };
      img.onerror = () => { busy = false; shown = target; next(); };
      img.src = target;  // the seq is the cache-buster: each new frame is a new URL
    }
    return (frame) => {
      if (!isFrame(frame) || !frame.url) return;
      wanted = frame.url + "?seq=" + encodeURIComponent(frame.seq);
      wantedFrame = frame;
      next();
    };
  }
  function cameraCard(c) {
    const attrs = { alt: "latest anonymized frame of " + c.camera, "data-testid": "frame-" + c.camera };
    const img = el("img", { ...attrs, hidden: "" });  // a placeholder until the first frame has loaded
    const empty = el("p", { class: "muted", text: "No anonymized frame yet." });
    const caption = el("figcaption", { class: "muted" });
    const state = el("p", { "data-testid": "anonymizer-state-" + c.camera });
    const facts = el("dl", { "data-testid": "anonymizer-" + c.camera });
    const root = el("div", { class: "camera", "data-testid": "camera-" + c.camera },
      el("h3", { text: c.camera }), state, el("figure", { class: "frame" }, img, empty, caption), facts);
    const card = { root, empty, caption, state, facts, frame: null, shown: null };
    card.load = frameLoader(attrs, img, (frame) => { card.shown = frame; empty.hidden = true; describeFrame(card); });
    return card;
  }
  function describeFrame(card) {  // the caption tells of the frame on screen, not of one still loading
    const f = card.shown;
    if (!f) return;
    card.caption.textContent = "#" + show(f.seq) + " · " + show(f.width) + "×" + show(f.height) + " · " +
      show(f.detections) + " detection" + (f.detections === 1 ? "" : "s") + " · " +
      show(100 * f.masked_ratio) + " % masked · " + age(f.ts) + " ago";
  }
  function showFrame(card, frame) {
    if (!isFrame(frame)) return;
    card.frame = frame;
    card.load(frame);
  }
  function renderPrivacy(p) {
    const root = document.getElementById("privacy");
    if (p.configured === false) {
      cameras.clear();
      root.replaceChildren(el("p", { class: "muted", text: "Camera anonymizer: not configured." }));
      return;
    }
    const ids = p.cameras.map((c) => c.camera);
    if (ids.join("\n") !== [...cameras.keys()].join("\n")) {  // the set of cameras changed: rebuild
      cameras.clear();
      framePaths.clear();
      root.replaceChildren();
      for (const c of p.cameras) { const card = cameraCard(c); cameras.set(c.camera, card); root.append(card.root); }
    }
    for (const c of p.cameras) {
      const card = cameras.get(c.camera);
      framePaths.set(c.path, c.camera);
      card.state.className = "state-" + (c.state === "ok" ? "ok" : c.state === "degraded" ? "degraded" : "failed");
      card.state.textContent = c.availability;
      const reasons = Object.entries(c.dropped).map(([r, n]) => r + " " + n).join(", ");
      definitions(card.facts, [
        ["fps", c.fps, "fps-" + c.camera], ["detections", c.frame ? c.frame.detections : null],
        ["frames anonymized", c.frames_out],
        ["dropped", c.dropped_total + (reasons ? " (" + reasons + ")" : ""), "dropped-" + c.camera],
        ["camera dropped", c.camera_dropped], ["p95 latency", c.p95_latency_ms == null ? null : c.p95_latency_ms + " ms"],
        ["inpainting", Object.keys(c.inpainters).join(", ") || null]]);
      // The live stream may already have shown a newer frame than this status frame knows of.
      if (c.frame && (!card.frame || c.frame.ts > card.frame.ts)) showFrame(card, c.frame);
      describeFrame(card);  // the age moves on
    }
  }
  function frameUpdate(path, value) {
    const card = cameras.get(framePaths.get(path));
    if (card) showFrame(card, value);
  }
  function frameCell(td, value) {
    // In the sensors table a frame is a thumbnail linking to the image, never its base64 as text.
    if (!isFrame(value) || !value.url) { td.thumb = null; td.textContent = show(value); return; }
    if (!td.thumb) {
      const attrs = { class: "thumb", alt: "anonymized frame" };
      const img = el("img", attrs);  // sized by CSS: no layout shift when the first frame arrives
      td.thumb = { link: el("a", { target: "_blank", rel: "noopener" }, img), label: el("span"), load: frameLoader(attrs, img, () => {}) };
      td.replaceChildren(td.thumb.link, td.thumb.label);
    }
    td.thumb.link.setAttribute("href", value.url);
    td.thumb.label.textContent = " #" + value.seq;
    td.thumb.load(value);
  }

  // --- actions (operators only; each asks for confirmation) -----------------------------------------
  async function post(url, body) {
    const response = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body || {}) });
    const data = await response.json().catch(() => ({ error: "unreadable answer" }));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }
  function result(text, ok) {
    const out = document.getElementById("action-result");
    out.className = ok ? "result-ok" : "result-bad";
    out.textContent = text;
  }
  function coerce(type, raw) {
    if (type === "boolean") return raw === "true" || raw === "on" || raw === "1";
    if (["int", "long", "float", "double"].includes(type)) return Number(raw);
    return raw;
  }
  function renderActions() {
    const root = document.getElementById("actions");
    if (!root) return;
    root.replaceChildren();
    for (const p of providers) for (const s of p.services) for (const r of s.resources) {
      // Admin properties are configuration, not depot actions: only outputs and settable states here.
      if ((r.kind !== "ACTION" && !r.settable) || s.name === "admin") continue;
      const row = el("div", { class: "action", "data-testid": "action-" + r.path }, el("span", { class: "name", text: p.name + "/" + s.name + "/" + r.name }));
      const inputs = [];
      const fields = r.kind === "ACTION" ? r.parameters : [{ name: "value", type: r.type }];
      for (const f of fields) {
        const input = f.type === "boolean" ? el("select", { "aria-label": f.name }, el("option", { value: "true", text: "true" }), el("option", { value: "false", text: "false" }))
          : el("input", { "aria-label": f.name, placeholder: f.name + " (" + f.type + ")" });
        inputs.push([f, input]);
        row.append(input);
      }
      const button = el("button", { type: "button", text: r.kind === "ACTION" ? "Run" : "Set" });
      button.addEventListener("click", async () => {
        const params = Object.fromEntries(inputs.map(([f, i]) => [f.name, coerce(f.type, i.value)]));
        const what = r.path + " " + JSON.stringify(params);
        if (!window.confirm((r.kind === "ACTION" ? "Run " : "Set ") + what + "?")) return;
        const target = { provider: p.name, service: s.name, resource: r.name };
        try {
          if (r.kind === "ACTION") result("done: " + show((await post("/status/act", { ...target, params })).result), true);
          else result("set: " + show((await post("/status/set", { ...target, value: params.value })).value), true);
        } catch (error) { result(String(error.message), false); }
      });
      row.append(button);
      root.append(row);
    }
  }
  if (operator) {
    document.getElementById("selftest").addEventListener("click", async () => {
      if (!window.confirm("Run the self-test?")) return;
      try {
        const r = await post("/status/selftest");
        result((r.ok ? "self-test passed: " : "self-test FAILED: ") + r.checks.map((c) => (c.ok ? "✓ " : "✗ ") + c.name + " (" + c.detail + ")").join("; "), r.ok);
      } catch (error) { result(String(error.message), false); }
    });
    document.getElementById("republish").addEventListener("click", async () => {
      if (!window.confirm("Re-publish the device meta to every publisher?")) return;
      try { result("re-published: " + (await post("/status/republish")).republished.join(", "), true); }
      catch (error) { result(String(error.message), false); }
    });
  }

  // --- start: one snapshot with history, then the live stream ---------------------------------------
  async function start() {
    const response = await fetch("/status/data", { credentials: "same-origin" });
    if (response.status === 401) { window.location = "/login"; return; }
    const data = await response.json();
    for (const [path, points] of Object.entries(data.history)) history.set(path, points);
    tracks = data.tracks;
    providers = data.providers;
    renderSensors();
    renderPosition();
    renderStatus(data.status);
    const events = new EventSource("/status/events");
    events.addEventListener("values", (e) => applyValues(JSON.parse(e.data)));
    events.addEventListener("providers", (e) => { providers = JSON.parse(e.data); renderSensors(); });
    events.addEventListener("status", (e) => renderStatus(JSON.parse(e.data)));
  }
  start();
})();
