// The page: reads the run's data, draws samples live (point runs) or shows the reverse process drawn in Python
// (image runs), and offers window.tinyDiffusion.sample({...}) to scripts and tests.

const DATA = JSON.parse(document.getElementById("run-data").textContent);
const $ = (id) => document.getElementById(id);
const plot = $("plot");
const slider = $("time");
const sliderLabel = $("time-label");
const status = $("status");
const state = { drawn: null, view: null }; // the draw shown, and how points are projected
let markReady; // resolves window.tinyDiffusion.ready once the first picture is drawn
const ready = new Promise((resolve) => (markReady = resolve));
const PATHS = 12; // points whose trajectories are drawn
const FIELD_GRID = 21; // arrows per side of the denoiser's field
const isFlow = DATA.method === "flow"; // a flow run: time runs over [0, 1], not the steps of a schedule
const FORWARD_STAGES = 100; // a flow run's forward process under the slider: t = 0, 0.01, ..., 1
const MAX_FLOW_STEPS = 1000; // the most steps the page takes of a flow sampler (Python takes any number)

function setStatus(text, error = false) {
  status.textContent = text;
  status.classList.toggle("error", error);
}

function currentMode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

const loss = decodeFloats(DATA.loss.values);
const snapshots = DATA.snapshots;
$("settings").textContent = JSON.stringify(DATA.settings, null, 1);

// the optimiser step of a snapshot taken after 1-based `epoch`
function snapshotStep(epoch) {
  const epochs = DATA.settings.num_epochs || snapshots.epochs[snapshots.epochs.length - 1] || 1;
  return Math.round((epoch / epochs) * DATA.loss.steps) - 1;
}

function setSlider(max, value) {
  slider.max = String(max);
  slider.value = String(value);
}

function redrawLoss() {
  const mode = currentMode();
  const k = Number(slider.value);
  drawLoss($("loss"), loss, DATA.loss.every, mode === "training" ? snapshotStep(snapshots.epochs[k]) : null);
}

// how the run's process is set up, and a sampling {sampler, steps, eta}, in words
function describeMethod() {
  return isFlow ? "flow matching (the network predicts the velocity noise - x0)" : `T = ${DATA.T}, target ${DATA.target}`;
}
function describeSampling(how) {
  if (how.sampler === "ddpm") return `ddpm in ${DATA.T} steps`;
  if (how.sampler === "ode") return "ode (adaptive steps)";
  return `${how.sampler} in ${how.steps ?? DATA.T} steps` + (how.sampler === "ddim" ? `, eta ${how.eta}` : "");
}

// the slider's label for a state of the reverse process at t: a step of T, or a flow time from 1 to 0
function reverseLabel(t) {
  if (t === (isFlow ? 1 : DATA.T)) return `t = ${t} (noise)`;
  if (t === 0) return "t = 0 (samples)";
  return isFlow ? `t = ${t.toFixed(3)}` : `t = ${t}`;
}

if (DATA.kind === "points") setupPoints();
else setupImages();

// ---- point runs ------------------------------------------------------------------------------------------------

