// The reverse process, as core/samplers.py walks it: the same timesteps, the same clipping of the predicted x0,
// the same float32 schedule coefficients (exported from the run's NoiseSchedule). States live in the model's
// coordinates; the page converts to the data's units only to show or return them.

function makeSchedule(spec, T) {
  const schedule = { T };
  for (const [name, base64] of Object.entries(spec)) schedule[name] = decodeFloats(base64);
  return schedule;
}

// The network's output as predicted noise (core/objectives.py, output_to_noise), in place, for one step t.
const TARGETS = {
  noise(s, out, x, t) {},
  x0(s, out, x, t) {
    for (let i = 0; i < out.length; i++) {
      out[i] = (s.sqrt_recip_alphas_cumprod[t] * x[i] - out[i]) / s.sqrt_recipm1_alphas_cumprod[t];
    }
  },
  previous(s, out, x, t) {
    // mean = c1 x0 + c2 x_t, and c1 > 0 at every t
    for (let i = 0; i < out.length; i++) {
      const x0 = (out[i] - s.posterior_mean_coef2[t] * x[i]) / s.posterior_mean_coef1[t];
      out[i] = (s.sqrt_recip_alphas_cumprod[t] * x[i] - x0) / s.sqrt_recipm1_alphas_cumprod[t];
    }
  },
  v(s, out, x, t) {
    for (let i = 0; i < out.length; i++) {
      out[i] = s.sqrt_one_minus_alphas_cumprod[t] * x[i] + s.sqrt_alphas_cumprod[t] * out[i];
    }
  },
};

// The network's output at (x_t, t) for a batch of n (Diffusion._output): for the classes `labels` under
// classifier-free guidance w, cond + w (cond - uncond) (models.guided); an autoguided run's under autoguidance,
// model + w (model - guide) (models.autoguided). network.forward may return the output or a Promise of it
// (workers): the output is a Promise when it is.
function makeOutput(network, { labels = null, guidance = 0, guide = null } = {}) {
  const finish = (out, away) => {
    out = Float64Array.from(out);
    if (away) for (let i = 0; i < out.length; i++) out[i] += guidance * (out[i] - away[i]);
    return out;
  };
  return (x, n, t) => {
    // a conditional network asked for no class is told "no label", as LabelConditioned does
    const nulls = () => new Int32Array(n).fill(network.nullLabel);
    const out = network.forward(x, n, t, labels === null && network.nullLabel !== null ? nulls() : labels);
    let away = null; // what guidance pushes away from: the unconditional output, or the guide's
    if (guidance !== 0 && labels !== null) away = network.forward(x, n, t, nulls());
    else if (guidance !== 0 && guide !== null) away = guide.forward(x, n, t, null);
    if (out instanceof Promise) return Promise.all([out, away]).then(([o, u]) => finish(o, u));
    return finish(out, away);
  };
}

// f(value), or a Promise of it where value is a Promise
const then = (value, f) => (value instanceof Promise ? value.then(f) : f(value));

// noise(x_t, t) for a batch of n (Diffusion.noise_predictor): the guided output turned into predicted noise
function makeNoisePredictor(network, schedule, target, options = {}) {
  if (!(target in TARGETS)) throw new Error(`unknown target ${target}`);
  const output = makeOutput(network, options);
  return (x, n, t) =>
    then(output(x, n, t), (out) => {
      TARGETS[target](schedule, out, x, t);
      return out;
    });
}

// x0 = (x_t - sqrt(1 - alpha-bar) noise) / sqrt(alpha-bar) (eq. 15), clipped per coordinate to the data's range
function predictX0(s, x, noise, t, clip, dim) {
  const x0 = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    let v = s.sqrt_recip_alphas_cumprod[t] * x[i] - s.sqrt_recipm1_alphas_cumprod[t] * noise[i];
    if (clip) {
      const d = i % dim;
      v = Math.max(Math.min(v, clip[1][d]), clip[0][d]);
    }
    x0[i] = v;
  }
  return x0;
}

function ddimTimesteps(T, steps) {
  if (!(steps >= 1 && steps <= T)) throw new Error(`steps must be between 1 and T = ${T}, got ${steps}`);
  const ratio = T / steps;
  return Array.from({ length: steps }, (_, i) => roundHalfEven(T - i * ratio) - 1); // as ddim_timesteps
}

// The probability-flow samplers' noise levels, as core/samplers.py reads the schedule (diffusers' convention):
// sigma_t = sqrt((1 - alpha-bar_t) / alpha-bar_t), the noise level of x_t / sqrt(alpha-bar_t).
function scheduleSigmas(s) {
  return Array.from(s.alphas_cumprod, (ab) => Math.sqrt((1 - ab) / ab));
}

