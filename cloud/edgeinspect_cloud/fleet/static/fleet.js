// The fleet page: polls /api/fleet and renders it with DOM calls only (no innerHTML, so nothing from
// the database is ever parsed as HTML). Bar widths are set through the CSSOM, which the page's
// Content-Security-Policy (style-src 'self') allows.
const REFRESH_MS = 2000;
const SEGMENTS = ["SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "IN_PROGRESS", "QUEUED", "CANCELED", "REMOVED"];
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function ago(ts) {
  if (ts == null) return "never";
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s >= 86400) return `${Math.floor(s / 86400)}d ago`;
  if (s >= 3600) return `${Math.floor(s / 3600)}h ago`;
  if (s >= 60) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s)}s ago`;
}

function versionsText(versions) {
  return Object.entries(versions).map(([v, n]) => `${v} ×${n}`).join(", ") || "-";
}

function renderSummary(data) {
  const cards = [["Devices", data.counts.devices], ["Online (15 min)", data.counts.online],
                 ["Groups", data.counts.groups], ["Rollouts in progress", data.counts.rolloutsInProgress]];
  $("summary").replaceChildren(...cards.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
}

function waveRow(wave) {
  const bar = el("div", { class: "bar", role: "img",
    "aria-label": `wave ${wave.wave}: ${wave.SUCCEEDED} of ${wave.size} succeeded` });
  for (const status of SEGMENTS) {
    if (!wave[status]) continue;
    const seg = el("span", { class: `seg-${status}`, title: `${status} ${wave[status]}` });
    seg.style.width = `${(100 * wave[status]) / wave.size}%`;
    bar.append(seg);
  }
  const counts = SEGMENTS.concat(["SCHEDULED"]).filter((s) => wave[s]).map((s) => `${s.toLowerCase()} ${wave[s]}`);
  return el("div", { class: "wave", "data-wave": wave.wave }, el("span", {}, `wave ${wave.wave}`), bar,
            el("span", { class: "counts" }, `${wave.size} · ${counts.join(", ")}`));
}

function renderRollouts(data) {
  const boxes = data.rollouts.map((r) => {
    const box = el("article", { class: "rollout", "data-job": r.jobId },
      el("h3", {}, `${r.jobId} · ${r.model} · `, el("span", { class: `status ${r.status}` }, r.status),
         ` · wave ${r.releasedWave}/${r.waves.length}`),
      ...r.waves.map(waveRow));
    if (r.reason) box.append(el("p", { class: "reason" }, r.reason));
    return box;
  });
  $("rollouts").replaceChildren(...boxes);
  $("rollouts-msg").textContent = boxes.length ? "" : "No rollouts yet: deploy with `edgeinspect deploy`.";
}

function renderTables(data) {
  $("versions").tBodies[0].replaceChildren(...Object.entries(data.versions).map(([v, n]) =>
    el("tr", {}, el("td", {}, v), el("td", { class: "num" }, n))));
  $("groups").tBodies[0].replaceChildren(...data.groups.map((g) =>
    el("tr", {}, el("td", {}, g.name), el("td", { class: "num" }, g.devices), el("td", {}, versionsText(g.versions)))));
  const select = $("group-filter");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "all"), ...data.groups.map((g) => el("option", { value: g.name }, g.name)));
  select.value = chosen;
  $("devices").tBodies[0].replaceChildren(...data.devices.map((d) =>
    el("tr", { class: d.online ? "" : "offline", "data-thing": d.thing }, el("td", {}, d.thing),
       el("td", {}, d.groups.join(", ")), el("td", {}, d.state), el("td", {}, d.serving.join(", ") || "-"),
       el("td", {}, d.lastJob), el("td", {}, ago(d.lastSeen)))));
  $("devices-msg").textContent = `${data.devicesShown} of ${data.devicesMatching} shown`;
}

async function refresh() {
  const group = $("group-filter").value;
  try {
    const response = await fetch(`/api/fleet${group ? `?group=${encodeURIComponent(group)}` : ""}`);
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    renderSummary(data);
    renderRollouts(data);
    renderTables(data);
    $("banner").hidden = true;
    $("conn").textContent = `Updated ${new Date(data.generatedAt * 1000).toLocaleTimeString()}`;
    document.body.dataset.loaded = "1";
  } catch (error) {
    $("banner").textContent = `Cannot load the fleet: ${error.message}. Retrying…`;
    $("banner").hidden = false;
  }
}

$("group-filter").addEventListener("change", refresh);
refresh();
setInterval(refresh, REFRESH_MS);
