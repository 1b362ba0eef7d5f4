// The run's PointMLP (models/mlp.py) as a batched float32 forward pass over n points at once:
// embed each coordinate and the timestep, concatenate, Linear + GELU, residual GELU blocks, Linear out.
// A conditional run adds its class's embedding to the first layer's output (models/conditioning.py).

function decodeFloats(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

// erf to float32 accuracy (|error| < 1e-7): the rational approximation of Eigen's and XLA's float erf, on [-4, 4]
// (beyond it erf is +-1 in float32). torch's nn.GELU is the exact x Phi(x), so tanh-style shortcuts would not do.
const ERF_NUM = [-1.60960333262415e-2, -2.95459980854025e-3, -7.34990630326855e-4, -5.69250639462346e-5,
  -2.10102402082508e-6, 2.77068142495902e-8, -2.72614225801306e-10];
const ERF_DEN = [-1.42647390514189e-2, -7.37332916720468e-3, -1.68282697438203e-3, -2.13374055278905e-4,
  -1.45660718464996e-5];

function erf(value) {
  const x = value > 4 ? 4 : value < -4 ? -4 : value;
  const x2 = x * x;
  const p = ((((((ERF_NUM[6] * x2 + ERF_NUM[5]) * x2 + ERF_NUM[4]) * x2 + ERF_NUM[3]) * x2 + ERF_NUM[2]) * x2 +
    ERF_NUM[1]) * x2 + ERF_NUM[0]) * x;
  const q = (((ERF_DEN[4] * x2 + ERF_DEN[3]) * x2 + ERF_DEN[2]) * x2 + ERF_DEN[1]) * x2 + ERF_DEN[0];
  return p / q;
}

const gelu = (x) => 0.5 * x * (1 + erf(x * Math.SQRT1_2));

// embeddings (models/embeddings.py) by kind: (values (n,), params) -> (n, size) written into out at column offset
const EMBEDDINGS = {
  sinusoidal(values, p, out, stride, offset) {
    const half = p.freqs.length;
    for (let i = 0; i < values.length; i++) {
      const x = Math.fround(values[i]);
      const row = i * stride + offset;
      for (let j = 0; j < half; j++) {
        const angle = Math.fround(x * p.freqs[j]);
        out[row + j] = Math.sin(angle);
        out[row + half + j] = Math.cos(angle);
      }
    }
  },
  learnable(values, p, out, stride, offset) {
    for (let i = 0; i < values.length; i++) {
      const x = Math.fround(values[i] / p.divisor);
      for (let j = 0; j < p.size; j++) out[i * stride + offset + j] = x * p.weight[j] + p.bias[j];
    }
  },
  linear(values, p, out, stride, offset) {
    for (let i = 0; i < values.length; i++) out[i * stride + offset] = values[i] * p.factor;
  },
  identity(values, p, out, stride, offset) {
    for (let i = 0; i < values.length; i++) out[i * stride + offset] = values[i];
  },
  zero(values, p, out, stride, offset) {
    for (let i = 0; i < values.length; i++) out[i * stride + offset] = 0;
  },
};

function decodeEmbedding(spec) {
  if (!(spec.kind in EMBEDDINGS)) throw new Error(`unknown embedding ${spec.kind}`);
  const p = { ...spec };
  for (const key of ["freqs", "weight", "bias"]) if (key in spec) p[key] = decodeFloats(spec[key]);
  return p;
}

function decodeLinear(spec) {
  return { in: spec.in, out: spec.out, weight: decodeFloats(spec.weight), bias: decodeFloats(spec.bias) };
}

// out (n, layer.out) = bias + x W^T, with x (n, rows) read from column `from` of rows `stride` wide and W
// (out, in) as torch stores it, from its column `from`. Two points times two outputs at a time: each weight and
// input read serves two products, and the four sums stay in registers (about 3x a plain loop in V8).
function linear(layer, x, n, out, { stride = layer.in, from = 0, rows = layer.in, bias = layer.bias } = {}) {
  const size = layer.out;
  const w = layer.weight;
  const width = layer.in;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const xa = i * stride + from;
    const xb = xa + stride;
    const oa = i * size;
    const ob = oa + size;
    let j = 0;
    for (; j + 1 < size; j += 2) {
      const wa = j * width + from;
      const wb = wa + width;
      let a0 = bias[j];
      let a1 = bias[j + 1];
      let b0 = a0;
      let b1 = a1;
      for (let k = 0; k < rows; k++) {
        const u = x[xa + k];
        const v = x[xb + k];
        const p = w[wa + k];
        const q = w[wb + k];
        a0 += u * p;
        a1 += u * q;
        b0 += v * p;
        b1 += v * q;
      }
      out[oa + j] = a0;
      out[oa + j + 1] = a1;
      out[ob + j] = b0;
      out[ob + j + 1] = b1;
    }
    for (; j < size; j++) {
      const wa = j * width + from;
      let a = bias[j];
      let b = a;
      for (let k = 0; k < rows; k++) {
        a += x[xa + k] * w[wa + k];
        b += x[xb + k] * w[wa + k];
      }
      out[oa + j] = a;
      out[ob + j] = b;
    }
  }
  for (; i < n; i++) {
    const xa = i * stride + from;
    for (let j = 0; j < size; j++) {
      const wa = j * width + from;
      let a = bias[j];
      for (let k = 0; k < rows; k++) a += x[xa + k] * w[wa + k];
      out[i * size + j] = a;
    }
  }
}

