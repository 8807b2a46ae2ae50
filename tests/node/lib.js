// Helpers for the node test scripts: socket.io-client 3.0.4 (the client
// RTCProctor pages ship) with every incoming event recorded, awaitable
// acks and events, and a global deadline so no script can hang.
'use strict';

const io = require('socket.io-client');

const SERVER = process.env.SERVER_URL || 'http://127.0.0.1:9001/';
const KEY = process.env.PROCTOR_KEY || '';
const MSG_EVENT = 'rtc-video-proctoring';

// Every script stops by itself.
const deadline = setTimeout(() => {
  console.error('FAIL: script deadline reached');
  process.exit(3);
}, Number(process.env.SCRIPT_TIMEOUT_MS || 45000));
deadline.unref();

let step = '';
function say(s) {
  step = s;
  if (process.env.VERBOSE) console.log('-', s);
}

function fail(msg) {
  console.error(`FAIL at step "${step}": ${msg}`);
  process.exit(1);
}

function assert(cond, msg) {
  if (!cond) fail(msg);
}

// JSON with sorted object keys: key order is not part of the protocol.
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = canon(v[k]);
    return o;
  }
  return v;
}

function assertEq(actual, expected, msg) {
  const a = JSON.stringify(canon(actual));
  const e = JSON.stringify(canon(expected));
  if (a !== e) fail(`${msg}: expected ${e}, got ${a}`);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// The handshake query exactly as RTCMultiConnection 3.7 builds it.
function rtcmcQuery(userid, sessionid, extra) {
  const q = {
    userid,
    sessionid,
    msgEvent: MSG_EVENT,
    socketCustomEvent: 'RTCMultiConnection-Custom-Message',
    autoCloseEntireSession: 'false',
    maxParticipantsAllowed: '1000',
    extra: JSON.stringify(extra || {}),
  };
  return q;
}

// Connect and wait for the socket.io CONNECT. `opts.key` adds the proctor key.
async function connect(userid, sessionid, opts = {}) {
  const query = Object.assign(rtcmcQuery(userid, sessionid, opts.extra), opts.query || {});
  if (opts.key) query.proctorKey = opts.key;
  const transports = opts.transports ||
    (process.env.TRANSPORTS ? process.env.TRANSPORTS.split(',') : ['polling', 'websocket']);
  const socket = io(opts.url || SERVER, {
    query,
    transports,
    reconnection: false,
    forceNew: true,
    timeout: 5000,
    rejectUnauthorized: opts.rejectUnauthorized !== false,
  });
  socket.log = [];
  socket.all = []; // everything, never consumed by waitFor
  socket.waiters = [];
  socket.onAny((event, ...args) => {
    socket.log.push({ event, args });
    socket.all.push({ event, args });
    socket.waiters = socket.waiters.filter((w) => !w(event, args));
  });
  socket.on('disconnect', (reason) => {
    socket.log.push({ event: 'disconnect', args: [reason] });
    socket.waiters = socket.waiters.filter((w) => !w('disconnect', [reason]));
  });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', (e) => reject(new Error(`connect_error for ${userid}: ${e.message}`)));
  });
  socket.userid = userid;
  return socket;
}

// Wait for an incoming event (already received ones count) matching `pred`.
function waitFor(socket, event, pred = () => true, ms = 5000) {
  const seen = socket.log.find((m) => m.event === event && pred(m.args));
  if (seen) {
    socket.log.splice(socket.log.indexOf(seen), 1);
    return Promise.resolve(seen.args);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => fail(`${socket.userid}: no "${event}" within ${ms} ms; got ${JSON.stringify(socket.log.map((m) => m.event))}`), ms);
    socket.waiters.push((ev, args) => {
      if (ev !== event || !pred(args)) return false;
      clearTimeout(timer);
      const i = socket.log.findIndex((m) => m.args === args);
      if (i >= 0) socket.log.splice(i, 1);
      resolve(args);
      return true;
    });
  });
}

// Assert that no matching event arrives within `ms`.
async function expectNone(socket, event, pred = () => true, ms = 400) {
  await sleep(ms);
  const seen = socket.log.find((m) => m.event === event && pred(m.args));
  if (seen) fail(`${socket.userid}: unexpected "${event}" ${JSON.stringify(seen.args)}`);
}

// Emit and resolve with the ack's argument list.
function emitAck(socket, event, ...args) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => fail(`${socket.userid}: no ack for "${event}" within 5000 ms`), 5000);
    socket.emit(event, ...args, (...ack) => {
      clearTimeout(timer);
      resolve(ack);
    });
  });
}

// Payloads as the RTCProctor pages send them (protocol notes §6.8).
function openRoomArg(code) {
  return {
    sessionid: code,
    session: { audio: true, video: true, oneway: true },
    mediaConstraints: { video: { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: 5 }, audio: true },
    sdpConstraints: { mandatory: { OfferToReceiveAudio: false, OfferToReceiveVideo: false }, optional: [{ VoiceActivityDetection: false }] },
    streams: [{ streamid: 'stream-1', tracks: 2 }],
    extra: {},
    identifier: '',
    password: '',
  };
}

function joinRoomArg(code, password) {
  return {
    sessionid: code,
    session: { audio: true, video: true, oneway: true },
    mediaConstraints: { audio: { mandatory: {}, optional: [] }, video: { mandatory: {}, optional: [{ facingMode: 'user' }] } },
    sdpConstraints: { mandatory: { OfferToReceiveAudio: true, OfferToReceiveVideo: true }, optional: [{ VoiceActivityDetection: false }] },
    streams: [],
    extra: {},
    password: password || '',
  };
}

function joinRequest(code, sender) {
  return {
    remoteUserId: code,
    message: {
      newParticipationRequest: true, isOneWay: true, isDataOnly: false,
      localPeerSdpConstraints: { OfferToReceiveAudio: true, OfferToReceiveVideo: true },
      remotePeerSdpConstraints: { OfferToReceiveAudio: true, OfferToReceiveVideo: true },
    },
    sender,
  };
}

function offer(to, from, connectionDescription) {
  return {
    remoteUserId: to,
    message: {
      type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n',
      remotePeerSdpConstraints: { OfferToReceiveAudio: true, OfferToReceiveVideo: true },
      renegotiatingPeer: false, connectionDescription, dontGetRemoteStream: true,
      extra: {}, streamsToShare: {},
    },
    sender: from,
  };
}

function answer(to, from) {
  return {
    remoteUserId: to,
    message: {
      type: 'answer', sdp: 'v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\n',
      remotePeerSdpConstraints: false, renegotiatingPeer: false, connectionDescription: {},
      dontGetRemoteStream: false, extra: {}, streamsToShare: {},
    },
    sender: from,
  };
}

function candidate(to, from, n) {
  return {
    remoteUserId: to,
    message: { candidate: `candidate:${n} 1 udp 2122260223 127.0.0.1 ${50000 + n} typ host`, sdpMid: '0', sdpMLineIndex: 0 },
    sender: from,
  };
}

function uniq(prefix) {
  return prefix + Math.random().toString(36).slice(2, 10);
}

module.exports = {
  canon, SERVER, KEY, MSG_EVENT, say, fail, assert, assertEq, sleep, connect, waitFor, expectNone,
  emitAck, openRoomArg, joinRoomArg, joinRequest, offer, answer, candidate, uniq, rtcmcQuery,
};
