// Drawing on canvases: points in 2-D, or in 3-D through a rotation the reader drags; arrows, paths, the loss
// curve and grids of images. Everything drawn here is in the data's units.

const COLORS = { points: "#1f77b4", data: "#9aa5b1", path: "#d62728", arrow: "#2ca02c", axis: "#667085" };
const CLASS_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];

function sizeCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const { width, height } = canvas.getBoundingClientRect();
  if (width > 0 && (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio))) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  return canvas.getContext("2d");
}

// A view of `dim`-D points in a box of limits [[lo, hi] per coordinate]: 2-D as they are (equal scale on both
// axes), 3-D projected after a rotation by yaw and pitch that dragging the canvas changes; beyond 3-D, the first 3.
function makeView(canvas, limits, dim, redraw) {
  const view = { canvas, dim, yaw: 0.6, pitch: 0.35 };
  const center = limits.map(([lo, hi]) => (lo + hi) / 2);
  const span = Math.max(...limits.map(([lo, hi]) => hi - lo)) || 1;
  view.project = (point, offset = 0) => {
    const w = canvas.width;
    const h = canvas.height;
    const size = Math.min(w, h) * 0.9;
    const x = (point[offset] - center[0]) / span;
    const y = dim > 1 ? (point[offset + 1] - center[1]) / span : 0;
    if (dim < 3) return [w / 2 + x * size, h / 2 - y * size];
    const z = (point[offset + 2] - center[2]) / span;
    const [cy, sy, cp, sp] = [Math.cos(view.yaw), Math.sin(view.yaw), Math.cos(view.pitch), Math.sin(view.pitch)];
    const rx = cy * x + sy * z;
    const rz = -sy * x + cy * z;
    const ry = cp * y - sp * rz;
    return [w / 2 + rx * size * 0.8, h / 2 - ry * size * 0.8];
  };
  if (dim >= 3) {
    let last = null;
    canvas.style.cursor = "grab";
    canvas.addEventListener("pointerdown", (e) => {
      last = [e.clientX, e.clientY];
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!last) return;
      view.yaw += (e.clientX - last[0]) * 0.01;
      view.pitch = Math.max(-1.5, Math.min(1.5, view.pitch + (e.clientY - last[1]) * 0.01));
      last = [e.clientX, e.clientY];
      redraw();
    });
    canvas.addEventListener("pointerup", () => (last = null));
  }
  view.limits = limits;
  return view;
}

function drawFrame(ctx, view) {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, view.canvas.width, view.canvas.height);
  ctx.strokeStyle = COLORS.axis;
  ctx.lineWidth = 1;
  const corners = view.limits.map(([lo, hi]) => [lo, hi]);
  if (view.dim < 3) {
    const [x0, y0] = view.project([corners[0][0], view.dim > 1 ? corners[1][0] : 0]);
    const [x1, y1] = view.project([corners[0][1], view.dim > 1 ? corners[1][1] : 0]);
    ctx.strokeRect(x0, y1, x1 - x0, y0 - y1);
    return;
  }
  // the box's 12 edges
  for (let a = 0; a < 8; a++) {
    for (let d = 0; d < 3; d++) {
      if (a & (1 << d)) continue;
      const b = a | (1 << d);
      const p = [0, 1, 2].map((k) => corners[k][(a >> k) & 1]);
      const q = [0, 1, 2].map((k) => corners[k][(b >> k) & 1]);
      const [px, py] = view.project(p);
      const [qx, qy] = view.project(q);
      ctx.beginPath();
      ctx.moveTo(px, py);
      ctx.lineTo(qx, qy);
      ctx.stroke();
    }
  }
}

// points: flat (n * dim); colors: one CSS colour, or a function of the point's index
function drawPoints(ctx, view, points, color, radius = 2) {
  const n = points.length / view.dim;
  const r = radius * (window.devicePixelRatio || 1);
  for (let i = 0; i < n; i++) {
    const [x, y] = view.project(points, i * view.dim);
    ctx.fillStyle = typeof color === "function" ? color(i) : color;
    ctx.fillRect(x - r / 2, y - r / 2, r, r);
  }
}

