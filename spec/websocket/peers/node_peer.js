// WebSocket peer on the npm `ws` package, for the interop specs.
//   node node_peer.js server [deflate|params]      echo server on 127.0.0.1: prints its port;
//                                           "close-me N" makes it close with code N
//   node node_peer.js client URL [deflate]  runs the client cases, prints "ok NAME"
// NODE_PATH must lead to a folder holding ws (the spec installs it).
const WebSocket = require('ws');
const crypto = require('crypto');
// "deflate": permessage-deflate with ws's defaults; "params": no context
// takeover both ways and small windows.
const params = process.argv.includes('params');
const deflate = params ? (process.argv[2] === 'server'
  ? { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: 10 }
  : { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 9 })
  : process.argv.includes('deflate');
const SIZES = [0, 125, 126, 65535, 65536, 16 * 1024 * 1024];
const digest = (b) => crypto.createHash('sha256').update(b).digest('hex');

function textOf(size) {
  return '\u20ac'.repeat(Math.floor(size / 3)) + 'a'.repeat(size % 3);
}

if (process.argv[2] === 'server') {
  const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate, maxPayload: 0 }, () => {
    console.log(wss.address().port);
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      const s = isBinary ? null : data.toString();
      if (s && s.startsWith('close-me ')) return ws.close(Number(s.split(' ')[1]), 'asked');
      ws.send(data, { binary: isBinary });
    });
  });
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
} else {
  const ws = new WebSocket(process.argv[3], { perMessageDeflate: deflate, maxPayload: 0 });
  const cases = [];
  for (const size of SIZES) for (const binary of [false, true]) for (const frag of [false, true]) cases.push([size, binary, frag]);
  let i = 0, expected;
  const fail = (m) => { console.log('not ok ' + m); process.exit(1); };
  function next() {
    if (i === cases.length) {
      ws.once('pong', (d) => { console.log('ok ping'); ws.close(4001, 'node done'); });
      ws.ping(Buffer.from('node-ping'));
      return;
    }
    const [size, binary, frag] = cases[i++];
    const data = binary ? Buffer.alloc(size, 7) : Buffer.from(textOf(size));
    expected = [size, binary, frag, digest(data)];
    if (frag && size > 2) {
      const step = binary ? Math.floor(size / 3) : 3 * (Math.floor(size / 9) + 1);
      for (let k = 0; k < size; k += step) ws.send(data.subarray(k, k + step), { binary, fin: k + step >= size });
    } else {
      ws.send(data, { binary });
    }
  }
  ws.on('open', () => {
    if (deflate && !ws.extensions.includes('permessage-deflate')) fail('permessage-deflate was not agreed');
    if (deflate) console.log('# agreed: ' + ws.extensions);
    next();
  });
  ws.on('message', (data, isBinary) => {
    const [size, binary, frag, d] = expected;
    const name = `${size} ${binary ? 'binary' : 'text'} ${frag ? 'fragmented' : 'whole'}`;
    if (isBinary !== binary || digest(data) !== d) fail(name);
    console.log('ok ' + name);
    next();
  });
  ws.on('close', (code, reason) => { console.log('ok close ' + code + ' ' + reason); process.exit(0); });
  ws.on('error', (e) => fail('error ' + e.message));
}
