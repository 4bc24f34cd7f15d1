// mem.js — the Node.js peer of tide_mem.lua (run with --expose-gc): an
// async function suspended at `await` two calls deep on one shared pending
// promise; heapUsed delta / N after a full collection. Context only.
// Usage: node --expose-gc mem.js [N=100000]
'use strict';
const N = Number(process.argv[2] || 100000);
let open;
const gate = new Promise((r) => { open = r; });
async function deep2() { return await gate; }
async function deep1() { const v = await deep2(); return v; }
(async () => {
  global.gc(); global.gc();
  const before = process.memoryUsage().heapUsed;
  const tasks = new Array(N);
  for (let i = 0; i < N; i++) tasks[i] = deep1();
  await null;
  global.gc(); global.gc();
  const after = process.memoryUsage().heapUsed;
  console.log(`RESULT mem_task ${Math.round((after - before) / N)} B`);
  open(true);
  await tasks[N - 1];
})();
