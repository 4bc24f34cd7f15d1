// bench/tools/ioredis_load.js — the same load as redis_load.lua with Node
// and ioredis: TASKS async loops share one client, each sends DEPTH
// commands, awaits them, and starts again.
// Usage: node ioredis_load.js PORT [TASKS [DEPTH [SECONDS [WARMUP [CMDS [AUTO]]]]]]
// AUTO=1 turns on ioredis's enableAutoPipelining.
'use strict';
const Redis = require('ioredis');
const [port, tasks = 50, depth = 1, seconds = 5, warmup = 1] = process.argv.slice(2, 7).map(Number);
const cmds = (process.argv[7] || 'set,get').split(',');
const auto = process.argv[8] === '1';
const r = new Redis({ port, host: '127.0.0.1', enableAutoPipelining: auto, lazyConnect: true });

async function run(cmd, secs) {
  const stop = Date.now() + secs * 1000;
  let count = 0;
  const loops = [];
  for (let i = 1; i <= tasks; i++) {
    const key = 'key:' + i;
    loops.push((async () => {
      let n = 0;
      while (Date.now() < stop) {
        const ps = [];
        for (let j = 0; j < depth; j++) ps.push(cmd === 'set' ? r.set(key, 'xxx') : r.get(key));
        await Promise.all(ps);
        n += depth;
      }
      count += n;
    })());
  }
  const t0 = process.hrtime.bigint();
  await Promise.all(loops);
  return count / (Number(process.hrtime.bigint() - t0) / 1e9);
}

(async () => {
  await r.connect();
  for (const cmd of cmds) {
    if (warmup > 0) await run(cmd, warmup);
    const rate = await run(cmd, seconds);
    console.log(`RESULT redis_${cmd}${depth > 1 ? '_p' + depth : ''} ${rate.toFixed(0)} ops/s`);
  }
  r.disconnect();
})().catch((e) => { console.error(e); process.exit(1); });
