// edgeinspect review page. The list comes from /api/captures (filters as query parameters); the
// editor draws the stored frame with the mask in red on one canvas. The mask itself lives in an
// offscreen canvas at the frame's own size (white = defect), so painting and erasing never lose
// resolution however the page scales the view; "Save" sends it as a black/white PNG.

const $ = (id) => document.getElementById(id);
const state = {
  items: [],
  current: null, // the selected list item
  image: null, // ImageBitmap of the frame
  modelMask: null, // ImageBitmap of the model's mask (null when it reported none)
  mask: document.createElement("canvas"), // the mask being edited, frame-sized
  last: null, // previous pointer position while a stroke is drawn
};

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function banner(message) {
  $("banner").textContent = message || "";
  $("banner").hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : response.statusText;
    throw new Error(body && body.hint ? `${detail} (${body.hint})` : detail);
  }
  return body;
}

async function bitmap(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) return null;
  return createImageBitmap(await response.blob());
}

// --- list ---------------------------------------------------------------------------------------
function query() {
  const params = new URLSearchParams();
  if ($("f-line").value) params.set("line", $("f-line").value);
  if ($("f-verdict").value) params.set("verdict", $("f-verdict").value);
  params.set("min_score", $("f-min").value || "0");
  params.set("max_score", $("f-max").value || "1");
  if ($("f-disagree").checked) params.set("disagreement", "true");
  if ($("f-unreviewed").checked) params.set("unreviewed", "true");
  return params.toString();
}

async function loadList() {
  try {
    const body = await api(`/api/captures?${query()}`);
    state.items = body.items;
    renderLines(body.lines);
    renderList();
    renderExport(body.export);
    $("count").textContent = `${body.items.length} of ${body.total} captures`;
    banner("");
  } catch (err) {
    banner(`Cannot list the captures: ${err.message}`);
  }
}

function renderLines(lines) {
  const select = $("f-line");
  const chosen = select.value;
  const known = [...select.options].map((o) => o.value);
  for (const line of lines) if (!known.includes(line)) select.append(el("option", { value: line }, line));
  select.value = chosen;
}

function renderExport(summary) {
  $("export").textContent = `Dataset ${summary.dir}: ${summary.reviewed} reviewed, ${summary.defective} defective`;
}

function renderList() {
  const body = $("list-body");
  body.replaceChildren();
  if (!state.items.length) {
    const row = el("tr");
    row.append(el("td", { colspan: "6", class: "empty" }, "No capture matches."));
    body.append(row);
    return;
  }
  for (const item of state.items) {
    const row = el("tr", { "data-key": item.key, "aria-selected": String(state.current?.key === item.key) });
    const open = el("button", { type: "button", "data-frame": item.frame_id }, item.frame_id);
    open.addEventListener("click", () => select(item.key));
    row.append(el("td"), el("td", {}, item.line), el("td", { class: `v-${item.verdict}` }, item.verdict),
      el("td", {}, item.score.toFixed(3)), el("td", {}, item.reasons.join(", ")),
      el("td", { class: item.review ? "reviewed" : "" }, item.review ? `✓ ${item.review.label}` : "—"));
    row.firstChild.append(open);
    body.append(row);
  }
}

// --- editor -------------------------------------------------------------------------------------
async function select(key) {
  try {
    const item = await api(`/api/captures/${key}`);
    const image = await bitmap(`/api/captures/${key}/image`);
    const modelMask = item.has_mask ? await bitmap(`/api/captures/${key}/mask`) : null;
    if (!image) throw new Error("the frame could not be loaded");
    state.current = item;
    state.image = image;
    state.modelMask = modelMask;
    resetMask();
    const label = item.review ? item.review.label : item.verdict === "defect" ? "defect" : "ok";
    $(`label-${label}`).checked = true;
    showDetail(item);
    $("save").disabled = false;
    $("saved").textContent = item.review ? `Reviewed before by ${item.review.reviewer}: ${item.review.label}` : "";
    for (const row of $("list-body").rows) row.setAttribute("aria-selected", String(row.dataset.key === key));
    draw();
  } catch (err) {
    banner(`Cannot open ${key}: ${err.message}`);
  }
}

function showDetail(item) {
  $("editing").textContent = `${item.frame_id} (line ${item.line}, ${item.time.replace("T", " ").slice(0, 19)} UTC)`;
  $("d-verdict").textContent = item.verdict;
  $("d-verdict").className = `v-${item.verdict}`;
  $("d-score").textContent = item.score.toFixed(3);
  $("d-reasons").textContent = item.reasons.join(", ");
  const preds = $("preds-body");
  preds.replaceChildren();
  for (const p of item.result.predictions || []) {
    const row = el("tr");
    row.append(el("td", {}, `${p.model}:${p.version}`), el("td", {}, p.role), el("td", {}, p.score.toFixed(3)),
      el("td", { class: p.label === "defect" ? "v-defect" : "" }, p.label));
    preds.append(row);
  }
}