// The fractional timestep of noise level sigma: log sigma interpolated between the integer steps (sigma_to_t)
function sigmaToT(sigma, logSigmas) {
  if (logSigmas.length === 1) return 0;
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  let low = logSigmas.findIndex((v) => v > logSigma); // searchsorted(..., right=True)
  low = (low === -1 ? logSigmas.length : low) - 1;
  low = Math.min(Math.max(low, 0), logSigmas.length - 2);
  const w = (logSigma - logSigmas[low]) / (logSigmas[low + 1] - logSigmas[low]);
  return low + Math.min(Math.max(w, 0), 1);
}

// Python's round(): halves to even
function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// `steps` Karras noise levels between sigma_0 and sigma_{T-1} (Karras et al. 2022, eq. 5, rho 7), then 0, and the
// integer timestep the network is called at for each (sigma_steps with spacing "karras")
function karrasPlan(s, steps) {
  if (!(steps >= 1 && steps <= s.T)) throw new Error(`steps must be between 1 and T = ${s.T}, got ${steps}`);
  const all = scheduleSigmas(s);
  const logSigmas = all.map(Math.log);
  const rho = 7; // KARRAS_RHO
  const [hi, lo] = [all[all.length - 1] ** (1 / rho), all[0] ** (1 / rho)];
  const sigmas = Array.from({ length: steps }, (_, i) => (hi + (steps > 1 ? i / (steps - 1) : 0) * (lo - hi)) ** rho);
  const timesteps = sigmas.map((sigma) => roundHalfEven(sigmaToT(sigma, logSigmas)));
  return { timesteps, sigmas: [...sigmas, 0] };
}

// The registry: each sampler plans its steps (the timesteps it calls the network at, and whatever else it needs)
// and takes one: `step` gets the current state and the predicted noise at plan.timesteps[i] and returns the next
// state (or a Promise of it: heun calls `predict(x, t)` for a second prediction). `memory` lasts for one draw, for
// multistep samplers that reuse earlier predictions.
const SAMPLERS = {
  ddpm: {
    plan(s, steps) {
      if (steps !== null && steps !== s.T) throw new Error(`the ddpm sampler walks all ${s.T} steps; use ddim for fewer`);
      return { timesteps: Array.from({ length: s.T }, (_, i) => s.T - 1 - i) };
    },
    // Ho et al. 2020, Algorithm 2: the posterior q(x_{t-1} | x_t, x0) of the predicted x0, then sigma_t z
    step({ schedule: s, x, noise, timesteps, i, clip, dim, rng }) {
      const t = timesteps[i];
      const x0 = predictX0(s, x, noise, t, clip, dim);
      const next = new Float64Array(x.length);
      const sigma = Math.sqrt(s.posterior_variance[t]);
      for (let k = 0; k < x.length; k++) {
        next[k] = s.posterior_mean_coef1[t] * x0[k] + s.posterior_mean_coef2[t] * x[k];
        if (t > 0) next[k] += sigma * rng.normal();
      }
      return next;
    },
  },
  ddim: {
    plan: (s, steps) => ({ timesteps: ddimTimesteps(s.T, steps === null ? s.T : steps) }),
    // Song et al. 2021, eq. 12; sigma_t(eta) from eq. 16; t_prev = -1 is the data, where alpha-bar is 1
    step({ schedule: s, x, noise, timesteps, i, clip, dim, eta, rng }) {
      const t = timesteps[i];
      const tPrev = i + 1 < timesteps.length ? timesteps[i + 1] : -1;
      const aT = s.alphas_cumprod[t];
      const aPrev = tPrev >= 0 ? s.alphas_cumprod[tPrev] : 1;
      const x0 = predictX0(s, x, noise, t, clip, dim);
      const std = eta * Math.sqrt(((1 - aPrev) / (1 - aT)) * (1 - aT / aPrev));
      const direction = Math.sqrt(Math.max(1 - aPrev - std * std, 0));
      const next = new Float64Array(x.length);
      for (let k = 0; k < x.length; k++) {
        // with clipping, the noise is re-derived to match the clipped x0
        const e = clip ? (x[k] - Math.sqrt(aT) * x0[k]) / Math.sqrt(1 - aT) : noise[k];
        next[k] = Math.sqrt(aPrev) * x0[k] + direction * e;
        if (eta > 0) next[k] += std * rng.normal();
      }
      return next;
    },
  },
  "dpmpp-2m": {
    plan: karrasPlan,
    // DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) as core/samplers.py takes it: the data prediction D_i at noise
    // level sigma, corrected by the previous step's; first order at the first step and the last (to sigma = 0)
    step({ x, noise, plan, i, clip, dim, memory }) {
      const [sigma, sigmaNext] = [plan.sigmas[i], plan.sigmas[i + 1]];
      const scale = Math.sqrt(1 + sigma * sigma);
      const x0 = new Float64Array(x.length);
      for (let k = 0; k < x.length; k++) {
        const v = Math.fround(x[k] * scale) - sigma * noise[k]; // x in variance-exploding coordinates, minus noise
        x0[k] = clip ? Math.max(Math.min(v, clip[1][k % dim]), clip[0][k % dim]) : v;
      }
      let r = null; // h_{i-1} / h_i, with h = log(sigma / sigma_next)
      if (memory.previous && sigmaNext > 0) r = Math.log(plan.sigmas[i - 1] / sigma) / Math.log(sigma / sigmaNext);
      const alphaNext = 1 / Math.sqrt(1 + sigmaNext * sigmaNext);
      const ratio = (sigmaNext * alphaNext) / (sigma / scale);
      const next = new Float64Array(x.length);
      for (let k = 0; k < x.length; k++) {
        const d = r === null ? x0[k] : x0[k] + (x0[k] - memory.previous[k]) / (2 * r);
        next[k] = Math.fround(ratio * x[k] + alphaNext * (1 - sigmaNext / sigma) * d);
      }
      memory.previous = x0;
      return next;
    },
  },
  euler: {
    plan: karrasPlan,
    // Euler's method on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (Karras et al. 2022, eq. 3)
    step({ x, noise, plan, i, clip, dim }) {
      const [sigma, sigmaNext] = [plan.sigmas[i], plan.sigmas[i + 1]];
      const slope = karrasSlope(x, noise, sigma, clip, dim);
      return eulerTo(x, slope, sigma, sigmaNext);
    },
  },
  heun: {
    plan: karrasPlan,
    // Heun's method (Karras et al. 2022, Algorithm 1 without churn): an Euler step, then the average of the slopes
    // at both ends, the second taken at the next step's timestep; the last step, to sigma = 0, stays Euler's
    async step({ x, noise, plan, i, clip, dim, predict }) {
      const [sigma, sigmaNext] = [plan.sigmas[i], plan.sigmas[i + 1]];
      const slope = karrasSlope(x, noise, sigma, clip, dim);
      const predicted = eulerTo(x, slope, sigma, sigmaNext); // the Euler step, in the model's (VP) coordinates
      if (sigmaNext === 0) return predicted;
      const slopeNext = karrasSlope(predicted, await predict(predicted, plan.timesteps[i + 1]), sigmaNext, clip, dim);
      const average = slope.map((v, k) => (v + slopeNext[k]) / 2);
      return eulerTo(x, average, sigma, sigmaNext);
    },
  },
};