function makeNetwork(spec, dim) {
  const inputs = spec.inputs.map(decodeEmbedding);
  const time = decodeEmbedding(spec.time);
  const first = decodeLinear(spec.first);
  const blocks = spec.blocks.map(decodeLinear);
  const last = decodeLinear(spec.last);
  const labels = spec.labels ? { weight: decodeFloats(spec.labels.weight), null: spec.labels.null } : null;
  const hidden = first.out;
  const inputWidth = inputs.reduce((sum, e) => sum + e.size, 0);
  const timeBias = new Map(); // t -> the first layer's bias plus its time columns times the embedding of t
  let buffers = { n: 0 };

  function firstBias(t) {
    if (!timeBias.has(t)) {
      const features = new Float32Array(first.in);
      EMBEDDINGS[time.kind]([t], time, features, first.in, inputWidth);
      const out = new Float32Array(hidden);
      linear(first, features, 1, out, { from: inputWidth, rows: time.size });
      timeBias.set(t, out);
    }
    return timeBias.get(t);
  }

  function buffersFor(n) {
    if (buffers.n < n) {
      buffers = {
        n,
        features: new Float32Array(n * inputWidth),
        column: new Float64Array(n),
        h: new Float32Array(n * hidden),
        g: new Float32Array(n * hidden),
        out: new Float32Array(n * dim),
      };
    }
    return buffers;
  }

  // x: (n, dim) model coordinates; t: one integer step for all; label: (n,) class indices or null -> (n, dim)
  function forward(x, n, t, label = null) {
    const b = buffersFor(n);
    let offset = 0;
    for (let d = 0; d < dim; d++) {
      const column = b.column.subarray(0, n);
      for (let i = 0; i < n; i++) column[i] = x[i * dim + d];
      EMBEDDINGS[inputs[d].kind](column, inputs[d], b.features, inputWidth, offset);
      offset += inputs[d].size;
    }
    const h = b.h;
    linear(first, b.features, n, h, { stride: inputWidth, from: 0, rows: inputWidth, bias: firstBias(t) });
    if (label !== null) {
      if (!labels) throw new Error("this run is not conditional");
      for (let i = 0; i < n; i++) {
        const e = label[i] * hidden;
        for (let j = 0; j < hidden; j++) h[i * hidden + j] += labels.weight[e + j];
      }
    }
    for (let i = 0; i < n * hidden; i++) h[i] = gelu(h[i]);
    for (const block of blocks) {
      linear(block, h, n, b.g);
      for (let i = 0; i < n * hidden; i++) h[i] += gelu(b.g[i]);
    }
    linear(last, h, n, b.out);
    return b.out.slice(0, n * dim);
  }

  return { forward, dim, nullLabel: labels ? labels.null : null };
}