/** The mask back to what the model reported (white where its PNG is bright, transparent elsewhere). */
function resetMask() {
  const { width, height } = state.image;
  const mask = state.mask;
  mask.width = width;
  mask.height = height;
  const ctx = mask.getContext("2d", { willReadFrequently: true });
  ctx.clearRect(0, 0, width, height);
  if (!state.modelMask) return;
  ctx.drawImage(state.modelMask, 0, 0, width, height);
  const pixels = ctx.getImageData(0, 0, width, height);
  const data = pixels.data;
  for (let i = 0; i < data.length; i += 4) {
    const on = data[i] >= 128;
    data[i] = data[i + 1] = data[i + 2] = 255;
    data[i + 3] = on ? 255 : 0;
  }
  ctx.putImageData(pixels, 0, 0);
}

function draw() {
  if (!state.image) return;
  const canvas = $("canvas");
  const { width, height } = state.image;
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  fit(canvas);
  const ctx = canvas.getContext("2d");
  ctx.globalAlpha = 1;
  ctx.globalCompositeOperation = "source-over";
  ctx.drawImage(state.image, 0, 0);
  const tint = document.createElement("canvas");
  tint.width = width;
  tint.height = height;
  const tctx = tint.getContext("2d");
  tctx.drawImage(state.mask, 0, 0);
  tctx.globalCompositeOperation = "source-in";
  tctx.fillStyle = "#ff2a1f";
  tctx.fillRect(0, 0, width, height);
  ctx.globalAlpha = 0.55;
  ctx.drawImage(tint, 0, 0);
  ctx.globalAlpha = 1;
}

/** Scale the canvas's box to fill its frame, keeping the aspect ratio (small frames are enlarged). */
function fit(canvas) {
  const wrap = canvas.parentElement.getBoundingClientRect();
  const scale = Math.min((wrap.width - 8) / canvas.width, (wrap.height - 8) / canvas.height);
  canvas.style.width = `${Math.floor(canvas.width * scale)}px`;
  canvas.style.height = `${Math.floor(canvas.height * scale)}px`;
}

function framePoint(event) {
  const canvas = $("canvas");
  const rect = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left) * canvas.width) / rect.width,
    y: ((event.clientY - rect.top) * canvas.height) / rect.height,
  };
}

function stroke(from, to) {
  const ctx = state.mask.getContext("2d");
  const canvas = $("canvas");
  const scale = canvas.width / canvas.getBoundingClientRect().width; // brush size is in screen pixels
  ctx.globalCompositeOperation = $("tool-erase").checked ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = "#fff";
  ctx.lineWidth = Number($("brush").value) * scale;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
  draw();
}

function onPointerDown(event) {
  if (!state.image) return;
  event.preventDefault();
  $("canvas").setPointerCapture(event.pointerId);
  state.last = framePoint(event);
  stroke(state.last, state.last);
  if ($("tool-paint").checked) $("label-defect").checked = true; // painting a defect makes it one
}

function onPointerMove(event) {
  if (!state.last) return;
  const point = framePoint(event);
  stroke(state.last, point);
  state.last = point;
}

function onPointerUp() {
  state.last = null;
}

function maskDataUrl() {
  const out = document.createElement("canvas");
  out.width = state.mask.width;
  out.height = state.mask.height;
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.drawImage(state.mask, 0, 0);
  return out.toDataURL("image/png");
}

async function save() {
  if (!state.current) return;
  const label = $("label-defect").checked ? "defect" : "ok";
  $("save").disabled = true;
  try {
    const saved = await api(`/api/captures/${state.current.key}/review`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ label, mask: label === "defect" ? maskDataUrl() : null }),
    });
    $("saved").textContent = `Saved as ${label} (dataset image ${saved.number})`;
    banner("");
    await loadList();
  } catch (err) {
    $("saved").textContent = "";
    banner(`Not saved: ${err.message}`);
  } finally {
    $("save").disabled = false;
  }
}

function init() {
  // decisions are recorded under the signed-in name; the page only shows it
  api("/api/whoami").then((me) => { $("reviewer").textContent = me.reviewer; }).catch(() => {});
  for (const id of ["f-line", "f-verdict", "f-min", "f-max", "f-disagree", "f-unreviewed"]) {
    $(id).addEventListener("change", loadList);
  }
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); loadList(); });
  $("refresh").addEventListener("click", async () => { await api("/api/refresh", { method: "POST" }); loadList(); });
  const canvas = $("canvas");
  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  $("brush").addEventListener("input", () => { $("brush-value").textContent = `${$("brush").value} px`; });
  $("clear").addEventListener("click", () => {
    state.mask.getContext("2d").clearRect(0, 0, state.mask.width, state.mask.height);
    draw();
  });
  $("reset").addEventListener("click", () => { if (state.image) { resetMask(); draw(); } });
  $("save").addEventListener("click", save);
  window.addEventListener("resize", draw);
  loadList();
}

init();
