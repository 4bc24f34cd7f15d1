// pool.js — the Node.js peer of tide_pool.lua: worker_threads, a message
// to a Worker and its reply as the round trip.
// Usage: node pool.js [SEQ=20000] [BATCH=200000] [SPIN=536870912]
//   pool_seq:     SEQ messages one at a time to one Worker, each answered
//   pool_batch:   BATCH messages posted at once to one Worker, until the
//                 last reply
//   pool_speedup: SPIN iterations of the LCG in one Worker, then split over
//                 one Worker per CPU; time(one) / time(split), each the best of 3 runs. Workers are
//                 started (and warmed) before the clock starts.
'use strict';
const { Worker } = require('worker_threads');
const os = require('os');
const SEQ = Number(process.argv[2] || 20000);
const BATCH = Number(process.argv[3] || 200000);
const SPIN = Number(process.argv[4] || 536870912);
const cpus = os.availableParallelism ? os.availableParallelism() : os.cpus().length;

const workerSource = `
const { parentPort } = require('worker_threads');
parentPort.on('message', (m) => {
  if (typeof m === 'number') { parentPort.postMessage(m); return; }
  let x = m.seed;
  for (let i = 0; i < m.spin; i++) x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
  parentPort.postMessage(x);
});`;
const newWorker = () => new Worker(workerSource, { eval: true });

// posts `msgs` to worker `w`; resolves when as many replies came back
function exchange(w, msgs) {
  return new Promise((resolve) => {
    let left = msgs.length;
    const onMessage = () => { if (--left === 0) { w.off('message', onMessage); resolve(); } };
    w.on('message', onMessage);
    for (const m of msgs) w.postMessage(m);
  });
}

(async () => {
  const workers = Array.from({ length: cpus }, newWorker);
  await Promise.all(workers.map((w) => exchange(w, [{ spin: 100000, seed: 1 }])));
  const w = workers[0];

  let t0 = process.hrtime.bigint();
  for (let i = 0; i < SEQ; i++) await exchange(w, [i]);
  console.log(`RESULT pool_seq ${Math.round(SEQ / (Number(process.hrtime.bigint() - t0) / 1e9))} ops/s`);

  const batch = Array.from({ length: BATCH }, (_, i) => i);
  t0 = process.hrtime.bigint();
  await exchange(w, batch);
  console.log(`RESULT pool_batch ${Math.round(BATCH / (Number(process.hrtime.bigint() - t0) / 1e9))} ops/s`);

  const split = async (parts) => {
    const s0 = process.hrtime.bigint();
    await Promise.all(workers.slice(0, parts).map((wk, i) =>
      exchange(wk, [{ spin: Math.floor(SPIN / parts), seed: i + 1 }])));
    return Number(process.hrtime.bigint() - s0) / 1e9;
  };
  // best of 3 each: the least disturbed by other tenants of the machine
  const best = async (parts) => Math.min(await split(parts), await split(parts), await split(parts));
  const one = await best(1);
  const all = await best(cpus);
  console.log(`RESULT pool_speedup ${(one / all).toFixed(2)} x (${cpus} cpus, ${one.toFixed(3)} s one job, ${all.toFixed(3)} s split)`);
  for (const wk of workers) await wk.terminate();
})();
