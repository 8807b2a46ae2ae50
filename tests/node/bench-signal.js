// Load benchmark (not a test): ROOMS rooms, each with one publisher and two
// viewers, against every server in SERVERS ("name=url|pid,name=url|pid"),
// one after the other in the same run. Per server it reports the sockets
// held, the server's resident memory per socket (RSS growth from idle to
// all sockets connected, read from /proc/PID/status) and the relay latency
// (p50/p99, send to receive through the server, same clock): offers and
// answers sent as a burst (every viewer asks at once), then ROUNDS seconds
// of trickled candidates spread evenly over each second.
//
// Every client speaks socket.io-client 3.0.4 over WebSocket (the pages
// upgrade to it after one polling round trip).
'use strict';

process.env.SCRIPT_TIMEOUT_MS = process.env.SCRIPT_TIMEOUT_MS || '600000';
const fs = require('fs');
const t = require('./lib');

const ROOMS = Number(process.env.ROOMS || 100);
const ROUNDS = Number(process.env.ROUNDS || 5);
const KEY = process.env.PROCTOR_KEY || '';
const SDP = 'v=0\r\n' + 'a=candidate-and-codec-lines-of-a-real-offer\r\n'.repeat(90); // ~4 KB

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function inBatches(items, size, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += size) {
    out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  }
  return out;
}

async function run(name, url, pid) {
  const lat = [];
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  const idle = rssKiB(pid);
  const started = now();
  const rooms = [...Array(ROOMS).keys()].map((i) => ({ code: `bench-${i}-${t.uniq('')}` }));

  // Connect everybody (50 handshakes at a time, like a class arriving).
  const specs = [];
  for (const r of rooms) {
    specs.push({ r, role: 'pub', id: t.uniq('pub') });
    specs.push({ r, role: 'v0', id: t.uniq('view') });
    specs.push({ r, role: 'v1', id: t.uniq('view') });
  }
  await inBatches(specs, 50, async (s) => {
    const sock = await t.connect(s.id, s.r.code, {
      url, transports: ['websocket'], key: s.role === 'pub' ? undefined : KEY,
    });
    s.r[s.role] = sock;
    sock.on(t.MSG_EVENT, (m) => {
      if (m.message && typeof m.message.t === 'number') lat.push(now() - m.message.t);
      if (s.role === 'pub' && m.message.newParticipationRequest) {
        const o = t.offer(m.sender, s.id, m);
        o.message.sdp = SDP;
        o.message.t = now();
        sock.emit(t.MSG_EVENT, o);
      } else if (s.role !== 'pub' && m.message.type === 'offer') {
        const a = t.answer(m.sender, s.id);
        a.message.sdp = SDP;
        a.message.t = now();
        sock.emit(t.MSG_EVENT, a);
      }
    });
  });
  const connectedMs = now() - started;
  const sockets = specs.filter((s) => s.r[s.role].connected).length;

  // Publishers open, viewers join and ask for the stream: offers and
  // answers flow (each carries its send time).
  await inBatches(rooms, 50, async (r) => {
    t.assertEq(await t.emitAck(r.pub, 'open-room', t.openRoomArg(r.code)), [true], `${name}: open`);
  });
  await inBatches(rooms, 50, async (r) => {
    for (const v of [r.v0, r.v1]) {
      t.assertEq(await t.emitAck(v, 'join-room', t.joinRoomArg(r.code)), [true], `${name}: join`);
      v.emit(t.MSG_EVENT, t.joinRequest(r.code, v.userid));
    }
  });
  const expectSetup = ROOMS * 4; // 2 offers + 2 answers per room
  for (let i = 0; i < 200 && lat.length < expectSetup; i++) await t.sleep(50);
  const rss = rssKiB(pid);

  const setup = lat.splice(0, lat.length).sort((a, b) => a - b);

  // Trickled candidates both ways, ROUNDS rounds of one second; the rooms'
  // sends are spread over the second, as real trickle ICE is.
  const gap = 1000 / ROOMS;
  for (let round = 0; round < ROUNDS; round++) {
    const start = now();
    for (let i = 0; i < ROOMS; i++) {
      const r = rooms[i];
      for (const v of [r.v0, r.v1]) {
        const c1 = t.candidate(v.userid, r.pub.userid, round);
        c1.message.t = now();
        r.pub.emit(t.MSG_EVENT, c1);
        const c2 = t.candidate(r.pub.userid, v.userid, round);
        c2.message.t = now();
        v.emit(t.MSG_EVENT, c2);
      }
      const wait = start + (i + 1) * gap - now();
      if (wait >= 1) await t.sleep(wait);
    }
  }
  const expected = ROOMS * 4 * ROUNDS;
  for (let i = 0; i < 100 && lat.length < expected; i++) await t.sleep(50);
  for (const s of specs) s.r[s.role].disconnect();
  lat.sort((a, b) => a - b);
  return {
    name, sockets, relays: setup.length + lat.length, expected: expected + expectSetup, connectedMs,
    idleMiB: idle / 1024, rssMiB: rss / 1024, kibPerSocket: (rss - idle) / sockets,
    setup50: pct(setup, 50), setup99: pct(setup, 99),
    p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1],
  };
}

async function main() {
  const servers = (process.env.SERVERS || '').split(',').filter(Boolean).map((s) => {
    const [name, rest] = s.split('=');
    const [url, pid] = rest.split('|');
    return { name, url, pid };
  });
  if (!servers.length) t.fail('set SERVERS="name=url|pid,..."');
  const results = [];
  for (const s of servers) {
    results.push(await run(s.name, s.url, s.pid));
    await t.sleep(1000);
  }
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  console.log(`rooms=${ROOMS} (1 publisher + 2 viewers each), rounds=${ROUNDS}`);
  console.log('| server | sockets held | relays delivered | connect all (ms) | RSS idle (MiB) | RSS loaded (MiB) | KiB per socket | offer/answer burst p50 / p99 (ms) | trickle p50 (ms) | trickle p99 (ms) | trickle max (ms) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(`| ${r.name} | ${r.sockets} | ${r.relays}/${r.expected} | ${f(r.connectedMs, 0)} | ${f(r.idleMiB)} | ${f(r.rssMiB)} | ${f(r.kibPerSocket)} | ${f(r.setup50, 1)} / ${f(r.setup99, 1)} | ${f(r.p50, 2)} | ${f(r.p99, 2)} | ${f(r.max, 2)} |`);
  }
  process.exit(0);
}

main().catch((e) => t.fail(e.stack || String(e)));
