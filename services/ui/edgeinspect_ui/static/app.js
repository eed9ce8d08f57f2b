// edgeinspect live page. Updates arrive by Server-Sent Events (/api/stream); the newest result is kept
// and drawn on the next animation frame, and while one frame's images load, newer results replace
// the pending one: the page skips frames rather than lagging behind the line.

import { LatencyChart } from "./chart.js";
import { loadBitmap, paint, paintThumb, release } from "./render.js";
import { startLineIo, wireSearch } from "./lineio.js";
import { banner, connection, el, fmtMs, fmtTime, renderLines, renderModels, renderStats } from "./panels.js";

const $ = (id) => document.getElementById(id);
const STRIP_MAX = 12;
const VERDICTS = {
  ok: { text: "OK", icon: "✓" },
  defect: { text: "DEFECT", icon: "✗" },
  error: { text: "ERROR", icon: "!" },
  no_model: { text: "WAITING FOR A MODEL", icon: "…" },
};

const state = {
  line: null,
  source: null,
  pending: null, // newest result not drawn yet
  loading: false, // a frame's images are being fetched
  queued: false, // a requestAnimationFrame is scheduled
  shown: null, // { result, frame, mask } on the canvas
  lastVerdict: null,
  defects: [], // newest first: { result, frame, mask }
  redisDown: false,
  serverDown: false,
  charted: null, // id of the newest result in the latency chart (a reconnect resends the latest)
  models: null, // the last model table (its thresholds are per line)
};
const chart = new LatencyChart($("latency"));

// --- live frame ---------------------------------------------------------------------------------
/** Stream entry ids ("ms-seq") in order: true when a is newer than b. */
function newer(a, b) {
  if (!b) return true;
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am > bm || (am === bm && as > bs);
}

function onResult(result) {
  if (state.shown && state.shown.result.id === result.id) return;
  if (newer(result.id, state.charted)) {
    state.charted = result.id;
    if (result.verdict === "ok" || result.verdict === "defect") chart.push(result.e2e_ms);
  }
  state.pending = result;
  schedule();
}

function schedule() {
  if (state.queued || state.loading || !state.pending) return;
  state.queued = true;
  requestAnimationFrame(drawLatest);
}

async function drawLatest() {
  state.queued = false;
  const result = state.pending;
  state.pending = null;
  if (!result || result.line !== state.line) return;
  state.loading = true;
  try {
    const [frame, mask] = await Promise.all([loadBitmap(result.frame_url), loadBitmap(result.mask_url)]);
    if (result.line !== state.line) {
      release(frame);
      release(mask);
      return;
    }
    if (state.shown) {
      release(state.shown.frame);
      release(state.shown.mask);
    }
    state.shown = { result, frame, mask };
    repaint();
    showVerdict(result);
  } finally {
    state.loading = false;
    schedule();
  }
}

function maskOptions() {
  return { showMask: $("mask-toggle").checked, opacity: Number($("mask-opacity").value) / 100 };
}

function repaint() {
  if (!state.shown) return;
  const { result, frame, mask } = state.shown;
  const canvas = $("frame");
  const drawn = paint(canvas, frame, mask, maskOptions());
  canvas.dataset.frameId = result.frame_id;
  canvas.dataset.mask = drawn ? "shown" : mask ? "hidden" : "none";
  canvas.dataset.frame = frame ? "shown" : "missing";
  const where = result.source ? ` · ${result.source}` : "";
  $("frame-caption").textContent = `${fmtTime(result.ts_ns)} · frame ${result.frame_id}${where}`;
}

function showVerdict(result) {
  const look = VERDICTS[result.verdict] || VERDICTS.error;
  const box = $("verdict");
  box.className = `verdict verdict-${result.verdict}`;
  box.dataset.verdict = result.verdict;
  box.dataset.frameId = result.frame_id;
  box.querySelector(".verdict-icon").textContent = look.icon;
  $("verdict-text").textContent = look.text;
  if (state.lastVerdict !== result.verdict) {
    $("verdict-announce").textContent = `Verdict ${look.text}`;
    state.lastVerdict = result.verdict;
  }
  $("score").textContent = result.score.toFixed(3);
  $("e2e").textContent = fmtMs(result.e2e_ms);
  const shortId = result.frame_id.length > 12 ? `${result.frame_id.slice(0, 10)}…` : result.frame_id;
  $("frame-id").textContent = shortId;
  $("frame-id").title = result.frame_id;
  $("part-id").textContent = result.part_id || "—";
  const rows = result.predictions.map((p) => {
    const tr = el("tr");
    tr.append(
      el("td", `${p.model} v${p.version}`),
      el("td", p.role),
      el("td", p.score.toFixed(3)),
      el("td", p.threshold.toFixed(3)),
      el("td", p.label === "defect" ? "defect" : "ok", p.label === "defect" ? "label-defect" : ""),
    );
    return tr;
  });
  if (result.verdict === "error" || result.verdict === "no_model") {
    const tr = el("tr");
    const td = el("td", result.error || "the frame could not be inspected");
    td.colSpan = 5;
    tr.append(td);
    rows.push(tr);
  }
  $("preds-body").replaceChildren(...rows);
}

