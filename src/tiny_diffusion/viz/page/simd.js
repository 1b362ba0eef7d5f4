// The matrix products of network.js in WebAssembly SIMD, where the browser has it (every current one does): four
// float32 lanes at a time, two points times two outputs per pass, about 3x the plain JavaScript loop. The module is
// assembled here, byte by byte, from the instructions below: nothing is fetched and there is no binary to trust.
//
// linear(x, xStride, n, w, wStride, outSize, rows, bias, out): for i < n (even), j < outSize (even),
//   out[i, j] = bias[j] + sum over k < rows (a multiple of 4) of x[i, k] w[j, k]
// with every argument a byte offset into the memory, or a row's stride in bytes.

function leb(value) {
  // unsigned LEB128 (sizes, indices)
  const bytes = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value) byte |= 0x80;
    bytes.push(byte);
  } while (value);
  return bytes;
}

function assembleLinear() {
  const [x, xStride, n, w, wStride, outSize, rows, bias, out] = [0, 1, 2, 3, 4, 5, 6, 7, 8]; // parameters (i32)
  const [i, j, k, xa, xb, wa, wb, end, o] = [9, 10, 11, 12, 13, 14, 15, 16, 17]; // i32 locals
  const [a0, a1, b0, b1, va, vb, vp, vq] = [18, 19, 20, 21, 22, 23, 24, 25]; // v128 locals
  const get = (l) => [0x20, l];
  const set = (l) => [0x21, l];
  const i32 = (v) => [0x41, ...leb(v)]; // small non-negative constants only
  const add = [0x6a];
  const mul = [0x6c];
  const geS = [0x4e];
  const simd = (op) => [0xfd, ...leb(op)];
  const load128 = (l) => [...get(l), ...get(k), ...add, ...simd(0x00), 0, 0]; // v128.load at l + k
  const fma = (acc, p, q) => [...get(acc), ...get(p), ...get(q), ...simd(0xe6), ...simd(0xe4), ...set(acc)];
  const zero = (l) => [...simd(0x0c), ...new Array(16).fill(0), ...set(l)];
  const lane = (l, m) => [...get(l), ...simd(0x1f), m];
  const sum = (l) => [...lane(l, 0), ...lane(l, 1), 0x92, ...lane(l, 2), ...lane(l, 3), 0x92, 0x92]; // f32.add
  // out[row + column] = bias[column] + sum of the lanes of acc (row, column: byte offsets)
  const store = (row, column, acc) => [
    ...row, ...column, ...add,
    ...get(bias), ...column, ...add, 0x2a, 2, 0, // f32.load
    ...sum(acc), 0x92,
    0x38, 2, 0, // f32.store
  ];
  const j4 = [...get(j), ...i32(4), ...mul];
  const j4next = [...j4, ...i32(4), ...add];
  const nextRow = [...get(o), ...get(outSize), ...i32(4), ...mul, ...add];
  const loop = (counter, limit, body) => [
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(counter), ...get(limit), ...geS, 0x0d, 1, // exit the block when counter >= limit
    ...body,
    0x0c, 0, 0x0b, 0x0b, // back to the loop; end loop, end block
  ];
  const body = [
    ...get(rows), ...i32(4), ...mul, ...set(end),
    ...i32(0), ...set(i),
    ...loop(i, n, [
      ...get(x), ...get(i), ...get(xStride), ...mul, ...add, ...set(xa),
      ...get(xa), ...get(xStride), ...add, ...set(xb),
      ...get(out), ...get(i), ...get(outSize), ...mul, ...i32(4), ...mul, ...add, ...set(o),
      ...i32(0), ...set(j),
      ...loop(j, outSize, [
        ...get(w), ...get(j), ...get(wStride), ...mul, ...add, ...set(wa),
        ...get(wa), ...get(wStride), ...add, ...set(wb),
        ...zero(a0), ...zero(a1), ...zero(b0), ...zero(b1),
        ...i32(0), ...set(k),
        ...loop(k, end, [
          ...load128(xa), ...set(va), ...load128(xb), ...set(vb),
          ...load128(wa), ...set(vp), ...load128(wb), ...set(vq),
          ...fma(a0, va, vp), ...fma(a1, va, vq), ...fma(b0, vb, vp), ...fma(b1, vb, vq),
          ...get(k), ...i32(16), ...add, ...set(k),
        ]),
        ...store(get(o), j4, a0), ...store(get(o), j4next, a1),
        ...store(nextRow, j4, b0), ...store(nextRow, j4next, b1),
        ...get(j), ...i32(2), ...add, ...set(j),
      ]),
      ...get(i), ...i32(2), ...add, ...set(i),
    ]),
    0x0b,
  ];
  const code = [2, 9, 0x7f, 8, 0x7b, ...body]; // locals: 9 i32, 8 v128
  const section = (id, content) => [id, ...leb(content.length), ...content];
  const name = (text) => [text.length, ...Array.from(text, (c) => c.charCodeAt(0))];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, [1, 0x60, 9, ...new Array(9).fill(0x7f), 0]), // type: (9 x i32) -> ()
    ...section(2, [1, ...name("env"), ...name("memory"), 0x02, 0x00, 1]), // import memory, at least 1 page
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(7, [1, ...name("linear"), 0x00, 0]), // export it
    ...section(10, [1, ...leb(code.length), ...code]),
  ]);
}

// A memory the network's weights and buffers live in, and the SIMD product over it; null where WebAssembly SIMD
// is missing (the page then multiplies in JavaScript).
function makeSimd() {
  try {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const module = new WebAssembly.Module(assembleLinear());
    const { linear } = new WebAssembly.Instance(module, { env: { memory } }).exports;
    return { memory, linear };
  } catch (error) {
    return null;
  }
}