// (x_ve - D(x; sigma)) / sigma for the VP state x (n * dim) and the noise predicted there: x_ve = x sqrt(1 + sigma^2)
// in variance-exploding coordinates, D = x_ve - sigma noise clipped to the data's range (core/samplers._denoised)
function karrasSlope(x, noise, sigma, clip, dim) {
  const scale = Math.sqrt(1 + sigma * sigma);
  return x.map((v, k) => {
    let d = v * scale - sigma * noise[k];
    if (clip) d = Math.max(Math.min(d, clip[1][k % dim]), clip[0][k % dim]);
    return (v * scale - d) / sigma;
  });
}

// the VP state at sigmaNext after a step of `slope` from the VP state x at sigma (x_ve + (sigma' - sigma) slope,
// then back by sqrt(1 + sigma'^2))
function eulerTo(x, slope, sigma, sigmaNext) {
  const [scale, scaleNext] = [Math.sqrt(1 + sigma * sigma), Math.sqrt(1 + sigmaNext * sigmaNext)];
  return x.map((v, k) => (v * scale + (sigmaNext - sigma) * slope[k]) / scaleNext);
}

// Walk the reverse process from `initial` (n, dim) noise. Returns the samples and every state on the way (the
// noise first), each with the step t it sits at: T for the noise, timesteps[i] + 1 after i steps, 0 at the end.
async function runSampler(name, { predictor, schedule, n, dim, steps, eta, clip, rng, initial }) {
  if (!(name in SAMPLERS)) throw new Error(`unknown sampler ${name}; choose from ${Object.keys(SAMPLERS).join(", ")}`);
  const sampler = SAMPLERS[name];
  const plan = sampler.plan(schedule, steps);
  const timesteps = plan.timesteps;
  let x = Float64Array.from(initial);
  const states = [Float32Array.from(x)];
  const at = [schedule.T];
  const memory = {};
  for (let i = 0; i < timesteps.length; i++) {
    const noise = await predictor(x, n, timesteps[i]);
    const predict = (at, t) => predictor(at, n, t); // a second call within the step (heun)
    x = await sampler.step({ schedule, x, noise, plan, timesteps, i, clip, dim, eta, rng, memory, predict });
    states.push(Float32Array.from(x));
    at.push(i + 1 < timesteps.length ? timesteps[i + 1] + 1 : 0);
  }
  return { samples: x, states, timesteps: at };
}

