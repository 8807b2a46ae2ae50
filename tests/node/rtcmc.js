// The real RTCMultiConnection 3.7 library (npm rtcmulticonnection@3.7.1,
// dist/RTCMultiConnection.js, the build RTCProctor pages ship) running in
// node against SERVER_URL: a student opens a one-way room, a proctor joins it,
// the library's own signalling exchanges offer, answer and ICE candidates
// (over a fake RTCPeerConnection: there is no WebRTC in node), chat travels
// as extra-data, and the student leaving reaches the proctor. The proctor
// key goes in the library's `socketCustomParameters`; the stock server
// ignores it.
'use strict';

const fs = require('fs');
const path = require('path');
const vm = require('vm');
const t = require('./lib');

// Just enough browser for the library to load and signal.
global.window = global;
global.navigator = { userAgent: 'node', onLine: true, mediaDevices: { enumerateDevices: () => Promise.resolve([]) } };
global.location = { protocol: 'http:', href: 'http://127.0.0.1/', hostname: '127.0.0.1' };
global.screen = { width: 1280, height: 720 };
global.document = {
  createElement: () => ({ getContext: () => null, style: {}, setAttribute() {}, play() {} }),
  addEventListener() {}, querySelector: () => null, getElementsByTagName: () => [],
  documentElement: { style: {} }, body: { appendChild() {} }, readyState: 'complete',
};
global.addEventListener = () => {};
global.removeEventListener = () => {};
global.io = require('socket.io-client');

