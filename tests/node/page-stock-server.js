// Test server for the student page: the stock npm rtcmulticonnection-server
// 1.3.3 signalling logic (`addSocket`) on a socket.io server with CORS, plus
// static files: our page from src/web and the test viewer under /test/.
//
//   node page-stock-server.js --port N          signalling + static files
//   node page-stock-server.js --port N --static static files only (the page
//                                               then talks to ?server=...)
// Prints "LISTENING <port>" once ready. Loopback only.
'use strict';

const http = require('http');
const fs = require('fs');
const path = require('path');

const NODE_DIR = process.env.RTCPROCTOR_NODE_DIR;
if (!NODE_DIR || !fs.existsSync(path.join(NODE_DIR, 'node_modules', 'rtcmulticonnection-server'))) {
  console.error('page-stock-server: node test packages missing; run scripts/setup --test and set RTCPROCTOR_NODE_DIR');
  process.exit(3);
}
const nodeModules = path.join(NODE_DIR, 'node_modules');

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1] || 0);
const staticOnly = args.includes('--static');

const ROOT = path.resolve(__dirname, '..', '..');
const WEB = path.join(ROOT, 'src', 'web');
const TYPES = { '.html': 'text/html; charset=utf-8', '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.json': 'application/json' };

const testFiles = {
  '/test/viewer.html': path.join(__dirname, 'page-viewer.html'),
  '/test/RTCMultiConnection.js': path.join(NODE_DIR, 'rtcmc', 'package', 'dist', 'RTCMultiConnection.js'),
  '/test/socket.io.js': path.join(nodeModules, 'socket.io-client', 'dist', 'socket.io.js'),
};

function serve(req, res) {
  const url = new URL(req.url, 'http://x');
  let file = testFiles[url.pathname];
  if (!file && url.pathname === '/config.json') {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
    res.end(JSON.stringify({ iceServers: [] }));
    return;
  }
  if (!file) {
    const name = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
    if (/^[a-z0-9_-]+\.(html|css|js)$/i.test(name)) file = path.join(WEB, name);
  }
  if (!file || !fs.existsSync(file)) {
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
    return;
  }
  res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-store' });
  fs.createReadStream(file).pipe(res);
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/socket.io/')) return; // socket.io answers these
  serve(req, res);
});

if (!staticOnly) {
  const { Server } = require(path.join(nodeModules, 'socket.io'));
  const addSocket = require(path.join(nodeModules, 'rtcmulticonnection-server')).addSocket;
  const io = new Server(server, { cors: { origin: '*', methods: ['GET', 'POST'] } });
  // Same config as the package's defaults (config.json): no admin, logs to console.
  const config = { enableLogs: false, enableAdmin: false, socketMessageEvent: 'RTCMultiConnection-Message', socketCustomEvent: 'RTCMultiConnection-Custom-Message' };
  io.on('connection', (socket) => {
    addSocket(socket, config);
    // As the stock server.js: rebroadcast the custom event.
    const params = socket.handshake.query;
    const custom = params.socketCustomEvent || 'custom-message';
    socket.on(custom, (m) => socket.broadcast.emit(custom, m));
  });
}

server.listen(port, '127.0.0.1', () => {
  console.log('LISTENING ' + server.address().port);
});
process.on('SIGTERM', () => process.exit(0));
