// Error acks, the proctor-key and reach rules, rate limits, the roster,
// bounds on messages, reclaim, and the HTTP routes of our server, each as a
// SCENARIO (the Rust test starts a server configured for it).
'use strict';

const http = require('http');
const t = require('./lib');

const ROOM_GONE = 'Room not available';
const NEEDS_KEY = 'Viewing needs the proctor key (printed by `rtcproctor serve`; pass it with --proctor-key)';
const WRONG_KEY = 'Wrong proctor key: check the key printed by `rtcproctor serve`';
const TOO_MANY_FAILURES = 'Too many failed attempts from your address: wait a minute and try again';
const NOT_ON_ROSTER = 'This stream code is not on the exam roster: check the code you were given';
const MALFORMED = 'Malformed request';

// A live student room with a connected monitor (offer relayed).
async function liveRoom() {
  const code = t.uniq('room-');
  const stu = await t.connect(t.uniq('stu'), code);
  t.assertEq(await t.emitAck(stu, 'open-room', t.openRoomArg(code)), [true], 'open');
  const mon = await t.connect(t.uniq('mon'), code, { key: t.KEY });
  t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(code)), [true], 'join');
  mon.emit(t.MSG_EVENT, t.joinRequest(code, mon.userid));
  const [req] = await t.waitFor(stu, t.MSG_EVENT, ([m]) => m.sender === mon.userid);
  stu.emit(t.MSG_EVENT, t.offer(mon.userid, stu.userid, req));
  await t.waitFor(mon, 'user-connected');
  await t.waitFor(mon, t.MSG_EVENT, ([m]) => m.message.type === 'offer');
  return { code, stu, mon };
}

// The server still answers a fresh client.
async function stillServing(what) {
  t.say(`server still serves others after ${what}`);
  const code = t.uniq('alive-');
  const s = await t.connect(t.uniq('alive'), code);
  t.assertEq(await t.emitAck(s, 'open-room', t.openRoomArg(code)), [true], `open after ${what}`);
  s.disconnect();
}