function setupPoints() {
  const dim = DATA.shape[0];
  // an autoguided run's guide (its weights after guide_at of training) is a second network, which guidance pushes
  // the model away from; each network on this thread (the field's arrows) and in workers where it can (the draws)
  const specs = DATA.guide ? [DATA.network, DATA.guide] : [DATA.network];
  const networks = specs.map((spec) => makeNetwork(spec, dim));
  const [network, guideNetwork = null] = networks;
  const parallel = makeParallelForwards(networks, specs, dim);
  const [parallelNetwork, parallelGuide = null] = parallel.forwards;
  const schedule = isFlow ? null : makeSchedule(DATA.schedule, DATA.T);
  const registry = isFlow ? FLOW_SAMPLERS : SAMPLERS;
  const maxSteps = isFlow ? MAX_FLOW_STEPS : DATA.T;
  const classes = DATA.classes;
  const toData = (x) => Float64Array.from(x, (v, i) => v * DATA.scale[i % dim] + DATA.shift[i % dim]);
  const toModel = (x) => Float64Array.from(x, (v, i) => (v - DATA.shift[i % dim]) / DATA.scale[i % dim]);
  const forwardPoints = decodeFloats(DATA.forward.points);
  const frames = decodeFloats(snapshots.points);
  const frameSize = snapshots.count * dim;

  // limits: the data and N(0, I) noise out to 3 standard deviations, in the data's units
  const shown = toData(forwardPoints);
  const limits = Array.from({ length: dim }, (_, d) => {
    let [lo, hi] = [DATA.shift[d] - 3 * DATA.scale[d], DATA.shift[d] + 3 * DATA.scale[d]];
    for (let i = d; i < shown.length; i += dim) [lo, hi] = [Math.min(lo, shown[i]), Math.max(hi, shown[i])];
    return [lo, hi];
  });
  state.view = makeView(plot, limits, dim, () => redraw());
  if (dim !== 2) document.querySelector("[data-field]").hidden = true;

  // ---- the controls: the samplers of the registry, the run's classes
  const samplerSelect = $("sampler");
  for (const name of Object.keys(registry)) samplerSelect.add(new Option(name, name));
  samplerSelect.value = DATA.default.sampler;
  $("steps").value = DATA.default.steps ?? DATA.T;
  $("steps").max = maxSteps;
  $("eta").value = DATA.default.eta;
  if (isFlow) document.querySelector("[data-eta]").hidden = true; // the flow samplers are deterministic
  samplerSelect.addEventListener("change", () => {
    $("steps").value = samplerSelect.value === "ddpm" ? DATA.T : DATA.default.steps;
  });
  if (classes.length) {
    $("label").add(new Option("every class in turn", ""));
    classes.forEach((name, k) => $("label").add(new Option(name, String(k))));
  } else {
    for (const el of document.querySelectorAll("[data-classes]")) el.hidden = true;
  }
  const guided = classes.length > 0 || guideNetwork !== null; // whether the run takes a guidance scale
  if (guided) $("guidance").value = DATA.guidance;
  else document.querySelector("[data-guidance]").hidden = true;
  const own = DATA.run;
  $("summary").textContent =
    `${dim}-D points, ${describeMethod()}` +
    (classes.length ? `, ${classes.length} classes` : "") +
    (guideNetwork ? `, autoguided by its weights after ${DATA.settings.guide_at} of training (guidance ${DATA.guidance})` : "") +
    `; the run samples with ${describeSampling(own)}` +
    `. Samples below are drawn live, in this browser, by the run's own network.`;

  // ---- drawing samples: the hook and the form share `draw`
  function resolve(options = {}) {
    const o = { ...options };
    const n = o.n ?? 1000;
    if (!Number.isInteger(n) || n < 1 || n > 100000) throw new Error(`n must be an integer from 1 to 100000, got ${n}`);
    const sampler = o.sampler ?? DATA.default.sampler;
    if (!(sampler in registry)) throw new Error(`unknown sampler ${sampler}; choose from ${Object.keys(registry)}`);
    const ownDefault = sampler === DATA.default.sampler;
    const steps = o.steps ?? (sampler === "ddpm" ? DATA.T : DATA.default.steps);
    if (!Number.isInteger(steps) || steps < 1 || steps > maxSteps) {
      throw new Error(`steps must be an integer from 1 to ${isFlow ? "" : "T = "}${maxSteps}, got ${steps}`);
    }
    const eta = o.eta ?? (ownDefault ? DATA.default.eta : 0);
    if (!(eta >= 0) || !Number.isFinite(eta)) throw new Error(`eta must be a finite number >= 0, got ${eta}`);
    if (isFlow && eta !== 0) throw new Error(`eta is ddim's noise; the flow samplers are deterministic: leave it out`);
    const seed = o.seed ?? 0;
    if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
    let labels = null;
    let guidance = 0;
    const label = classes.length ? o.label ?? null : null;
    if (classes.length) {
      if (label !== null && !(Number.isInteger(label) && label >= 0 && label < classes.length)) {
        throw new Error(`label must be a class from 0 to ${classes.length - 1}, got ${label}`);
      }
      labels = Int32Array.from({ length: n }, (_, i) => (label === null ? i % classes.length : label));
    } else if ((o.label ?? null) !== null) {
      throw new Error(`this run is not conditional: it takes no label${guided ? "" : " or guidance"}`);
    } else if ((o.guidance ?? null) !== null && !guided) {
      throw new Error("this run is not conditional: it takes no label or guidance");
    }
    if (guided) {
      guidance = o.guidance ?? DATA.guidance;
      if (!(guidance >= 0)) throw new Error(`guidance must be >= 0, got ${guidance}`);
    }
    let noise = null;
    if (o.noise !== undefined) {
      noise = Float64Array.from(o.noise.flat());
      if (noise.length !== n * dim) throw new Error(`noise must be ${n} x ${dim} numbers, got ${noise.length}`);
    }
    return { n, sampler, steps, eta, seed, label, labels, guidance, noise };
  }

  // a network whose passes over the batch are counted in tally.calls: a draw's network calls, as Python's
  // Trajectory.nfe counts them (under guidance, the unconditional pass or the guide's counts too)
  function counted(net, tally) {
    const seen = Object.create(net);
    seen.forward = (...args) => {
      tally.calls += 1;
      return net.forward(...args);
    };
    return seen;
  }

  async function draw(options) {
    const o = resolve(options);
    const rng = makeRng(o.seed);
    const initial = o.noise ?? rng.normals(o.n * dim);
    const tally = { calls: 0 };
    const net = counted(parallelNetwork, tally);
    const how = { labels: o.labels, guidance: o.guidance, guide: parallelGuide && counted(parallelGuide, tally) };
    if (isFlow) {
      const velocity = makeVelocity(net, DATA.timeScale, DATA.clip, dim, how);
      const result = await runFlowSampler(o.sampler, { velocity, n: o.n, steps: o.steps, initial });
      return { ...result, options: o, nfe: tally.calls };
    }
    const predictor = makeNoisePredictor(net, schedule, DATA.target, how);
    const steps = o.sampler === "ddpm" ? null : o.steps;
    const result = await runSampler(o.sampler, {
      predictor, schedule, n: o.n, dim, steps, eta: o.eta, clip: DATA.clip, rng, initial,
    });
    return { ...result, options: o, nfe: tally.calls };
  }

  function rows(flat) {
    return Array.from({ length: flat.length / dim }, (_, i) => Array.from(flat.subarray(i * dim, (i + 1) * dim)));
  }

  window.tinyDiffusion = {
    // Draw samples with the run's network: a Promise of [[x, y], ...] in the data's units. Options (all optional):
    // n, sampler ("ddpm", "ddim", ...), steps, eta, seed, label (a class index), guidance, and noise: the initial
    // x_T, n rows of N(0, I) numbers, to start from the same noise as a Python draw.
    sample: async (options = {}) => rows(toData((await draw(options)).samples)),
    samplers: Object.keys(registry),
    workers: parallel.workers, // how many Web Workers share a draw (0: the page's own thread)
    simd: network.simd, // whether the products run in WebAssembly SIMD (else in plain JavaScript)
    ready, // a Promise, resolved once the page's first draw is shown
    data: { name: DATA.name, kind: DATA.kind, method: DATA.method, shape: DATA.shape, T: DATA.T, classes, default: DATA.default },
  };

  // ---- the picture
  const forwardNoise = makeRng(12345).normals(forwardPoints.length);
  const color = (labels) => (labels ? (i) => CLASS_COLORS[labels[i] % CLASS_COLORS.length] : COLORS.points);

  // the denoiser's field at zero-based step t (a flow run: at time t): from a grid over the view, arrows towards the
  // predicted x0 (clipped as the sampler clips it), for the class `label` under `guidance` (a conditional run), else
  // without a label
  function fieldAt(t, label, guidance) {
    const grid = new Float64Array(FIELD_GRID * FIELD_GRID * 2);
    for (let a = 0; a < FIELD_GRID; a++) {
      for (let b = 0; b < FIELD_GRID; b++) {
        const k = 2 * (a * FIELD_GRID + b);
        grid[k] = limits[0][0] + ((b + 0.5) / FIELD_GRID) * (limits[0][1] - limits[0][0]);
        grid[k + 1] = limits[1][0] + ((a + 0.5) / FIELD_GRID) * (limits[1][1] - limits[1][0]);
      }
    }
    const n = FIELD_GRID * FIELD_GRID;
    const labels = label === null ? null : new Int32Array(n).fill(label);
    const x = toModel(grid);
    if (isFlow) {
      const v = makeVelocity(network, DATA.timeScale, DATA.clip, dim, { labels, guidance, guide: guideNetwork })(x, n, t);
      return [grid, toData(x.map((value, k) => value - t * v[k]))]; // x0 = x_t - t v
    }
    const predictor = makeNoisePredictor(network, schedule, DATA.target, { labels, guidance, guide: guideNetwork });
    const x0 = predictX0(schedule, x, predictor(x, n, t), t, DATA.clip, dim);
    return [grid, toData(x0)];
  }

  function redraw() {
    const ctx = sizeCanvas(plot);
    const view = state.view;
    drawFrame(ctx, view);
    const mode = currentMode();
    const k = Number(slider.value);
    let at = null; // where the field is drawn: the zero-based step (a flow run: the time) of what is shown
    if (mode === "training") {
      const epoch = snapshots.epochs[k];
      drawPoints(ctx, view, frames.subarray(k * frameSize, (k + 1) * frameSize), COLORS.points);
      sliderLabel.textContent = `epoch ${epoch} of ${DATA.settings.num_epochs}`;
    } else if (mode === "forward" && isFlow) {
      const t = k / FORWARD_STAGES;
      drawPoints(ctx, view, toData(interpolate(forwardPoints, forwardNoise, t)), COLORS.points);
      sliderLabel.textContent = k === 0 ? "t = 0 (data)" : `t = ${t.toFixed(2)} of 1`;
      at = k > 0 ? t : null;
    } else if (mode === "forward") {
      drawPoints(ctx, view, toData(addNoise(schedule, forwardPoints, forwardNoise, k)), COLORS.points);
      sliderLabel.textContent = k === 0 ? "t = 0 (data)" : `t = ${k} of ${DATA.T}`;
      at = k > 0 ? k - 1 : null;
    } else if (state.drawn) {
      const drawn = state.drawn;
      const t = drawn.timesteps[k];
      drawPoints(ctx, view, toData(drawn.states[k]), color(drawn.options.labels));
      if ($("paths").checked) {
        drawPaths(ctx, view, drawn.dataStates, Array.from({ length: Math.min(PATHS, drawn.options.n) }, (_, i) => i), k);
      }
      sliderLabel.textContent = reverseLabel(t);
      // state t of ddpm's walk sits at step t - 1 (t = 0: the samples); a flow state at its own time
      at = t > 0 ? (isFlow ? t : t - 1) : null;
    }
    if ($("field").checked && dim === 2 && at !== null) {
      const drawn = mode === "reverse" ? state.drawn.options : { label: null, guidance: 0 };
      const [from, to] = fieldAt(at, drawn.label, drawn.guidance);
      drawArrows(ctx, view, from, to, (plot.width / FIELD_GRID) * 0.9);
    }
    redrawLoss();
  }

  function showMode() {
    const mode = currentMode();
    if (mode === "training") setSlider(snapshots.epochs.length - 1, snapshots.epochs.length - 1);
    else if (mode === "forward") setSlider(isFlow ? FORWARD_STAGES : DATA.T, 0);
    else setSlider(state.drawn ? state.drawn.states.length - 1 : 0, state.drawn ? state.drawn.states.length - 1 : 0);
    redraw();
  }

  function formOptions() {
    const number = (id) => ($(id).value === "" ? undefined : Number($(id).value));
    const options = {
      n: number("num"), sampler: samplerSelect.value, steps: number("steps"), eta: number("eta"), seed: number("seed"),
    };
    if (classes.length) options.label = $("label").value === "" ? null : Number($("label").value);
    if (guided) options.guidance = number("guidance");
    return options;
  }

  function drawFromForm() {
    setStatus("drawing...");
    // let the status show before the work starts
    setTimeout(async () => {
      try {
        const start = performance.now();
        const drawn = await draw(formOptions());
        const seconds = (performance.now() - start) / 1000;
        drawn.dataStates = drawn.states.map(toData);
        state.drawn = drawn;
        const o = drawn.options;
        const steps = drawn.states.length - 1;
        const eta = isFlow ? "" : `eta ${o.eta}, `;
        const guidance = guided ? `, guidance ${o.guidance}` : "";
        setStatus(
          `${o.n} points, ${o.sampler} in ${steps} steps (${eta}seed ${o.seed}${guidance}): ` +
            `${drawn.nfe} network calls, ${seconds.toFixed(2)} s`,
        );
        document.querySelector('input[name="mode"][value="reverse"]').checked = true;
        showMode();
      } catch (error) {
        setStatus(error.message, true);
      }
      markReady();
    });
  }

  $("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    drawFromForm();
  });
  for (const input of document.querySelectorAll('input[name="mode"]')) input.addEventListener("change", showMode);
  slider.addEventListener("input", redraw);
  $("paths").addEventListener("change", redraw);
  $("field").addEventListener("change", redraw);
  window.addEventListener("resize", redraw);
  showMode();
  drawFromForm();
}

