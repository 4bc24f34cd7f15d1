// node_http.js — Node.js `http` hello-world server, a peer of tide's HTTP
// benchmark: every request gets a keep-alive 200 "Hello, World!".
// Usage: node node_http.js PORT   (listens on 127.0.0.1:PORT, backlog 1024)
'use strict';
const http = require('http');
const port = Number(process.argv[2]);
if (!(port > 0 && port < 65536)) {
  console.error('usage: node node_http.js PORT');
  process.exit(2);
}
const body = 'Hello, World!';
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
});
server.listen({ host: '127.0.0.1', port, backlog: 1024 });
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
