// The line's PLC I/O panel (from /api/line-io, written by edgeinspect-line-io) and the part search
// (/api/results/search): a quality engineer types the PLC's part id and gets that part's results.

import { el, fmtTime } from "./panels.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;

function when(item) {
  return item && item.ts_ns ? fmtTime(item.ts_ns) : "—";
}

function renderLineIo(io) {
  const panel = $("lineio");
  panel.hidden = !io.present;
  if (!io.present) return;
  $("lineio-state").textContent = io.state || "—";
  const list = $("lineio-connections");
  list.replaceChildren(
    ...Object.entries(io.connections).map(([name, up]) => {
      const li = el("li", `${up ? "●" : "○"} ${name}: ${up ? "connected" : "not connected"}`);
      li.className = up ? "io-up" : "io-down";
      return li;
    }),
  );
  const t = io.last_trigger;
  $("lineio-trigger").textContent = t ? `${when(t)} · part ${t.part_id || "—"} · ${t.input}` : "—";
  const r = io.last_reject;
  $("lineio-reject").textContent = r ? `${when(r)} · part ${r.part_id || "—"} · ${r.error_ms} ms late` : "—";
  const missed = io.counts.missed_rejects || 0;
  const m = io.last_missed;
  $("lineio-missed").textContent = missed ? `${missed} (last: part ${m ? m.part_id || "—" : "—"}, ${m ? m.cause : ""})` : "0";
  $("lineio-missed").className = missed ? "io-missed" : "";
}

export function startLineIo(currentLine) {
  async function poll() {
    try {
      const response = await fetch(`/api/line-io?line=${encodeURIComponent(currentLine())}`);
      if (response.ok) renderLineIo(await response.json());
    } catch (err) {
      /* the connection banner tells the user; the next poll retries */
    }
  }
  poll();
  setInterval(poll, POLL_MS);
}

export function wireSearch(currentLine) {
  $("part-search").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const partId = $("part-id-query").value.trim();
    const body = $("part-results-body");
    const note = $("part-results-note");
    if (!partId) return;
    note.textContent = "Searching…";
    body.replaceChildren();
    try {
      const query = `part_id=${encodeURIComponent(partId)}&line=${encodeURIComponent(currentLine())}`;
      const response = await fetch(`/api/results/search?${query}`);
      if (!response.ok) {
        note.textContent = `The search failed (${response.status}).`;
        return;
      }
      const results = await response.json();
      note.textContent = results.length ? "" : `No result for part ${partId} among the line's recent results.`;
      body.replaceChildren(
        ...results.map((r) => {
          const tr = el("tr");
          const link = el("a", r.frame_id.slice(0, 12));
          link.href = r.frame_url;
          link.title = r.frame_id;
          const frame = el("td");
          frame.append(link);
          tr.append(el("td", r.part_id), el("td", fmtTime(r.ts_ns)), el("td", r.verdict, `label-${r.verdict}`),
            el("td", r.score.toFixed(3)), frame);
          return tr;
        }),
      );
    } catch (err) {
      note.textContent = "The UI server is unreachable.";
    }
  });
}
