// node_echo.js — Node.js `net` echo server, a peer of tide's echo benchmark.
// Usage: node node_echo.js PORT   (listens on 127.0.0.1:PORT, backlog 1024)
'use strict';
const net = require('net');
const port = Number(process.argv[2]);
if (!(port > 0 && port < 65536)) {
  console.error('usage: node node_echo.js PORT');
  process.exit(2);
}
const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.on('data', (chunk) => {
    // backpressure: pause reading while the kernel does not take the echo
    if (!sock.write(chunk)) {
      sock.pause();
      sock.once('drain', () => sock.resume());
    }
  });
  sock.on('error', () => sock.destroy());
});
server.listen({ host: '127.0.0.1', port, backlog: 1024 });
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
