// The playground: draw points (or pick a dataset), choose settings, train, and watch the snapshots and the loss
// arrive by server-sent events. Plain JS, no framework; the server is the one that served this page.
"use strict";

const VIEW = 2; // the drawing canvas spans [-VIEW, VIEW] in x and y (y up), the units of the saved CSV
const $ = (id) => document.getElementById(id);
const drawn = []; // [x, y] in data units
let limits = { min: 10, max: 20000 };
let source = null; // the EventSource of the training followed

// ---------------------------------------------------------------- drawing

function toData(canvas, event) {
  const box = canvas.getBoundingClientRect();
  const u = (event.clientX - box.left) / box.width, v = (event.clientY - box.top) / box.height;
  return [(2 * u - 1) * VIEW, (1 - 2 * v) * VIEW];
}

function toPixel(canvas, [x, y], view) {
  const { x0, x1, y0, y1 } = view;
  return [((x - x0) / (x1 - x0)) * canvas.width, ((y1 - y) / (y1 - y0)) * canvas.height];
}

function dots(canvas, points, view, colour, radius) {
  const g = canvas.getContext("2d");
  g.fillStyle = colour;
  for (const p of points) {
    const [px, py] = toPixel(canvas, p, view);
    g.fillRect(px - radius, py - radius, 2 * radius, 2 * radius);
  }
}

const DRAW_VIEW = { x0: -VIEW, x1: VIEW, y0: -VIEW, y1: VIEW };

function redrawDrawing() {
  const canvas = $("draw");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  dots(canvas, drawn, DRAW_VIEW, "#1d2433", 2);
  $("count").textContent = `${drawn.length} point${drawn.length === 1 ? "" : "s"}`;
}

function setUpDrawing() {
  const canvas = $("draw");
  let down = false, last = null;
  const add = (event) => {
    if ($("dataset").value || drawn.length >= limits.max) return;
    const p = toData(canvas, event);
    const spacing = (2 * VIEW * 3) / canvas.width; // a point every 3 pixels of movement
    if (last && Math.hypot(p[0] - last[0], p[1] - last[1]) < spacing) return;
    drawn.push([+p[0].toFixed(4), +p[1].toFixed(4)]);
    last = p;
    redrawDrawing();
  };
  canvas.addEventListener("pointerdown", (e) => { down = true; last = null; add(e); });
  canvas.addEventListener("pointermove", (e) => { if (down) add(e); });
  window.addEventListener("pointerup", () => { down = false; });
  $("clear").addEventListener("click", () => { drawn.length = 0; redrawDrawing(); });
  $("download").addEventListener("click", (e) => {
    if (!drawn.length) { e.preventDefault(); return; }
    const csv = "x,y\n" + drawn.map(([x, y]) => `${x},${y}`).join("\n") + "\n"; // a point file train reads
    $("download").href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
  });
  $("dataset").addEventListener("change", () => canvas.classList.toggle("off", !!$("dataset").value));
}

// ---------------------------------------------------------------- settings

async function setUpSettings() {
  const answer = await (await fetch("/api/playground")).json();
  limits = answer.points;
  for (const name of answer.datasets) $("dataset").add(new Option(name, name));
  const fields = $("fields");
  for (const [name, value] of Object.entries(answer.defaults)) {
    const label = document.createElement("label");
    label.htmlFor = name;
    label.textContent = name;
    const choices = answer.choices[name];
    const input = document.createElement(choices ? "select" : "input");
    if (choices) for (const choice of choices) input.add(new Option(choice, choice));
    else {
      input.type = "number";
      input.step = "any";
      const bounds = answer.bounds[name];
      if (bounds) Object.assign(input, { min: bounds[0], max: bounds[1] });
    }
    Object.assign(input, { id: name, name, value: String(value) });
    fields.append(label, input);
  }
}

function settingsOf() {
  const settings = {};
  for (const input of $("fields").querySelectorAll("input, select")) {
    settings[input.name] = input.type === "number" ? Number(input.value) : input.value;
  }
  return settings;
}

function say(message, error = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", error);
}