const peers = [];
class FakePeerConnection {
  constructor() {
    this.localDescription = null;
    this.remoteDescription = null;
    this.signalingState = 'stable';
    this.iceConnectionState = 'new';
    this.candidates = [];
    peers.push(this);
  }
  addEventListener() {}
  removeEventListener() {}
  getSenders() { return []; }
  getReceivers() { return []; }
  getLocalStreams() { return []; }
  getRemoteStreams() { return []; }
  addTrack() {}
  addStream() {}
  addTransceiver() {}
  createDataChannel() { return { addEventListener() {} }; }
  createOffer() { return Promise.resolve({ type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=fake-offer\r\n' }); }
  createAnswer() { return Promise.resolve({ type: 'answer', sdp: 'v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=fake-answer\r\n' }); }
  setLocalDescription(d) {
    this.localDescription = d;
    // Trickle one host candidate, as a browser would.
    setTimeout(() => {
      if (this.onicecandidate) {
        this.onicecandidate({ candidate: { candidate: `candidate:1 1 udp 2122260223 127.0.0.1 5000${peers.indexOf(this)} typ host`, sdpMid: '0', sdpMLineIndex: 0 } });
      }
    }, 10);
    return Promise.resolve();
  }
  setRemoteDescription(d) { this.remoteDescription = d; return Promise.resolve(); }
  addIceCandidate(c) { this.candidates.push(c); return Promise.resolve(); }
  getStats() { return Promise.resolve(new Map()); }
  close() { this.closed = true; }
}
global.RTCPeerConnection = FakePeerConnection;
global.RTCSessionDescription = function RTCSessionDescription(d) { return d; };
global.RTCIceCandidate = function RTCIceCandidate(c) { return c; };
global.MediaStream = function MediaStream() { this.getTracks = () => []; };

const lib = path.join(process.env.RTCPROCTOR_NODE_DIR || '', 'rtcmc/package/dist/RTCMultiConnection.js');
if (!fs.existsSync(lib)) t.fail(`${lib} is missing: run scripts/setup --test`);
vm.runInThisContext(fs.readFileSync(lib, 'utf8'), { filename: 'RTCMultiConnection.js' });

// RTCProctor's settings (protocol notes §5).
function connection(key) {
  const c = new RTCMultiConnection();
  c.enableLogs = false;
  c.socketURL = t.SERVER;
  c.socketMessageEvent = 'rtc-video-proctoring';
  c.session = { audio: true, video: true, oneway: true };
  c.iceServers = [];
  c.dontCaptureUserMedia = true;
  if (key) c.socketCustomParameters = `&proctorKey=${encodeURIComponent(key)}`;
  return c;
}

function until(what, cond, ms = 5000) {
  return new Promise((resolve) => {
    const start = Date.now();
    const timer = setInterval(() => {
      if (cond()) { clearInterval(timer); resolve(); }
      else if (Date.now() - start > ms) t.fail(`${what} within ${ms} ms`);
    }, 20);
  });
}

async function main() {
  const code = t.uniq('lib-');

  t.say('the library opens a one-way room (student)');
  const stu = connection();
  stu.sdpConstraints.mandatory = { OfferToReceiveAudio: false, OfferToReceiveVideo: false };
  const opened = await new Promise((resolve) => stu.open(code, (isOpened, roomid, error) => resolve([isOpened, roomid, error])));
  t.assertEq(opened.slice(0, 2), [true, code], `open (${opened[2]})`);

  t.say('the library joins it (proctor, with the key)');
  const mon = connection(t.KEY);
  mon.sdpConstraints.mandatory = { OfferToReceiveAudio: true, OfferToReceiveVideo: true };
  const extraSeen = [];
  mon.onExtraDataUpdated = (e) => { if (e.userid !== mon.userid) extraSeen.push(e.extra); };
  let statusOffline = false;
  mon.onUserStatusChanged = (e) => { if (e.status === 'offline' && e.userid === stu.userid) statusOffline = true; };
  const joined = await new Promise((resolve) => mon.join(code, (isJoined, roomid, error) => resolve([isJoined, roomid, error])));
  t.assertEq(joined.slice(0, 2), [true, code], `join (${joined[2]})`);

  t.say('offer, answer and candidates go through the library on both sides');
  await until('the proctor has the student offer', () => peers.some((p) => p.remoteDescription && p.remoteDescription.type === 'offer'));
  await until('the student has the proctor answer', () => peers.some((p) => p.remoteDescription && p.remoteDescription.type === 'answer'));
  await until('both sides got a candidate', () => peers.filter((p) => p.candidates.length > 0).length >= 2);
  t.assert(stu.peers[mon.userid], 'the student has a peer for the proctor');
  t.assert(mon.peers[stu.userid], 'the proctor has a peer for the student');

  // Listing live rooms (get-public-rooms; the library 3.7 has no call for
  // it, so on its socket). SERVER_KIND tells which server this is.
  const list = (c, id) => new Promise((resolve) => c.socket.emit('get-public-rooms', id, (rooms, err) => resolve([rooms, err])));
  const listed = (rooms, c) => Array.isArray(rooms) && rooms.some((r) => r.sessionid === c);
  if (process.env.SERVER_KIND === 'stock') {
    t.say('stock server: a room opened as RTCProctor opens it is not listed');
    const [rooms] = await list(mon, 'rtcproctor');
    t.assert(Array.isArray(rooms) && !listed(rooms, code), `not listed: ${JSON.stringify(rooms)}`);
    t.say('stock server: a page with publicRoomIdentifier = "rtcproctor" is listed, to anyone');
    const pub = connection();
    pub.publicRoomIdentifier = 'rtcproctor';
    pub.sdpConstraints.mandatory = { OfferToReceiveAudio: false, OfferToReceiveVideo: false };
    const pubCode = t.uniq('lib-public-');
    const ok = await new Promise((resolve) => pub.open(pubCode, (isOpened) => resolve(isOpened)));
    t.assert(ok === true, 'the public room opens');
    const [all] = await list(stu, 'rtcproctor');
    t.assert(listed(all, pubCode) && !listed(all, code), `listed: ${JSON.stringify(all)}`);
    pub.closeSocket();
  } else {
    t.say('our server: the student may not list rooms, the proctor sees every live one');
    const [refused, why] = await list(stu, 'rtcproctor');
    t.assert(refused === null && /proctor key/.test(why || ''), `refused: ${why}`);
    const [rooms] = await list(mon, 'rtcproctor');
    t.assert(listed(rooms, code), `listed for the proctor: ${JSON.stringify(rooms)}`);
  }

  t.say('chat as extra-data reaches the proctor');
  stu.extra.message = 'hello from the library';
  stu.extra.attention = '';
  stu.updateExtraData();
  await until('the proctor saw the chat', () => extraSeen.some((e) => e && e.message === 'hello from the library'));

  t.say('the student leaves');
  stu.closeSocket();
  await until('the proctor saw the student go offline', () => statusOffline);
  mon.closeSocket();
  console.log('rtcmc ok');
  process.exit(0);
}

main().catch((e) => t.fail(e.stack || String(e)));
