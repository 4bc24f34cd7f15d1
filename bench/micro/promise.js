// promise.js — promise create + resolve + callback in Node.js, the peer of
// tide_promise.lua (same figures, same N).
// Usage: node promise.js [N=1000000]
//   promise_batch: N x (new Promise + resolve + .then(cb)) queued in one
//                  loop, timed until the last callback ran
//   promise_seq:   the same N steps, each callback making the next
'use strict';
const N = Number(process.argv[2] || 1000000);
const report = (figure, ns) =>
  console.log(`RESULT ${figure} ${Math.round(N / (Number(ns) / 1e9))} ops/s`);

function batch() {
  return new Promise((done) => {
    let count = 0;
    const cb = () => { if (++count === N) done(); };
    for (let i = 0; i < N; i++) {
      let resolve;
      const p = new Promise((r) => { resolve = r; });
      p.then(cb);
      resolve(i);
    }
  });
}

function seq() {
  return new Promise((done) => {
    let k = 0;
    const step = () => {
      if (++k === N) { done(); return; }
      let resolve;
      const p = new Promise((r) => { resolve = r; });
      p.then(step);
      resolve(k);
    };
    step();
  });
}

(async () => {
  let t0 = process.hrtime.bigint();
  await batch();
  report('promise_batch', process.hrtime.bigint() - t0);
  t0 = process.hrtime.bigint();
  await seq();
  report('promise_seq', process.hrtime.bigint() - t0);
})();
