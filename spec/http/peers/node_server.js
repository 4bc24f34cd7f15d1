// spec/http/peers/node_server.js — a Node.js http server the client specs
// talk to. Prints "port N" once listening; every route is one behaviour.
'use strict';
const http = require('http');
const net = require('net');

let connections = 0;
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  if (p === '/hello') {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Multi': ['a', 'b'] });
    res.end('Hello from Node');
  } else if (p === '/connections') {
    res.end(String(connections));
  } else if (p === '/length') {
    const n = Number(url.searchParams.get('n'));
    const piece = 'L'.repeat(1000);
    res.writeHead(200, { 'Content-Length': String(n) });
    let left = n;
    const tick = () => {
      const k = Math.min(left, piece.length);
      left -= k;
      if (left === 0) return res.end(piece.slice(0, k));
      res.write(piece.slice(0, k));
      setTimeout(tick, 2);
    };
    tick();
  } else if (p === '/chunked') {
    const n = Number(url.searchParams.get('n') || 5);
    let i = 0;
    res.writeHead(200, { 'Content-Type': 'text/plain' });   // no length: chunked
    const tick = () => {
      if (i === n) {
        res.addTrailers({ 'X-Count': String(n) });
        return res.end();
      }
      res.write('chunk' + (i++) + ';');
      setTimeout(tick, 5);
    };
    res.setHeader && tick();
  } else if (p === '/redirect') {
    const n = Number(url.searchParams.get('n'));
    const code = Number(url.searchParams.get('code') || 302);
    const to = n > 1 ? '/redirect?n=' + (n - 1) + '&code=' + code : '/echo';
    res.writeHead(code, { Location: to });
    res.end('moving');
  } else if (p === '/relative/a/b') {
    res.writeHead(301, { Location: '../c?from=b' });
    res.end();
  } else if (p === '/relative/c') {
    res.end('relative ok ' + url.search);
  } else if (p === '/loop') {
    res.writeHead(302, { Location: '/loop' });
    res.end();
  } else if (p === '/echo') {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, body: Buffer.concat(chunks).toString(),
        headers: req.headers }));
    });
  } else if (p === '/hash') {
    const hash = require('crypto').createHash('sha256');
    let bytes = 0;
    req.on('data', (d) => { hash.update(d); bytes += d.length; });
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ bytes, sha256: hash.digest('hex'),
        te: req.headers['transfer-encoding'] || null, cl: req.headers['content-length'] || null }));
    });
  } else if (p === '/204') {
    res.writeHead(204, { 'X-Empty': 'yes' });
    res.end();
  } else if (p === '/304') {
    res.writeHead(304, { ETag: '"v1"' });
    res.end();
  } else if (p === '/silent') {
    // never answers
  } else {
    res.writeHead(404);
    res.end('not found');
  }
});
server.on('connection', () => { connections++; });
server.keepAliveTimeout = Number(process.env.KEEPALIVE_MS || 5000);

// A raw server for malformed answers: each connection gets the bytes of
// the route named on its request line.
const BAD = {
  '/bad-status': 'HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n',
  '/bad-length': 'HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nhello',
  '/two-lengths': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  '/bad-chunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  '/truncated': 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this',
  '/close-delimited': 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end',
};
const raw = net.createServer((sock) => {
  let buf = '';
  sock.on('data', (d) => {
    buf += d;
    if (!buf.includes('\r\n\r\n')) return;
    const path = buf.split(' ')[1];
    sock.end(BAD[path] || 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
  });
  sock.on('error', () => {});
});

server.listen(0, '127.0.0.1', () => {
  raw.listen(0, '127.0.0.1', () => {
    console.log('raw ' + raw.address().port);
    console.log('port ' + server.address().port);
  });
});
process.on('SIGTERM', () => process.exit(0));
