// The full RTCProctor session of protocol notes §6.8, driven with
// socket.io-client 3.0.4 against our server: open, join (with the proctor
// key), join request to the owner, offer/answer/candidate relay,
// user-connected, chat and attention via extra-data-updated, userLeft,
// disconnects and user-disconnected, then the room is gone.
'use strict';

const t = require('./lib');

async function main() {
  const code = t.uniq('room-');
  const stuId = t.uniq('stu');
  const monId = t.uniq('mon');

  t.say('student connects and opens the room');
  const stu = await t.connect(stuId, code);
  t.assertEq(await t.emitAck(stu, 'open-room', t.openRoomArg(code)), [true], 'open-room ack');
  stu.emit('extra-data-updated', {});

  t.say('monitor connects with the key and joins');
  const mon = await t.connect(monId, code, { key: t.KEY });
  t.assertEq(await t.emitAck(mon, 'join-room', t.joinRoomArg(code)), [true], 'join-room ack');

  t.say('join request reaches the owner with remoteUserId rewritten, without extra');
  mon.emit(t.MSG_EVENT, t.joinRequest(code, monId));
  const [req] = await t.waitFor(stu, t.MSG_EVENT, ([m]) => m.message && m.message.newParticipationRequest);
  t.assertEq(req.remoteUserId, stuId, 'join request remoteUserId');
  t.assertEq(req.sender, monId, 'join request sender');
  t.assert(!('extra' in req), 'join request must not carry extra');
  t.assertEq(req.message.isOneWay, true, 'join request body kept');

  t.say('offer from the student connects both sides and arrives with extra');
  stu.emit(t.MSG_EVENT, t.offer(monId, stuId, req));
  t.assertEq(await t.waitFor(stu, 'user-connected'), [monId], 'student user-connected');
  t.assertEq(await t.waitFor(mon, 'user-connected'), [stuId], 'monitor user-connected');
  const [off] = await t.waitFor(mon, t.MSG_EVENT, ([m]) => m.message.type === 'offer');
  t.assertEq(off.remoteUserId, monId, 'offer remoteUserId');
  t.assertEq(off.sender, stuId, 'offer sender');
  t.assertEq(off.extra, {}, 'offer carries the sender extra');
  t.assertEq(off.message.connectionDescription.remoteUserId, stuId, 'offer body kept');

  t.say('candidates both ways, answer back');
  for (let i = 0; i < 3; i++) stu.emit(t.MSG_EVENT, t.candidate(monId, stuId, i));
  mon.emit(t.MSG_EVENT, t.answer(stuId, monId));
  for (let i = 0; i < 3; i++) mon.emit(t.MSG_EVENT, t.candidate(stuId, monId, 10 + i));
  for (let i = 0; i < 3; i++) {
    const [c] = await t.waitFor(mon, t.MSG_EVENT, ([m]) => m.message.candidate && m.message.candidate.startsWith(`candidate:${i} `));
    t.assertEq(c.message.sdpMid, '0', 'candidate sdpMid');
  }
  const [ans] = await t.waitFor(stu, t.MSG_EVENT, ([m]) => m.message.type === 'answer');
  t.assertEq(ans.sender, monId, 'answer sender');
  for (let i = 0; i < 3; i++) {
    await t.waitFor(stu, t.MSG_EVENT, ([m]) => m.message.candidate && m.message.candidate.startsWith(`candidate:${10 + i} `));
  }
  await t.expectNone(stu, 'user-connected', () => true, 100);

  t.say('chat from the student reaches the monitor and echoes to the student');
  const chat = { message: 'hello proctor', attention: '' };
  stu.emit('extra-data-updated', chat);
  t.assertEq(await t.waitFor(mon, 'extra-data-updated', ([u]) => u === stuId), [stuId, chat], 'chat at monitor');
  t.assertEq(await t.waitFor(stu, 'extra-data-updated', ([u, e]) => u === stuId && e.message === chat.message), [stuId, chat], 'chat echo');

  t.say('attention request');
  const attn = { attention: "<span style='color:red;'>Attn Request: 10:00:00</span>", message: '' };
  stu.emit('extra-data-updated', attn);
  t.assertEq(await t.waitFor(mon, 'extra-data-updated', ([u, e]) => e.attention === attn.attention), [stuId, attn], 'attention at monitor');

  t.say('later relays carry the current extra');
  stu.emit(t.MSG_EVENT, t.candidate(monId, stuId, 7));
  const [c7] = await t.waitFor(mon, t.MSG_EVENT, ([m]) => m.message.candidate && m.message.candidate.startsWith('candidate:7 '));
  t.assertEq(c7.extra, attn, 'relay extra is the latest extra');

  t.say('proctor chat reaches the student');
  const reply = { message: 'ok, coming', attention: '' };
  mon.emit('extra-data-updated', reply);
  t.assertEq(await t.waitFor(stu, 'extra-data-updated', ([u]) => u === monId), [monId, reply], 'reply at student');

  t.say('userLeft is relayed');
  mon.emit(t.MSG_EVENT, { remoteUserId: stuId, message: { userLeft: true }, sender: monId });
  const [left] = await t.waitFor(stu, t.MSG_EVENT, ([m]) => m.message.userLeft === true);
  t.assertEq(left.sender, monId, 'userLeft sender');

  t.say('monitor disconnects: the student hears user-disconnected');
  mon.disconnect();
  t.assertEq(await t.waitFor(stu, 'user-disconnected'), [monId], 'user-disconnected at student');

  t.say('a second proctor joins, then the student leaves');
  const mon2Id = t.uniq('mon');
  const mon2 = await t.connect(mon2Id, code, { key: t.KEY });
  t.assertEq(await t.emitAck(mon2, 'join-room', t.joinRoomArg(code)), [true], 'second join');
  mon2.emit(t.MSG_EVENT, t.joinRequest(code, mon2Id));
  const [req2] = await t.waitFor(stu, t.MSG_EVENT, ([m]) => m.sender === mon2Id);
  stu.emit(t.MSG_EVENT, t.offer(mon2Id, stuId, req2));
  await t.waitFor(mon2, 'user-connected');
  stu.disconnect();
  t.assertEq(await t.waitFor(mon2, 'user-disconnected'), [stuId], 'user-disconnected at monitor');

  t.say('the room is gone');
  t.assertEq(await t.emitAck(mon2, 'join-room', t.joinRoomArg(code)), [false, 'Room not available'], 'join after leave');
  t.assertEq(await t.emitAck(mon2, 'check-presence', code), [false, code, { _room: { isFull: false, isPasswordProtected: false } }], 'check-presence');
  mon2.disconnect();
  console.log('session ok');
  process.exit(0);
}

main().catch((e) => t.fail(e.stack || String(e)));
