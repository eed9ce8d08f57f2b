// The page's panels other than the live frame: model table, shift counters, line picker, banner.
// Everything is written with textContent (never innerHTML), so no server string becomes markup.

const $ = (id) => document.getElementById(id);

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function fmtMs(value) {
  return Number.isFinite(value) ? `${value.toFixed(1)} ms` : "—";
}

export function fmtTime(ns) {
  if (!ns) return "—";
  return new Date(ns / 1e6).toLocaleTimeString([], { hour12: false });
}

function fmtDateTime(ns) {
  if (!ns) return "—";
  const d = new Date(ns / 1e6);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour12: false })}`;
}

function jobText(job) {
  if (!job) return "—";
  const what = job.version ? ` (v${job.version})` : "";
  const why = job.reason ? ` — ${job.reason}` : "";
  return `${job.job_id}: ${job.status}${what}${why}`;
}

function fmtThreshold(value) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(3);
}

const SOURCES = { setting: "line setting", job: "line override" };

/** The thresholds this line's verdicts use; an override says so, with the package's beside it. */
function thresholdCell(t) {
  const td = el("td");
  if (!t) {
    td.textContent = "—";
    return td;
  }
  const pixel = t.pixel === null ? "" : ` · px ${fmtThreshold(t.pixel)}`;
  td.append(el("span", `${fmtThreshold(t.image)}${pixel}`, "threshold-value"));
  td.dataset.overridden = t.overridden ? "true" : "false";
  if (t.overridden) {
    const pkgPixel = t.manifest_pixel === null ? "" : ` · px ${fmtThreshold(t.manifest_pixel)}`;
    td.className = "threshold-overridden";
    td.append(el("span", ` ${SOURCES[t.source] || "override"} (package ${fmtThreshold(t.manifest_image)}${pkgPixel})`, "threshold-note"));
    const who = [t.set_by && `set by ${t.set_by}`, t.set_at && `at ${new Date(t.set_at * 1000).toLocaleString()}`, t.reason]
      .filter(Boolean).join(", ");
    td.title = who || "overridden on this device";
  }
  return td;
}

function jobCell(job) {
  const td = el("td", jobText(job));
  if (job) td.className = `job-${String(job.status).toLowerCase()}`;
  return td;
}

const AGENT_MESSAGES = {
  not_configured: "No agent configured — no model loaded",
  unreachable: "No agent reachable — the model table is unknown",
};

/** Render the ModelsOut object into the model table (thresholds as ``line``'s verdicts use them). */
export function renderModels(table, line) {
  const body = $("models-body");
  const rows = [];
  if (table.agent !== "ok" || table.models.length === 0) {
    const text = table.agent === "ok" ? "No model loaded" : AGENT_MESSAGES[table.agent] || table.message;
    const tr = el("tr");
    const td = el("td", text, "empty");
    td.colSpan = 10;
    tr.append(td);
    rows.push(tr);
  }
  for (const m of table.models) {
    const tr = el("tr");
    tr.dataset.model = m.name;
    tr.dataset.version = m.version;
    tr.dataset.role = m.role;
    const sha = el("td");
    const code = el("code", m.sha256_short || "—");
    code.title = m.sha256;
    sha.append(code);
    const latency = m.p50_ms === null ? "—" : `${m.p50_ms.toFixed(1)} / ${m.p99_ms.toFixed(1)} ms`;
    tr.append(
      el("td", m.name),
      el("td", m.aliases.length ? m.aliases.join(", ") : "—"),
      el("td", m.version),
      el("td", m.role, `role-${m.role}`),
      sha,
      el("td", m.execution_provider || "—"),
      el("td", fmtDateTime(m.loaded_at_ns)),
      el("td", latency),
      thresholdCell((m.thresholds || {})[line]),
      jobCell(m.last_job),
    );
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  const parts = [];
  if (table.agent !== "ok") parts.push(table.message);
  if (table.last_job) parts.push(`Last deployment ${jobText(table.last_job)}`);
  if (table.device_state) parts.push(`Device: ${table.device_state}`);
  $("models-msg").textContent = parts.join(" · ");
  $("models").dataset.agent = table.agent;
}

/** Render the StatsOut object into the shift counters. */
export function renderStats(stats) {
  $("c-inspected").textContent = stats.inspected.toLocaleString();
  $("c-rate").textContent = `${(stats.defect_rate * 100).toFixed(2)} %`;
  $("c-fps").textContent = `${stats.fps.toFixed(1)} fps`;
  $("c-latency").textContent =
    stats.inspected > 0 ? `${stats.e2e_p50_ms.toFixed(0)} / ${stats.e2e_p99_ms.toFixed(0)} ms` : "—";
  const since = new Date(stats.shift_start_ns / 1e6).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  $("c-since").textContent = `Since ${since} · ${stats.defects} defects · ${stats.errors} errors` +
    (stats.waiting ? ` · ${stats.waiting} not inspected (waiting for a model)` : "");
}

/** Fill the line picker; it is shown only when there is more than one line. */
export function renderLines(lines, current, onPick) {
  const select = $("line-select");
  const all = lines.includes(current) ? lines : [current, ...lines];
  select.replaceChildren(...all.map((line) => el("option", line)));
  select.value = current;
  select.onchange = () => onPick(select.value);
  $("line-picker").hidden = all.length < 2;
  $("line-name").textContent = all.length < 2 ? `Line ${current}` : "";
}

/** The banner under the header: shown with a message, hidden with null. */
export function banner(message) {
  const node = $("banner");
  node.textContent = message || "";
  node.hidden = !message;
}

/** The small connection indicator in the header. */
export function connection(state, text) {
  const node = $("conn");
  node.dataset.state = state;
  node.textContent = text;
}