const scenarios = {
  async acks() {
    t.say('join an absent room');
    const mon = await t.connect(t.uniq('mon'), 'x', { key: t.KEY });
    t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(t.uniq('absent-'))), [false, ROOM_GONE], 'absent');

    t.say('a second open of a live code');
    const { code, stu } = await liveRoom();
    const other = await t.connect(t.uniq('stu'), code);
    t.assertEq(await t.emitAck(other, 'open-room', t.openRoomArg(code)), [false, ROOM_GONE], 'second open');

    t.say('password');
    const pcode = t.uniq('pw-');
    const owner = await t.connect(t.uniq('own'), pcode, { query: { maxParticipantsAllowed: '2' } });
    const arg = t.openRoomArg(pcode);
    arg.password = 'secret';
    t.assertEq(await t.emitAck(owner, 'open-room', arg), [true], 'open with password');
    t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(pcode)), [false, 'Invalid password'], 'no password');
    t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(pcode, 'secret')), [true], 'password');

    t.say('room full (maxParticipantsAllowed=2 from the owner)');
    const mon2 = await t.connect(t.uniq('mon'), pcode, { key: t.KEY });
    t.assertEq(await t.emitAck(mon2, 'join-room', t.joinRoomArg(pcode, 'secret')), [false, 'Room full'], 'full');

    t.say('check-presence');
    t.assertEq(await t.emitAck(mon2, 'check-presence', code), [true, code, { _room: { isFull: false } }], 'present');
    t.assertEq(await t.emitAck(mon2, 'check-presence', pcode), [true, pcode, { _room: { isFull: true, isPasswordProtected: true } }], 'present, full, with password');
    t.assertEq(await t.emitAck(stu, 'check-presence', pcode), [false, pcode, { _room: { isFull: false, isPasswordProtected: false } }], 'keyless sees absent');

    t.say('malformed open-room and join-room');
    t.assertEq(await t.emitAck(other, 'open-room', 'just a string'), [false, MALFORMED], 'open-room string');
    t.assertEq(await t.emitAck(mon2, 'join-room', {}), [false, MALFORMED], 'join-room without sessionid');
    t.assertEq(await t.emitAck(mon2, 'join-room', { sessionid: 'x'.repeat(300) }), [false, MALFORMED], 'overlong code');

    t.say('disconnect-with acks with no arguments and tells both sides');
    const live = await liveRoom();
    t.assertEq(await t.emitAck(live.mon, 'disconnect-with', live.stu.userid), [], 'disconnect-with ack');
    t.assertEq(await t.waitFor(live.mon, 'user-disconnected'), [live.stu.userid], 'mon told');
    t.assertEq(await t.waitFor(live.stu, 'user-disconnected'), [live.mon.userid], 'stu told');
  },

  async keys() {
    const { code, stu, mon } = await liveRoom();

    t.say('viewing without a key or with a wrong key');
    const snoop = await t.connect(t.uniq('snoop'), code);
    t.assertEq(await t.emitAck(snoop, 'join-room', t.joinRoomArg(code)), [false, NEEDS_KEY], 'no key');
    const guess = await t.connect(t.uniq('guess'), code, { key: 'not-the-key' });
    t.assertEq(await t.emitAck(guess, 'join-room', t.joinRoomArg(code)), [false, WRONG_KEY], 'wrong key');

    t.say('a join request without joining is dropped');
    snoop.emit(t.MSG_EVENT, t.joinRequest(code, snoop.userid));
    await t.expectNone(stu, t.MSG_EVENT, ([m]) => m.sender === snoop.userid);

    t.say('a student cannot reach another student, nor a proctor it was not introduced to');
    const code2 = t.uniq('room-');
    const stu2 = await t.connect(t.uniq('stu'), code2);
    t.assertEq(await t.emitAck(stu2, 'open-room', t.openRoomArg(code2)), [true], 'open 2');
    stu2.emit(t.MSG_EVENT, t.offer(stu.userid, stu2.userid, {}));
    stu2.emit(t.MSG_EVENT, t.candidate(mon.userid, stu2.userid, 1));
    await t.expectNone(stu, t.MSG_EVENT, ([m]) => m.sender === stu2.userid);
    await t.expectNone(mon, t.MSG_EVENT, ([m]) => m.sender === stu2.userid, 50);
    await t.expectNone(stu, 'user-connected', ([u]) => u === stu2.userid, 50);

    t.say('a spoofed sender is dropped');
    mon.emit(t.MSG_EVENT, t.candidate(stu.userid, stu2.userid, 2));
    await t.expectNone(stu, t.MSG_EVENT, ([m]) => m.sender === stu2.userid);

    t.say('one proctor socket joins two rooms; join requests go to the room they name');
    t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(code2)), [true], 'second room');
    mon.emit(t.MSG_EVENT, t.joinRequest(code, mon.userid));
    await t.waitFor(stu, t.MSG_EVENT, ([m]) => m.message.newParticipationRequest && m.sender === mon.userid);
    await t.expectNone(stu2, t.MSG_EVENT, ([m]) => m.sender === mon.userid);
    mon.emit(t.MSG_EVENT, t.joinRequest(code2, mon.userid));
    const [req2] = await t.waitFor(stu2, t.MSG_EVENT, ([m]) => m.message.newParticipationRequest);
    t.assertEq(req2.remoteUserId, stu2.userid, 'routed to the second owner');
    stu2.emit(t.MSG_EVENT, t.offer(mon.userid, stu2.userid, req2));
    await t.waitFor(mon, t.MSG_EVENT, ([m]) => m.sender === stu2.userid && m.message.type === 'offer');
  },

  async openViewing() {
    const code = t.uniq('room-');
    const stu = await t.connect(t.uniq('stu'), code);
    t.assertEq(await t.emitAck(stu, 'open-room', t.openRoomArg(code)), [true], 'open');
    t.say('keyless viewing works with --open-viewing');
    const mon = await t.connect(t.uniq('mon'), code);
    t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(code)), [true], 'keyless join');
    mon.emit(t.MSG_EVENT, t.joinRequest(code, mon.userid));
    await t.waitFor(stu, t.MSG_EVENT, ([m]) => m.sender === mon.userid);
  },

  async rateLimit() {
    t.say('failed joins from one address are limited (bounded loop)');
    const guess = await t.connect(t.uniq('guess'), 'x');
    let limitedAt = 0;
    for (let i = 1; i <= 50 && !limitedAt; i++) {
      const ack = await t.emitAck(guess, 'join-room', t.joinRoomArg(t.uniq('guess-')));
      t.assertEq(ack[0], false, 'guess fails');
      if (ack[1] === TOO_MANY_FAILURES) limitedAt = i;
      else t.assertEq(ack, [false, NEEDS_KEY], 'guess reason');
    }
    t.assert(limitedAt > 1 && limitedAt <= 6, `limited after the burst of 5 (at attempt ${limitedAt})`);
    const again = await t.connect(t.uniq('guess'), 'x', { key: 'wrong' });
    t.assertEq(await t.emitAck(again, 'join-room', t.joinRoomArg('x')), [false, TOO_MANY_FAILURES], 'a new socket from the same address is limited too');

    t.say('a proctor with the key on the same address is not limited');
    const { code, stu, mon } = await liveRoom();
    t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(t.uniq('off-'))), [false, ROOM_GONE], 'key holder off-air join');

    t.say('an event flood is cut to the socket rate; the socket and others keep working');
    const n = 300;
    for (let i = 0; i < n; i++) stu.emit('extra-data-updated', { message: `m${i}`, attention: '' });
    await t.sleep(800);
    // Each update reaches the monitor twice (connected peer and room participant).
    const updates = mon.log.filter((m) => m.event === 'extra-data-updated').map((m) => m.args[1].message);
    const got = new Set(updates).size;
    t.assert(got >= 1 && got < n, `monitor got ${got} of ${n} flooded updates`);
    await t.sleep(1200);
    const presence = await t.emitAck(mon, 'check-presence', code);
    t.assertEq(presence[0], true, 'flooded room still there');
    t.assertEq(presence[2].message, updates[updates.length - 1], 'the room extra is the last update that got through');
    await stillServing('a flood');
  },

  async roster() {
    t.say('codes not on the roster cannot go live');
    const s = await t.connect(t.uniq('stu'), 'x');
    t.assertEq(await t.emitAck(s, 'open-room', t.openRoomArg('not-listed')), [false, NOT_ON_ROSTER], 'off roster');
    t.assertEq(await t.emitAck(s, 'open-room', t.openRoomArg('good-code-1')), [true], 'on roster');
  },

  async bounds() {
    const { stu, mon } = await liveRoom();

    t.say('long chat strings are cut');
    stu.emit('extra-data-updated', { message: 'x'.repeat(5000), attention: '' });
    const [, extra] = await t.waitFor(mon, 'extra-data-updated', ([u]) => u === stu.userid);
    t.assertEq(extra.message.length, 100, 'chat cut to the limit');

    t.say('malformed relays and updates are dropped, the socket keeps working');
    stu.emit(t.MSG_EVENT, 'not an envelope');
    stu.emit(t.MSG_EVENT, { remoteUserId: mon.userid });
    stu.emit(t.MSG_EVENT);
    stu.emit('extra-data-updated');
    stu.emit('no-such-event', { a: 1 });
    stu.emit(t.MSG_EVENT, t.candidate(mon.userid, stu.userid, 42));
    await t.waitFor(mon, t.MSG_EVENT, ([m]) => m.message.candidate && m.message.candidate.startsWith('candidate:42 '));

    t.say('an oversize message closes only the sender');
    const big = await t.connect(t.uniq('big'), 'x', { key: t.KEY });
    big.emit(t.MSG_EVENT, { remoteUserId: stu.userid, message: { sdp: 'x'.repeat(400 * 1024) }, sender: big.userid });
    await t.waitFor(big, 'disconnect');
    await t.expectNone(stu, t.MSG_EVENT, ([m]) => m.sender === big.userid);
    stu.emit(t.MSG_EVENT, t.candidate(mon.userid, stu.userid, 43));
    await t.waitFor(mon, t.MSG_EVENT, ([m]) => m.message.candidate && m.message.candidate.startsWith('candidate:43 '));

    t.say('garbage at the Engine.IO level');
    const base = new URL(t.SERVER);
    const handshake = await request(base, 'GET', '/socket.io/?EIO=4&transport=polling');
    t.assertEq(handshake.status, 200, 'polling handshake');
    const sid = JSON.parse(handshake.body.slice(1)).sid;
    const bad = await request(base, 'POST', `/socket.io/?EIO=4&transport=polling&sid=${sid}`, '9garbage');
    t.assert(bad.status >= 400 && bad.status < 500, `garbage packet gets a 4xx (got ${bad.status})`);
    const nosid = await request(base, 'GET', '/socket.io/?EIO=4&transport=polling&sid=nope');
    t.assertEq(nosid.status, 400, 'unknown sid');
    await stillServing('garbage');
  },

  async reclaim() {
    const { code, stu, mon } = await liveRoom();
    t.say('a new socket with the same userid takes over at once');
    const stuNew = await t.connect(stu.userid, code);
    await t.waitFor(stu, 'disconnect');
    t.assertEq(await t.waitFor(mon, 'user-disconnected'), [stu.userid], 'peers hear the old socket leave');
    t.assertEq(await t.emitAck(stuNew, 'open-room', t.openRoomArg(code)), [true], 'reclaimed code at once');
    t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(code)), [true], 'proctor re-joins');

    t.say('a keyless socket may not take a proctor userid');
    const thief = await t.connect(mon.userid, code);
    const [taken] = await t.waitFor(thief, 'userid-already-taken');
    t.assertEq(taken, mon.userid, 'userid-already-taken names the userid');
    await t.waitFor(thief, 'disconnect');
    t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(code)), [true], 'proctor unaffected');
  },

  async burst() {
    t.say('a class arrives at once: every student opens the moment it is connected');
    const n = 120;
    const acks = await Promise.all([...Array(n).keys()].map(async (i) => {
      const code = t.uniq(`burst${i}-`);
      const s = await t.connect(t.uniq('stu'), code);
      return t.emitAck(s, 'open-room', t.openRoomArg(code));
    }));
    t.assertEq(acks.filter((a) => a[0] === true).length, n, 'every open-room is answered with true');
  },

  async https() {
    t.say('the certificate the server presents is the one whose fingerprint it printed');
    const base = new URL(t.SERVER);
    const fp = await new Promise((resolve, reject) => {
      const sock = require('tls').connect({ host: base.hostname, port: base.port, rejectUnauthorized: false }, () => {
        resolve(sock.getPeerCertificate().fingerprint256);
        sock.end();
      });
      sock.on('error', reject);
    });
    t.assertEq(fp, process.env.EXPECT_FINGERPRINT, 'SHA-256 fingerprint');
    t.say('a student goes live over HTTPS');
    const code = t.uniq('tls-');
    const s = await t.connect(t.uniq('stu'), code, { rejectUnauthorized: false });
    t.assertEq(await t.emitAck(s, 'open-room', t.openRoomArg(code)), [true], 'open over https');
    s.disconnect();
  },

  async http() {
    const base = new URL(t.SERVER);
    t.say('/healthz');
    const h = await request(base, 'GET', '/healthz');
    t.assertEq([h.status, h.body], [200, 'ok\n'], 'healthz');

    t.say('/config.json');
    const c = await request(base, 'GET', '/config.json');
    t.assertEq(JSON.parse(c.body), JSON.parse(process.env.EXPECT_CONFIG), 'config.json');

    t.say('the student page with cache headers');
    const page = await request(base, 'GET', '/');
    t.assertEq(page.status, 200, 'page');
    t.assert(page.headers['content-type'].startsWith('text/html'), 'html');
    t.assertEq(page.headers['cache-control'], 'no-cache', 'page revalidates');
    const etag = page.headers.etag;
    t.assert(etag, 'page has an ETag');
    const again = await request(base, 'GET', '/', null, { 'If-None-Match': etag });
    t.assertEq(again.status, 304, 'revalidation');
    t.assertEq((await request(base, 'GET', '/no-such-file.js')).status, 404, 'unknown file');

    t.say('CORS on socket.io, including the preflight the stock server rejects');
    const origin = { Origin: 'https://moodle.example.org' };
    const pre = await request(base, 'OPTIONS', '/socket.io/?EIO=4&transport=polling', null,
      Object.assign({ 'Access-Control-Request-Method': 'POST' }, origin));
    t.assert(pre.status >= 200 && pre.status < 300, `preflight ok (got ${pre.status})`);
    t.assertEq(pre.headers['access-control-allow-origin'], origin.Origin, 'preflight origin');
    const hs = await request(base, 'GET', '/socket.io/?EIO=4&transport=polling', null, origin);
    t.assertEq(hs.status, 200, 'handshake');
    t.assertEq(hs.headers['access-control-allow-origin'], origin.Origin, 'handshake origin');
    t.assertEq(hs.headers['access-control-allow-credentials'], 'true', 'credentials');
  },
};

function request(base, method, path, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, method, path, headers: headers || {} }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    if (body) req.write(body);
    req.end();
  });
}

async function main() {
  const name = process.env.SCENARIO;
  const run = scenarios[name];
  if (!run) t.fail(`unknown SCENARIO ${name}; one of ${Object.keys(scenarios).join(', ')}`);
  await run();
  console.log(`${name} ok`);
  process.exit(0);
}

main().catch((e) => t.fail(e.stack || String(e)));
