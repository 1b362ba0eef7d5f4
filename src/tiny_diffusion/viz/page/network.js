// The run's PointMLP (models/mlp.py) as a batched float32 forward pass over n points at once:
// embed each coordinate and the timestep, concatenate, Linear + GELU, residual GELU blocks, Linear out.
// A conditional run adds its class's embedding to the first layer's output (models/conditioning.py).
// The first layer and the residual blocks multiply in WebAssembly SIMD (simd.js) where the browser has it.

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

// out (n, size) = bias + x W^T in JavaScript, for what SIMD does not take: W (size, width) as torch stores it, of
// which the first `rows` columns are used; x (n, rows) in rows `stride` apart. Two points times two outputs at a
// time: each weight and input read serves two products, and the four sums stay in registers.
function linear({ w, bias, size, width }, x, n, stride, rows, out) {
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const xa = i * stride;
    const xb = xa + stride;
    const oa = i * size;
    const ob = oa + size;
    let j = 0;
    for (; j + 1 < size; j += 2) {
      const wa = j * width;
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
      let a = bias[j];
      let b = a;
      for (let k = 0; k < rows; k++) {
        a += x[xa + k] * w[j * width + k];
        b += x[xb + k] * w[j * width + k];
      }
      out[oa + j] = a;
      out[ob + j] = b;
    }
  }
  for (; i < n; i++) {
    for (let j = 0; j < size; j++) {
      let a = bias[j];
      for (let k = 0; k < rows; k++) a += x[i * stride + k] * w[j * width + k];
      out[i * size + j] = a;
    }
  }
}

// Float32 arrays side by side in one buffer: WebAssembly's memory where SIMD runs (its products read and write
// there), else a plain ArrayBuffer. Growing replaces the buffer, so views are made afresh where they are used.
function makeArena(simd) {
  let buffer = simd ? simd.memory.buffer : new ArrayBuffer(1 << 16);
  let used = 0;
  function ensure(bytes) {
    if (bytes <= buffer.byteLength) return;
    if (simd) {
      simd.memory.grow(Math.ceil((bytes - buffer.byteLength) / 65536));
      buffer = simd.memory.buffer;
    } else {
      const bigger = new ArrayBuffer(Math.max(bytes, 2 * buffer.byteLength));
      new Uint8Array(bigger).set(new Uint8Array(buffer));
      buffer = bigger;
    }
  }
  return {
    // room for `count` floats (16-byte aligned) -> its byte offset
    alloc(count) {
      const offset = used;
      used += Math.ceil(count / 4) * 16;
      ensure(used);
      return offset;
    },
    view: (offset, count) => new Float32Array(buffer, offset, count),
    get used() {
      return used;
    },
    set used(bytes) {
      used = bytes;
    },
  };
}

function makeNetwork(spec, dim) {
  const simd = makeSimd();
  const arena = makeArena(simd);
  const inputs = spec.inputs.map(decodeEmbedding);
  const time = decodeEmbedding(spec.time);
  const labels = spec.labels ? { weight: decodeFloats(spec.labels.weight), null: spec.labels.null } : null;
  const inputWidth = inputs.reduce((sum, e) => sum + e.size, 0);
  // each Linear's weight (out, in) and bias in the arena, by byte offset
  const place = (layer) => {
    const placed = { size: layer.out, width: layer.in, w: arena.alloc(layer.weight.length), b: arena.alloc(layer.out) };
    arena.view(placed.w, layer.weight.length).set(decodeFloats(layer.weight));
    arena.view(placed.b, layer.out).set(decodeFloats(layer.bias));
    return placed;
  };
  const first = place(spec.first);
  const blocks = spec.blocks.map(place);
  const last = place(spec.last);
  const hidden = first.size;
  const timeBias = arena.alloc(hidden); // the first layer's bias plus its time columns times the embedding of t
  const weightsEnd = arena.used;
  const timeBiases = new Map();
  const views = (layer) => ({
    ...layer,
    w: arena.view(layer.w, layer.size * layer.width),
    bias: arena.view(layer.b, layer.size),
  });

  function firstBias(t) {
    if (!timeBiases.has(t)) {
      const features = new Float32Array(time.size);
      EMBEDDINGS[time.kind]([t], time, features, time.size, 0);
      const { w, bias } = views(first);
      const out = Float32Array.from(bias);
      for (let j = 0; j < hidden; j++) {
        for (let k = 0; k < time.size; k++) out[j] += features[k] * w[j * first.width + inputWidth + k];
      }
      timeBiases.set(t, out);
    }
    return timeBiases.get(t);
  }

  // out (n, layer.size) = bias + x W^T over the first `rows` columns of W, x (n, rows) in the arena
  function product(layer, x, n, rows, out, bias = layer.b) {
    if (simd && rows % 4 === 0 && layer.size % 2 === 0) {
      // an odd n is rounded up: the buffers hold a spare row
      simd.linear(x, rows * 4, n + (n % 2), layer.w, layer.width * 4, layer.size, rows, bias, out);
    } else {
      const placed = { ...views(layer), bias: arena.view(bias, layer.size) };
      linear(placed, arena.view(x, (n + 1) * rows), n, rows, rows, arena.view(out, (n + 1) * layer.size));
    }
  }

  // x: (n, dim) model coordinates; t: one integer step for all; label: (n,) class indices or null -> (n, dim)
  function forward(x, n, t, label = null) {
    arena.used = weightsEnd; // the buffers of the last call are free again
    const features = arena.alloc((n + 1) * inputWidth);
    const h = arena.alloc((n + 1) * hidden);
    const g = arena.alloc((n + 1) * hidden);
    const featureView = arena.view(features, (n + 1) * inputWidth);
    const column = new Float64Array(n);
    let offset = 0;
    for (let d = 0; d < dim; d++) {
      for (let i = 0; i < n; i++) column[i] = x[i * dim + d];
      EMBEDDINGS[inputs[d].kind](column, inputs[d], featureView, inputWidth, offset);
      offset += inputs[d].size;
    }
    arena.view(timeBias, hidden).set(firstBias(t));
    product(first, features, n, inputWidth, h, timeBias);
    const hv = arena.view(h, n * hidden);
    if (label !== null) {
      if (!labels) throw new Error("this run is not conditional");
      for (let i = 0; i < n; i++) {
        const e = label[i] * hidden;
        for (let j = 0; j < hidden; j++) hv[i * hidden + j] += labels.weight[e + j];
      }
    }
    for (let i = 0; i < n * hidden; i++) hv[i] = gelu(hv[i]);
    for (const block of blocks) {
      product(block, h, n, hidden, g);
      const gv = arena.view(g, n * hidden);
      const hNow = arena.view(h, n * hidden);
      for (let i = 0; i < n * hidden; i++) hNow[i] += gelu(gv[i]);
    }
    const out = new Float32Array(n * dim);
    linear(views(last), arena.view(h, n * hidden), n, hidden, hidden, out);
    return out;
  }

  return { forward, dim, nullLabel: labels ? labels.null : null, simd: simd !== null };
}
