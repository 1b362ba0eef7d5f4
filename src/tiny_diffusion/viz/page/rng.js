// Seeded randomness: xoshiro128** (Blackman & Vigna), seeded through splitmix32, and standard normal draws by
// Box-Muller. The stream is not torch's; what matches the Python side is the distribution.

function splitmix32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function makeRng(seed) {
  const mix = splitmix32(seed);
  const s = new Uint32Array([mix(), mix(), mix(), mix()]);
  const rotl = (x, k) => ((x << k) | (x >>> (32 - k))) >>> 0;
  function next() {
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }
  // uniform in (0, 1): never 0, so log() in Box-Muller is finite
  const uniform = () => (next() + 0.5) / 4294967296;
  let spare = null;
  function normal() {
    if (spare !== null) {
      const z = spare;
      spare = null;
      return z;
    }
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const angle = 2 * Math.PI * uniform();
    spare = r * Math.sin(angle);
    return r * Math.cos(angle);
  }
  // (n,) standard normal draws
  function normals(n) {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = normal();
    return out;
  }
  return { uniform, normal, normals };
}
