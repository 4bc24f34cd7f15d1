// timers.js — the Node.js peer of tide_timers.lua: N setTimeout(cb, 1)
// started at once, timed until the last callback ran. (Node keeps one list
// per duration, so N equal timeouts are its best case.)
// Usage: node timers.js [N=100000]
'use strict';
const N = Number(process.argv[2] || 100000);
let fired = 0;
const t0 = process.hrtime.bigint();
const cb = () => {
  if (++fired === N) {
    const ns = Number(process.hrtime.bigint() - t0);
    console.log(`RESULT timers ${Math.round(N / (ns / 1e9))} timers/s`);
  }
};
for (let i = 0; i < N; i++) setTimeout(cb, 1);