// --- defect strip -------------------------------------------------------------------------------
function addDefect(result, redraw = true) {
  if (result.line !== state.line || state.defects.some((d) => d.result.id === result.id)) return;
  const item = { result, frame: null, mask: null };
  state.defects.unshift(item);
  while (state.defects.length > STRIP_MAX) {
    const old = state.defects.pop();
    release(old.frame);
    release(old.mask);
  }
  if (redraw) renderStrip();
  Promise.all([loadBitmap(result.frame_url), loadBitmap(result.mask_url)]).then(([frame, mask]) => {
    item.frame = frame;
    item.mask = mask;
    const canvas = document.querySelector(`canvas[data-result="${CSS.escape(result.id)}"]`);
    if (canvas) paintThumb(canvas, frame, mask, maskOptions().opacity);
  });
}

function renderStrip() {
  const items = state.defects.map((item) => {
    const { result } = item;
    const li = el("li");
    const button = el("button");
    button.type = "button";
    button.setAttribute("aria-label", `Defect at ${fmtTime(result.ts_ns)}, score ${result.score.toFixed(3)}: open full size`);
    const canvas = el("canvas");
    canvas.width = 128;
    canvas.height = 96;
    canvas.dataset.result = result.id;
    paintThumb(canvas, item.frame, item.mask, maskOptions().opacity);
    const meta = el("span", null, "meta");
    meta.append(el("span", fmtTime(result.ts_ns)), el("span", result.score.toFixed(3)));
    button.append(canvas, meta);
    button.addEventListener("click", () => openDefect(item));
    li.append(button);
    return li;
  });
  $("defect-strip").replaceChildren(...items);
  $("defect-strip").dataset.count = String(items.length);
  $("defects-empty").hidden = items.length > 0;
}

function openDefect(item) {
  const { result } = item;
  paint($("zoom-canvas"), item.frame, item.mask, { ...maskOptions(), showMask: true });
  $("zoom-h").textContent = `Defect — frame ${result.frame_id}`;
  const models = result.predictions.map((p) => `${p.model} ${p.score.toFixed(3)} (threshold ${p.threshold.toFixed(3)})`);
  $("zoom-caption").textContent = `${fmtTime(result.ts_ns)} · score ${result.score.toFixed(3)} · ${models.join(" · ")}`;
  $("zoom").showModal();
}

// --- connection ---------------------------------------------------------------------------------
function updateBanner() {
  if (state.serverDown) banner("Lost the connection to the UI server — reconnecting…");
  else if (state.redisDown) banner("Redis is unreachable — reconnecting. The page updates again as soon as it is back.");
  else banner(null);
}

function connect() {
  if (state.source) state.source.close();
  const source = new EventSource(`/api/stream?line=${encodeURIComponent(state.line)}`);
  state.source = source;
  const on = (kind, handler) => source.addEventListener(kind, (ev) => handler(JSON.parse(ev.data)));
  on("result", onResult);
  on("defect", (r) => addDefect(r));
  on("defects", (list) => {
    for (const r of [...list].reverse()) addDefect(r, false);
    renderStrip();
  });
  on("stats", (s) => {
    if (s.line !== state.line) return;
    renderStats(s);
    chart.setP50(s.e2e_p50_ms);
  });
  on("models", (table) => {
    state.models = table;
    renderModels(table, state.line);
  });
  on("lines", (l) => renderLines(l.lines, state.line, pickLine));
  on("status", (s) => {
    state.redisDown = s.redis === "down";
    updateBanner();
  });
  source.onopen = () => {
    state.serverDown = false;
    connection("live", "Live");
    updateBanner();
  };
  source.onerror = () => {
    state.serverDown = true;
    connection("down", "Reconnecting…");
    updateBanner();
    if (source.readyState === EventSource.CLOSED && state.source === source) setTimeout(connect, 3000);
  };
}

function pickLine(line) {
  if (line === state.line) return;
  state.line = line;
  const url = new URL(window.location.href);
  url.searchParams.set("line", line);
  window.history.replaceState(null, "", url);
  state.pending = null;
  if (state.models) renderModels(state.models, line);
  state.defects = [];
  state.charted = null;
  renderStrip();
  chart.reset();
  seedChart();
  connect();
}

async function seedChart() {
  const line = state.line;
  try {
    const response = await fetch(`/api/results/recent?line=${encodeURIComponent(line)}&limit=120`);
    if (!response.ok) return;
    const results = await response.json();
    if (line !== state.line || chart.values.length > 0 || results.length === 0) return; // stream was first
    state.charted = results[0].id;
    chart.reset(results.filter((r) => r.verdict === "ok" || r.verdict === "defect").map((r) => r.e2e_ms).reverse());
  } catch (err) {
    /* the live stream fills the chart anyway */
  }
}

async function start() {
  $("mask-toggle").addEventListener("change", repaint);
  $("mask-opacity").addEventListener("input", () => {
    $("mask-opacity-value").textContent = `${$("mask-opacity").value} %`;
    repaint();
  });
  const asked = new URL(window.location.href).searchParams.get("line");
  let lines = { lines: [], default: asked || "line-1" };
  try {
    const response = await fetch("/api/lines");
    if (response.ok) lines = await response.json();
  } catch (err) {
    /* the stream sends the line list once the server answers */
  }
  state.line = asked || lines.default;
  renderLines(lines.lines, state.line, pickLine);
  renderStrip();
  chart.draw();
  seedChart();
  connect();
  startLineIo(() => state.line);
  wireSearch(() => state.line);
}

start();
