// Our Socket.IO client (src/web/sio.js) in Node, against the stock
// rtcmulticonnection-server (events, acks, relay) and against a mute server
// (heartbeat loss must close the socket). Run with --experimental-websocket
// on Node 20. Exits 0 on success, 1 with the failure otherwise.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { spawn } = require('child_process');

const NODE_DIR = process.env.RTCPROCTOR_NODE_DIR;
if (!NODE_DIR || !fs.existsSync(path.join(NODE_DIR, 'node_modules', 'ws'))) {
  console.error('page-sio: node test packages missing; run scripts/setup --test and set RTCPROCTOR_NODE_DIR');
  process.exit(3);
}
if (typeof WebSocket !== 'function') {
  console.error('page-sio: no WebSocket in this Node; run with --experimental-websocket');
  process.exit(3);
}
require(path.join(__dirname, '..', '..', 'src', 'web', 'sio.js'));
const { SioSocket, sioInternals } = globalThis;
const { WebSocketServer } = require(path.join(NODE_DIR, 'node_modules', 'ws'));

const children = [];
const log = (...a) => console.log('[page-sio]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}
function waitFor(what, fn, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    (function poll() {
      const v = fn();
      if (v) return resolve(v);
      if (Date.now() - t0 > ms) return reject(new Error('timed out waiting for ' + what));
      setTimeout(poll, 20);
    })();
  });
}
setTimeout(() => {
  log('FAIL: overall timeout');
  process.exit(1);
}, 30000).unref();

function parsing() {
  const { parsePacket, socketUrl } = sioInternals;
  check(JSON.stringify(parsePacket('2["a",1]')) === '{"type":2,"id":null,"data":["a",1]}', 'event');
  check(JSON.stringify(parsePacket('312[true]')) === '{"type":3,"id":12,"data":[true]}', 'ack with id');
  check(parsePacket('0/admin,{"sid":"x"}') === null, 'other namespace ignored');
  check(parsePacket('2{bad') === null, 'bad json ignored');
  check(parsePacket('0{"sid":"x"}').type === 0, 'connect');
  const u = new URL(socketUrl('https://h.example:8443/base/', { userid: 'u', extra: '{}' }));
  check(u.protocol === 'wss:' && u.pathname === '/base/socket.io/', 'url ' + u);
  check(u.searchParams.get('extra') === '{}' && u.searchParams.get('EIO') === '4' && u.searchParams.get('transport') === 'websocket', 'query ' + u);
  log('ok parsing');
}

async function startStock() {
  const child = spawn('node', [path.join(__dirname, 'page-stock-server.js'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const m = await waitFor('stock server', () => /LISTENING (\d+)/.exec(out), 10000);
  return 'http://127.0.0.1:' + m[1];
}

function query(userid, code) {
  return { userid, sessionid: code, msgEvent: 'rtc-video-proctoring', socketCustomEvent: 'RTCMultiConnection-Custom-Message', autoCloseEntireSession: 'false', maxParticipantsAllowed: '1000', extra: '{}' };
}

async function connected(sock) {
  await new Promise((resolve, reject) => {
    sock.onconnect = resolve;
    sock.onclose = (r) => reject(new Error('closed: ' + r));
  });
}

async function againstStock() {
  const server = await startStock();
  const a = new SioSocket(server, query('studentA1', 'roomA'));
  await connected(a);
  const [ok] = await a.emitWithAck('open-room', [{ sessionid: 'roomA', session: { audio: true, video: true, oneway: true }, extra: {}, identifier: '', password: '' }], 3000);
  check(ok === true, 'open-room ack ' + ok);
  const [present, room] = await a.emitWithAck('check-presence', ['roomA'], 3000);
  check(present === true && room === 'roomA', 'check-presence');

  const b = new SioSocket(server, query('viewerB1', 'roomA'));
  await connected(b);
  const [joined] = await b.emitWithAck('join-room', [{ sessionid: 'roomA', session: { oneway: true }, extra: {}, password: '' }], 3000);
  check(joined === true, 'join-room');
  const got = [];
  a.on('rtc-video-proctoring', (m) => got.push(m));
  b.emit('rtc-video-proctoring', { remoteUserId: 'roomA', message: { newParticipationRequest: true, isOneWay: true }, sender: 'viewerB1' });
  await waitFor('join request at the owner', () => got.some((m) => m.message.newParticipationRequest && m.sender === 'viewerB1'));
  const extras = [];
  b.on('extra-data-updated', (uid, extra) => extras.push([uid, extra]));
  a.emit('rtc-video-proctoring', { remoteUserId: 'viewerB1', message: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 }, sender: 'studentA1' });
  await sleep(100);
  a.emit('extra-data-updated', { message: 'hi', attention: '', msgId: 1 });
  await waitFor('extra at the viewer', () => extras.some(([uid, e]) => uid === 'studentA1' && e.message === 'hi'));

  // A second socket with the same userid is told so (stock quirk).
  const dup = new SioSocket(server, query('studentA1', 'roomA'));
  let taken = false;
  dup.on('userid-already-taken', () => (taken = true));
  await connected(dup);
  await waitFor('userid-already-taken', () => taken);
  dup.close('test');

  // Leaving: the viewer hears user-disconnected; acks pending on a closed socket reject.
  const gone = [];
  b.on('user-disconnected', (uid) => gone.push(uid));
  a.close('test');
  await waitFor('user-disconnected at the viewer', () => gone.includes('studentA1'));
  let rejected = false;
  await a.emitWithAck('check-presence', ['roomA'], 1000).catch(() => (rejected = true));
  check(rejected, 'ack on a closed socket must reject');
  b.close('test');
  log('ok against the stock server');
}

async function heartbeatLoss() {
  // A server that opens the session and then never pings.
  const httpServer = http.createServer();
  const wss = new WebSocketServer({ server: httpServer });
  wss.on('connection', (ws) => {
    ws.send('0' + JSON.stringify({ sid: 's', upgrades: [], pingInterval: 200, pingTimeout: 200, maxPayload: 1e6 }));
    ws.on('message', (m) => {
      if (String(m) === '40') ws.send('40{"sid":"n"}');
    });
  });
  await new Promise((r) => httpServer.listen(0, '127.0.0.1', r));
  const sock = new SioSocket('http://127.0.0.1:' + httpServer.address().port, query('hb1', 'r'));
  let reason = null;
  await new Promise((resolve) => {
    sock.onconnect = resolve;
  });
  const t0 = Date.now();
  sock.onclose = (r) => (reason = r);
  await waitFor('heartbeat loss', () => reason, 6000);
  check(reason === 'heartbeat lost', 'closed for ' + reason);
  log('ok heartbeat loss closes the socket after', Date.now() - t0, 'ms (interval+timeout 400 ms + slack)');
  wss.close();
  httpServer.close();
}

(async () => {
  parsing();
  await againstStock();
  await heartbeatLoss();
  log('PASS');
})()
  .then(() => {
    children.forEach((c) => c.kill('SIGKILL'));
    process.exit(0);
  })
  .catch((e) => {
    log('FAIL:', e.stack || e);
    children.forEach((c) => c.kill('SIGKILL'));
    process.exit(1);
  });
