// node_ws_echo.js — Node.js WebSocket echo server on the npm `ws` package, a
// peer of tide's WebSocket echo benchmark (bench/lib/websocket.sh installs
// ws into the bench's folder and sets NODE_PATH).
// Usage: node node_ws_echo.js PORT   (listens on 127.0.0.1:PORT)
'use strict';
const WebSocket = require('ws');
const port = Number(process.argv[2]);
if (!(port > 0 && port < 65536)) {
  console.error('usage: node node_ws_echo.js PORT');
  process.exit(2);
}
const wss = new WebSocket.Server({ host: '127.0.0.1', port, backlog: 1024, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws._socket.setNoDelay(true);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
