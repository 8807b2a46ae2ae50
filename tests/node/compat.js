// Compatibility check: the same scripted RTCProctor session (protocol notes
// §6.8, payloads exactly as RTCMultiConnection 3.7 sends them) against the
// stock RTCMultiConnection-Server 1.3.3 (STOCK_URL) and against ours
// (OURS_URL). Every message a client depends on (acks, relays, user
// connected/disconnected, extra-data-updated, owner-forwarded join requests)
// is recorded per step and per client, with random ids replaced by role
// names, and the two transcripts must be equal.
//
// Normalisation, each a documented difference that clients do not depend on:
// - object key order is ignored (JSON has none);
// - within a step, repeated identical messages count once (the stock server
//   sends user-disconnected twice; RTCMultiConnection handles one);
// - the proctor key query parameter is sent to both (the stock server
//   ignores unknown parameters);
// - check-presence comes after the student's last relay: the stock server
//   writes `_room` into the owner's stored extra there (a bug ours does not
//   reproduce) and would relay it from then on.
'use strict';

const t = require('./lib');

async function session(url, key) {
  const roles = {};
  const clients = {};
  const steps = [];
  let current = null;

  function normalise(v) {
    if (typeof v === 'string') {
      let s = v;
      for (const [id, role] of Object.entries(roles)) s = s.split(id).join(role);
      return s;
    }
    if (Array.isArray(v)) return v.map(normalise);
    if (v && typeof v === 'object') {
      const o = {};
      for (const k of Object.keys(v).sort()) o[normalise(k)] = normalise(v[k]);
      return o;
    }
    return v;
  }

  async function step(name, fn) {
    t.say(`${url}: ${name}`);
    for (const c of Object.values(clients)) c.all.length = 0;
    current = { name, acks: [], received: {} };
    await fn();
    await t.sleep(250); // let duplicates and stragglers arrive
    for (const [role, c] of Object.entries(clients)) {
      const seen = new Set();
      const msgs = [];
      for (const m of c.all) {
        if (m.event === 'disconnect') continue;
        const s = JSON.stringify(normalise([m.event, ...m.args]));
        if (!seen.has(s)) { seen.add(s); msgs.push(s); }
      }
      msgs.sort();
      if (msgs.length) current.received[role] = msgs;
    }
    steps.push(current);
  }

  async function ack(role, event, ...args) {
    const a = await t.emitAck(clients[role], event, ...args);
    current.acks.push(JSON.stringify(normalise([role, event, a])));
    return a;
  }

  async function join(role, userid, code, opts) {
    roles[userid] = role;
    clients[role] = await t.connect(userid, code, Object.assign({ url }, opts));
  }

  const code = t.uniq('code-');
  const other = t.uniq('code-');
  roles[code] = 'CODE';
  roles[other] = 'OTHER';
  const ids = { S: t.uniq('stu'), S2: t.uniq('stu'), M: t.uniq('mon'), M2: t.uniq('mon') };
  const M_KEY = { key };

  await step('student connects and opens', async () => {
    await join('S', ids.S, code);
    await ack('S', 'open-room', t.openRoomArg(code));
    clients.S.emit('extra-data-updated', {});
  });
  await step('second student cannot open the live code', async () => {
    await join('S2', ids.S2, code);
    await ack('S2', 'open-room', t.openRoomArg(code));
  });
  await step('monitor connects, joins an absent code, then the live one', async () => {
    await join('M', ids.M, other, M_KEY);
    await ack('M', 'join-room', t.joinRoomArg(other));
    await ack('M', 'join-room', t.joinRoomArg(code));
  });
  await step('join request goes to the owner', async () => {
    clients.M.emit(t.MSG_EVENT, t.joinRequest(code, ids.M));
    await t.waitFor(clients.S, t.MSG_EVENT);
  });
  let req;
  await step('offer connects the pair', async () => {
    req = t.joinRequest(code, ids.M);
    req.remoteUserId = ids.S;
    clients.S.emit(t.MSG_EVENT, t.offer(ids.M, ids.S, req));
    await t.waitFor(clients.M, t.MSG_EVENT, ([m]) => m.message.type === 'offer');
  });
  await step('candidates from the student', async () => {
    for (let i = 0; i < 3; i++) clients.S.emit(t.MSG_EVENT, t.candidate(ids.M, ids.S, i));
    await t.waitFor(clients.M, t.MSG_EVENT, ([m]) => m.message.candidate && m.message.candidate.startsWith('candidate:2 '));
  });
  await step('answer and candidates from the monitor', async () => {
    clients.M.emit(t.MSG_EVENT, t.answer(ids.S, ids.M));
    for (let i = 0; i < 3; i++) clients.M.emit(t.MSG_EVENT, t.candidate(ids.S, ids.M, 10 + i));
    await t.waitFor(clients.S, t.MSG_EVENT, ([m]) => m.message.candidate && m.message.candidate.startsWith('candidate:12 '));
  });
  await step('student chat', async () => {
    clients.S.emit('extra-data-updated', { message: 'hello proctor', attention: '' });
    await t.waitFor(clients.M, 'extra-data-updated');
  });
  await step('student attention', async () => {
    clients.S.emit('extra-data-updated', { attention: "<span style='color:red;'>Attn Request: 10:00:00</span>", message: '' });
    await t.waitFor(clients.M, 'extra-data-updated');
  });
  await step('relays carry the latest extra', async () => {
    clients.S.emit(t.MSG_EVENT, t.candidate(ids.M, ids.S, 7));
    await t.waitFor(clients.M, t.MSG_EVENT);
  });
  await step('proctor chat', async () => {
    clients.M.emit('extra-data-updated', { message: 'ok', attention: '' });
    await t.waitFor(clients.S, 'extra-data-updated');
  });
  await step('userLeft is relayed', async () => {
    clients.M.emit(t.MSG_EVENT, { remoteUserId: ids.S, message: { userLeft: true }, sender: ids.M });
    await t.waitFor(clients.S, t.MSG_EVENT);
  });
  await step('monitor disconnects', async () => {
    clients.M.disconnect();
    delete clients.M;
    await t.waitFor(clients.S, 'user-disconnected');
  });
  await step('second monitor joins and connects', async () => {
    await join('M2', ids.M2, code, M_KEY);
    await ack('M2', 'join-room', t.joinRoomArg(code));
    clients.M2.emit(t.MSG_EVENT, t.joinRequest(code, ids.M2));
    await t.waitFor(clients.S, t.MSG_EVENT);
    const r = t.joinRequest(code, ids.M2);
    r.remoteUserId = ids.S;
    clients.S.emit(t.MSG_EVENT, t.offer(ids.M2, ids.S, r));
    await t.waitFor(clients.M2, t.MSG_EVENT);
  });
  await step('disconnect-with', async () => {
    await ack('M2', 'disconnect-with', ids.S);
    await t.waitFor(clients.S, 'user-disconnected');
  });
  await step('reconnect the pair', async () => {
    clients.S.emit(t.MSG_EVENT, t.candidate(ids.M2, ids.S, 20));
    await t.waitFor(clients.M2, t.MSG_EVENT);
  });
  // Last, because the stock server writes `_room` into the owner's stored
  // extra here (protocol notes §6.6, quirk 9) and would relay it from then on;
  // ours does not reproduce that.
  await step('check-presence of the live code', async () => {
    await ack('M2', 'check-presence', code);
  });
  await step('student leaves', async () => {
    clients.S.disconnect();
    delete clients.S;
    await t.waitFor(clients.M2, 'user-disconnected');
  });
  await step('the code is free again', async () => {
    await ack('M2', 'join-room', t.joinRoomArg(code));
    await ack('M2', 'check-presence', code);
    await ack('S2', 'open-room', t.openRoomArg(code));
  });
  for (const c of Object.values(clients)) c.disconnect();
  return steps;
}

async function main() {
  const stock = await session(process.env.STOCK_URL, process.env.PROCTOR_KEY);
  const ours = await session(process.env.OURS_URL, process.env.PROCTOR_KEY);
  let diffs = 0;
  for (let i = 0; i < Math.max(stock.length, ours.length); i++) {
    const a = JSON.stringify(stock[i], null, 1);
    const b = JSON.stringify(ours[i], null, 1);
    if (a !== b) {
      diffs++;
      console.error(`step ${i} differs:\n--- stock\n${a}\n--- ours\n${b}`);
    }
  }
  const messages = stock.reduce((n, s) => n + s.acks.length + Object.values(s.received).reduce((m, r) => m + r.length, 0), 0);
  if (diffs) t.fail(`${diffs} of ${stock.length} steps differ`);
  t.assert(messages >= 30, `the transcript is too small to mean anything (${messages} messages)`);
  console.log(`compat ok: ${stock.length} steps, ${messages} distinct messages equal`);
  if (process.env.VERBOSE) console.log(JSON.stringify(ours, null, 1));
  process.exit(0);
}

main().catch((e) => t.fail(e.stack || String(e)));