async function start(event) {
  event.preventDefault();
  const body = { name: $("name").value.trim() || null, settings: settingsOf() };
  if ($("dataset").value) body.dataset = $("dataset").value;
  else body.points = drawn;
  if (!body.dataset && drawn.length < limits.min) {
    say(`draw at least ${limits.min} points first (or pick a dataset)`, true);
    return;
  }
  const response = await fetch("/api/training", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) { say(answer.error, true); return; }
  say(`training ${answer.name} ...`);
  follow();
}

// ---------------------------------------------------------------- the live training

const live = { view: null, data: [], epochs: 0 };

function viewOf(points) {
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const half = (Math.max(x1 - x0, y1 - y0) / 2) * 1.3 || 1; // square, with a margin
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  return { x0: cx - half, x1: cx + half, y0: cy - half, y1: cy + half };
}

function drawSnapshot(samples) {
  const canvas = $("samples");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  dots(canvas, live.data, live.view, "#d0d5dd", 1.5);
  dots(canvas, samples, live.view, "#2f6fdf", 1.5);
  canvas.dataset.count = String(samples.length);
}

function drawLoss(loss) {
  const canvas = $("loss"), g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const top = Math.max(...loss.value), last = loss.step[loss.step.length - 1];
  const pad = 24;
  g.strokeStyle = "#d0d5dd";
  g.strokeRect(pad, 4, canvas.width - pad - 4, canvas.height - pad - 4);
  g.beginPath();
  loss.value.forEach((value, i) => {
    const px = pad + (loss.step[i] / last) * (canvas.width - pad - 4);
    const py = 4 + (1 - value / top) * (canvas.height - pad - 8);
    if (i) g.lineTo(px, py); else g.moveTo(px, py);
  });
  g.strokeStyle = "#2f6fdf";
  g.stroke();
  g.fillStyle = "#667085";
  g.font = "11px sans-serif";
  g.fillText(top.toPrecision(3), 0, 12);
  g.fillText("0", 8, canvas.height - pad);
  g.fillText(`step ${last}`, canvas.width - 60, canvas.height - 6);
  canvas.dataset.points = String(loss.value.length);
}

const HANDLERS = {
  started(event) {
    live.data = event.data;
    live.view = viewOf(event.data);
    live.epochs = event.num_epochs;
    $("warnings").textContent = "";
    $("result").textContent = "";
    $("epoch").textContent = `${event.name}: starting (${event.num_epochs} epochs) ...`;
    drawSnapshot([]);
  },
  warning(event) {
    const line = document.createElement("p");
    line.className = "warning";
    line.textContent = `warning: ${event.message}`;
    $("warnings").append(line);
  },
  snapshot(event) {
    $("epoch").textContent = `epoch ${event.epoch} of ${live.epochs}, step ${event.step}`;
    drawSnapshot(event.samples);
    if (event.loss.value.length) {
      drawLoss(event.loss);
      const value = event.loss.value[event.loss.value.length - 1];
      $("loss-value").textContent = `loss ${value.toPrecision(3)} at step ${event.step}`;
    }
  },
  done(event) {
    say(`done: ${event.run} is trained`);
    $("result").innerHTML = "";
    const link = Object.assign(document.createElement("a"), { href: `/#run-${event.run}` });
    link.textContent = `${event.run} has joined the list of runs`;
    $("result").append(link);
  },
  error(event) { say(`training failed: ${event.message}`, true); },
  interrupted(event) { say(`stopped: ${event.message}`, true); },
};
const FINAL = ["done", "error", "interrupted"];

function follow() {
  if (source) source.close();
  source = new EventSource("/api/training/events");
  $("start").disabled = true;
  $("stop").disabled = false;
  for (const [kind, handle] of Object.entries(HANDLERS)) {
    source.addEventListener(kind, (message) => {
      handle(JSON.parse(message.data));
      if (FINAL.includes(kind)) {
        source.close();
        $("start").disabled = false;
        $("stop").disabled = true;
      }
    });
  }
}

async function stop() {
  const response = await fetch("/api/training/stop", { method: "POST" });
  if (!response.ok) say((await response.json()).error, true);
  else say("stopping: the run keeps a checkpoint ...");
}

async function main() {
  setUpDrawing();
  redrawDrawing();
  await setUpSettings();
  $("settings").addEventListener("submit", start);
  $("stop").addEventListener("click", stop);
  const status = await fetch("/api/training");
  if (status.ok && (await status.json()).state === "running") follow(); // a training started before this page
}

main();
