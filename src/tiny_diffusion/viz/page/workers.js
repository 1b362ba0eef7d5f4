// Forward passes in Web Workers: the points of a draw are split between up to 4 workers, each running this same
// script (from a Blob URL, which works from file:// too) with its own copy of the run's networks (the model, and an
// autoguided run's guide). Each point's output is the same, bit for bit, whichever worker computes it; where
// workers cannot start, the page's thread does the work.

if (typeof document === "undefined") {
  // inside a worker: serve forward passes of the networks it was sent, `which` one of them
  let networks = null;
  self.onmessage = ({ data }) => {
    if (data.specs) {
      networks = data.specs.map((spec) => makeNetwork(spec, data.dim));
      return;
    }
    const out = networks[data.which].forward(data.x, data.n, data.t, data.labels);
    self.postMessage(out, [out.buffer]);
  };
  return; // the rest of the script is the page's
}

const WORKER_SOURCE = document.currentScript ? document.currentScript.textContent : null;
const MIN_POINTS_PER_WORKER = 256;

// networks (built on this thread from specs) -> one {forward, dim, nullLabel} each, whose forward (x, n, t, labels)
// gives a Promise of that network's output (n * dim): in workers, which all hold every network, when n is large
// enough
function makeParallelForwards(networks, specs, dim) {
  const count = Math.min(4, navigator.hardwareConcurrency || 1);
  const workers = [];
  if (WORKER_SOURCE && count > 1) {
    try {
      const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
      for (let w = 0; w < count; w++) {
        const worker = new Worker(url);
        const pending = [];
        worker.onmessage = ({ data }) => pending.shift().resolve(data);
        worker.onerror = (event) => {
          event.preventDefault();
          while (pending.length) pending.shift().reject(new Error(event.message || "a worker failed"));
        };
        worker.postMessage({ specs, dim });
        workers.push({ worker, pending });
      }
    } catch (error) {
      workers.length = 0; // no workers here: the page's thread computes
    }
  }

  function inWorker(w, message) {
    return new Promise((resolve, reject) => {
      workers[w].pending.push({ resolve, reject });
      workers[w].worker.postMessage(message);
    });
  }

  const forwardOf = (which) => async (x, n, t, labels = null) => {
    const parts = Math.min(workers.length, Math.floor(n / MIN_POINTS_PER_WORKER));
    if (parts < 2) return networks[which].forward(x, n, t, labels);
    const bounds = Array.from({ length: parts + 1 }, (_, p) => Math.round((p * n) / parts));
    const outputs = await Promise.all(
      bounds.slice(0, -1).map((start, p) => {
        const end = bounds[p + 1];
        return inWorker(p, {
          which,
          x: Float64Array.from(x.subarray(start * dim, end * dim)),
          n: end - start,
          t,
          labels: labels ? labels.slice(start, end) : null,
        });
      }),
    );
    const out = new Float32Array(n * dim);
    outputs.forEach((part, p) => out.set(part, bounds[p] * dim));
    return out;
  };
  const forwards = networks.map((network, which) => ({ forward: forwardOf(which), dim, nullLabel: network.nullLabel }));
  return { forwards, workers: workers.length };
}
