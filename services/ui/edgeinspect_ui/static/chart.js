// A small latency chart on a canvas (no library): the last N end-to-end latencies as a line,
// with the p50 as a dashed rule. Redrawn at most once per animation frame.

export class LatencyChart {
  constructor(canvas, capacity = 120) {
    this.canvas = canvas;
    this.capacity = capacity;
    this.values = [];
    this.p50 = null;
    this.queued = false;
  }

  push(value) {
    if (!Number.isFinite(value)) return;
    this.values.push(value);
    if (this.values.length > this.capacity) this.values.shift();
    this.schedule();
  }

  reset(values = []) {
    this.values = values.filter(Number.isFinite).slice(-this.capacity);
    this.schedule();
  }

  setP50(p50) {
    this.p50 = Number.isFinite(p50) && p50 > 0 ? p50 : null;
    this.schedule();
  }

  schedule() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => {
      this.queued = false;
      this.draw();
    });
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 320;
    const cssH = canvas.clientHeight || 120;
    if (canvas.width !== Math.round(cssW * ratio)) canvas.width = Math.round(cssW * ratio);
    if (canvas.height !== Math.round(cssH * ratio)) canvas.height = Math.round(cssH * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const left = 34, bottom = cssH - 14, top = 6, right = cssW - 4;
    ctx.strokeStyle = "#c9ced6";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(left, top);
    ctx.lineTo(left, bottom);
    ctx.lineTo(right, bottom);
    ctx.stroke();
    ctx.fillStyle = "#4b5361";
    ctx.font = "11px system-ui, sans-serif";
    if (this.values.length === 0) {
      ctx.fillText("no data yet", left + 8, (top + bottom) / 2);
      return;
    }
    const max = Math.max(1, ...this.values) * 1.15;
    const y = (v) => bottom - (v / max) * (bottom - top);
    const step = (right - left) / Math.max(1, this.capacity - 1);
    ctx.textAlign = "right";
    ctx.fillText(max.toFixed(0), left - 4, top + 8);
    ctx.fillText("0", left - 4, bottom);
    ctx.textAlign = "left";
    ctx.fillText(`last ${this.values.length} frames`, left + 4, cssH - 2);
    if (this.p50 !== null) {
      ctx.setLineDash([4, 3]);
      ctx.strokeStyle = "#4b5361";
      ctx.beginPath();
      ctx.moveTo(left, y(this.p50));
      ctx.lineTo(right, y(this.p50));
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.textAlign = "left";
      ctx.fillText(`p50 ${this.p50.toFixed(1)} ms`, left + 4, top + 9);
    }
    ctx.strokeStyle = "#0b57d0";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    const offset = this.capacity - this.values.length;
    this.values.forEach((v, i) => {
      const x = left + (offset + i) * step;
      if (i === 0) ctx.moveTo(x, y(v));
      else ctx.lineTo(x, y(v));
    });
    ctx.stroke();
  }
}
