// spawn.js — the Node.js peer of tide_spawn.lua: async functions instead
// of tasks (context only; the goal compares tide with plain lua5.4).
// Usage: node spawn.js [N=1000000]
//   spawn_await:       N x `await f()` where f is an async function that
//                      returns at once
//   spawn_await_batch: N/10 async functions awaiting one shared pending
//                      promise, then the promise is resolved and all awaited
'use strict';
const N = Number(process.argv[2] || 1000000);
const report = (figure, ns, n) =>
  console.log(`RESULT ${figure} ${Math.round(n / (Number(ns) / 1e9))} ops/s`);

async function f() {}

(async () => {
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await f();
  report('spawn_await', process.hrtime.bigint() - t0, N);

  const M = Math.floor(N / 10);
  let open;
  const gate = new Promise((r) => { open = r; });
  const waiter = async () => { await gate; };
  t0 = process.hrtime.bigint();
  const tasks = new Array(M);
  for (let i = 0; i < M; i++) tasks[i] = waiter();
  await null;
  open();
  await tasks[M - 1];
  report('spawn_await_batch', process.hrtime.bigint() - t0, M);
})();