// ---- image runs: the reverse process drawn in Python ----------------------------------------------------------

function setupImages() {
  for (const el of document.querySelectorAll("[data-points]")) el.hidden = true;
  const [C, H, W] = DATA.shape;
  const process = DATA.images;
  const states = Uint8Array.from(atob(process.states), (c) => c.charCodeAt(0));
  const snapshotImages = Uint8Array.from(atob(snapshots.images), (c) => c.charCodeAt(0));
  const perState = process.rows * process.cols;
  const how = process.sampling;
  $("summary").textContent =
    `${C} x ${H} x ${W} images, ${describeMethod()}` +
    (DATA.classes.length ? `, one row per class` : "") +
    `. The reverse process below was drawn in Python with the run's own sampler (${describeSampling(how)})` +
    `; this page draws no new images.`;
  setStatus(`${perState} images, ${process.timesteps.length} states of their reverse process`);

  function redraw() {
    const k = Number(slider.value);
    if (currentMode() === "training") {
      const count = snapshots.count;
      drawImages(plot, snapshotImages, k * count, 2, Math.ceil(count / 2), [C, H, W]);
      sliderLabel.textContent = `epoch ${snapshots.epochs[k]} of ${DATA.settings.num_epochs}`;
    } else {
      drawImages(plot, states, k * perState, process.rows, process.cols, [C, H, W], process.rowLabels);
      sliderLabel.textContent = reverseLabel(process.timesteps[k]);
    }
    redrawLoss();
  }

  function showMode() {
    const last = currentMode() === "training" ? snapshots.epochs.length - 1 : process.timesteps.length - 1;
    setSlider(last, last);
    redraw();
  }

  window.tinyDiffusion = {
    sample: () => Promise.reject(new Error("an image run's page shows a reverse process drawn in Python; it draws no new samples")),
    samplers: [],
    workers: 0,
    ready,
    data: { name: DATA.name, kind: DATA.kind, method: DATA.method, shape: DATA.shape, T: DATA.T, classes: DATA.classes },
  };
  for (const input of document.querySelectorAll('input[name="mode"]')) input.addEventListener("change", showMode);
  slider.addEventListener("input", redraw);
  window.addEventListener("resize", redraw);
  showMode();
  markReady();
}