// x_t ~ q(x_t | x0) after s noising steps (s = 0: x0 itself), one fixed noise draw per point as viz/processes.py
function addNoise(schedule, x0, noise, s) {
  if (s === 0) return Float64Array.from(x0);
  const a = schedule.sqrt_alphas_cumprod[s - 1];
  const b = schedule.sqrt_one_minus_alphas_cumprod[s - 1];
  return x0.map((v, i) => a * v + b * noise[i]);
}

// ---- flow runs (core/flow.py): x_t = (1 - t) x0 + t noise, from t = 1 (noise) to t = 0 (data) along dx/dt = v

// v(x_t, t) for a batch of n at one time t in [0, 1] (flow.velocity_predictor: the network sees t * timeScale),
// guided as makeOutput guides; where the run clips, the x0 it implies, x_t - t v, is clipped to the data's range
// and v follows it (flow._clipped); at t = 0 nothing is implied and v is left alone
function makeVelocity(network, timeScale, clip, dim, options = {}) {
  const output = makeOutput(network, options);
  return (x, n, t) =>
    then(output(x, n, Math.fround(t * timeScale)), (v) => {
      if (clip && t > 0) {
        for (let k = 0; k < v.length; k++) {
          const x0 = Math.max(Math.min(x[k] - t * v[k], clip[1][k % dim]), clip[0][k % dim]);
          v[k] = (x[k] - x0) / t;
        }
      }
      return v;
    });
}

// x + h v, a new array
function axpy(x, h, v) {
  return x.map((value, k) => value + h * v[k]);
}

// The flow samplers of the page, each one step from t to tNext < t (flow.euler_step, heun_step, midpoint_step);
// the adaptive ode sampler is Python's alone
const FLOW_SAMPLERS = {
  euler: async (velocity, x, n, t, tNext) => axpy(x, tNext - t, await velocity(x, n, t)),
  // Heun's method (explicit trapezoid): two calls, second order; the last step, to t = 0, Euler's
  heun: async (velocity, x, n, t, tNext) => {
    const h = tNext - t;
    const d1 = await velocity(x, n, t);
    if (tNext === 0) return axpy(x, h, d1);
    const d2 = await velocity(axpy(x, h, d1), n, tNext);
    return x.map((value, k) => value + (h * (d1[k] + d2[k])) / 2);
  },
  // the explicit midpoint rule: the velocity half a step on; two calls, second order
  midpoint: async (velocity, x, n, t, tNext) => {
    const h = tNext - t;
    const half = axpy(x, h / 2, await velocity(x, n, t));
    return axpy(x, h, await velocity(half, n, Math.fround(t + h / 2)));
  },
};

// (steps + 1) times from 1 down to 0, evenly spaced (flow.time_grid): the float32 values of torch.linspace, which
// steps from the start for the first half and from the end for the rest
function flowTimes(steps) {
  const step = Math.fround(-1 / steps);
  const half = Math.floor((steps + 1) / 2);
  return Array.from({ length: steps + 1 }, (_, i) => Math.fround(i < half ? 1 + step * i : -step * (steps - i)));
}

// Integrate from `initial` (n, dim) noise at t = 1 to t = 0 in `steps` even steps. Returns the samples and every
// state on the way (the noise first), with the time each sits at.
async function runFlowSampler(name, { velocity, n, steps, initial }) {
  if (!(name in FLOW_SAMPLERS)) {
    throw new Error(`unknown sampler ${name}; choose from ${Object.keys(FLOW_SAMPLERS).join(", ")}`);
  }
  const times = flowTimes(steps);
  let x = Float64Array.from(initial);
  const states = [Float32Array.from(x)];
  for (let i = 0; i < steps; i++) {
    x = await FLOW_SAMPLERS[name](velocity, x, n, times[i], times[i + 1]);
    states.push(Float32Array.from(x));
  }
  return { samples: x, states, timesteps: times };
}

// x_t = (1 - t) x0 + t noise (flow.interpolate), one fixed noise draw per point
function interpolate(x0, noise, t) {
  return x0.map((v, i) => (1 - t) * v + t * noise[i]);
}