// the paths of points `chosen` through states[0..upto]
function drawPaths(ctx, view, states, chosen, upto) {
  ctx.strokeStyle = COLORS.path;
  ctx.lineWidth = 1.2 * (window.devicePixelRatio || 1);
  for (const i of chosen) {
    ctx.beginPath();
    for (let k = 0; k <= upto; k++) {
      const [x, y] = view.project(states[k], i * view.dim);
      if (k === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }
}

// arrows from each point of `from` towards `to` (both flat (n * dim)), scaled so the longest is `longest` pixels
function drawArrows(ctx, view, from, to, longest) {
  const n = from.length / view.dim;
  const segments = [];
  let most = 0;
  for (let i = 0; i < n; i++) {
    const [x0, y0] = view.project(from, i * view.dim);
    const [x1, y1] = view.project(to, i * view.dim);
    segments.push([x0, y0, x1 - x0, y1 - y0]);
    most = Math.max(most, Math.hypot(x1 - x0, y1 - y0));
  }
  const scale = most > 0 ? longest / most : 0;
  ctx.strokeStyle = COLORS.arrow;
  ctx.lineWidth = 1 * (window.devicePixelRatio || 1);
  for (const [x, y, dx, dy] of segments) {
    const [ex, ey] = [x + dx * scale, y + dy * scale];
    const angle = Math.atan2(dy, dx);
    const head = Math.min(4, Math.hypot(dx, dy) * scale * 0.4) * (window.devicePixelRatio || 1);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(ex, ey);
    ctx.lineTo(ex - head * Math.cos(angle - 0.5), ey - head * Math.sin(angle - 0.5));
    ctx.moveTo(ex, ey);
    ctx.lineTo(ex - head * Math.cos(angle + 0.5), ey - head * Math.sin(angle + 0.5));
    ctx.stroke();
  }
}

function drawLabel(ctx, text, x, y, size = 13) {
  const ratio = window.devicePixelRatio || 1;
  ctx.fillStyle = "#222";
  ctx.font = `${size * ratio}px system-ui, sans-serif`;
  ctx.fillText(text, x * ratio, y * ratio);
}

// the loss per optimiser step (averaged in bins of `every`) on a log scale, a marker at step `at` (or none)
function drawLoss(canvas, values, every, at = null) {
  const ctx = sizeCanvas(canvas);
  const ratio = window.devicePixelRatio || 1;
  const [w, h] = [canvas.width, canvas.height];
  const pad = 30 * ratio;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  const logs = Array.from(values, (v) => Math.log10(Math.max(v, 1e-12)));
  const lo = Math.min(...logs);
  const hi = Math.max(...logs);
  const x = (k) => pad + ((k + 0.5) / values.length) * (w - 1.5 * pad);
  const y = (v) => h - pad - ((v - lo) / (hi - lo || 1)) * (h - 1.6 * pad);
  ctx.strokeStyle = COLORS.points;
  ctx.lineWidth = ratio;
  ctx.beginPath();
  logs.forEach((v, k) => (k === 0 ? ctx.moveTo(x(k), y(v)) : ctx.lineTo(x(k), y(v))));
  ctx.stroke();
  if (at !== null) {
    ctx.strokeStyle = COLORS.path;
    ctx.beginPath();
    ctx.moveTo(x(at / every), pad * 0.4);
    ctx.lineTo(x(at / every), h - pad);
    ctx.stroke();
  }
  drawLabel(ctx, `loss ${(10 ** hi).toPrecision(3)}`, 4, 14, 11);
  drawLabel(ctx, `${(10 ** lo).toPrecision(3)}`, 4, h / ratio - 18, 11);
  drawLabel(ctx, `${values.length * every} optimiser steps (log scale)`, pad / ratio, h / ratio - 4, 11);
}

// images: uint8 (count, H, W, C) from index `first`, drawn in `rows` x `cols` cells; row labels on the left
function drawImages(canvas, bytes, first, rows, cols, [C, H, W], rowLabels = []) {
  const ctx = sizeCanvas(canvas);
  const ratio = window.devicePixelRatio || 1;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const left = rowLabels.length ? 70 * ratio : 0;
  const cell = Math.floor(Math.min((canvas.width - left) / cols, canvas.height / rows));
  const tile = document.createElement("canvas");
  tile.width = W;
  tile.height = H;
  const tileCtx = tile.getContext("2d");
  const pixels = tileCtx.createImageData(W, H);
  ctx.imageSmoothingEnabled = false;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const start = (first + r * cols + c) * H * W * C;
      if (start >= bytes.length) continue;
      for (let p = 0; p < H * W; p++) {
        for (let k = 0; k < 3; k++) pixels.data[4 * p + k] = bytes[start + p * C + (C === 3 ? k : 0)];
        pixels.data[4 * p + 3] = 255;
      }
      tileCtx.putImageData(pixels, 0, 0);
      ctx.drawImage(tile, left + c * cell + 1, r * cell + 1, cell - 2, cell - 2);
    }
    if (rowLabels[r] !== undefined) drawLabel(ctx, rowLabels[r], 4, (r * cell + cell / 2) / ratio + 4);
  }
}
