// The rtcproctor student page: publish the camera one-way to every proctor
// who joins the student's stream code, chat, raise attention, and keep
// streaming through network trouble.
//
// Protocol: RTCMultiConnection 3.7 as RTCProctor's student page speaks it
// (shared/reference/rtcmulticonnection-protocol.md §2, §6), plus rtcproctor's
// extension fields in `extra` (src/signal/protocol.rs): msgId, attentionAck,
// quality, name.
//
// Life of a session:
//  1. Go Live: camera + microphone, ICE servers from config.json, socket.
//  2. On connect: `open-room` with the code as sessionid (oneway session).
//  3. Each proctor's `newParticipationRequest` gets its own RTCPeerConnection
//     and an offer; answers and trickled candidates come back by relay.
//  4. If the socket drops (close, heartbeat silence, browser offline) the page
//     reconnects with backoff, re-opens the same code with the same userid and
//     re-offers with an ICE restart to every proctor it still has.
//  5. A peer connection that turns disconnected/failed gets ICE restarts; one
//     that never recovers is dropped (the proctor may join again).
//  6. Stop: `userLeft` to each proctor, socket closed, camera off.
'use strict';

(function () {
  // ---- constants -----------------------------------------------------------

  const MSG_EVENT = 'rtc-video-proctoring';
  const CUSTOM_EVENT = 'RTCMultiConnection-Custom-Message';
  /** Like RTCProctor: small and slow is enough for a proctor's grid. */
  const LOW = { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: { ideal: 5 } };
  /** While a proctor has this student enlarged. */
  const HIGH = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } };
  const MAX_CODE = 128;
  const MAX_CHAT_OUT = 500;
  const MAX_CHAT_IN = 1000;
  const MAX_LOG_LINES = 200;
  const MAX_PROCTORS = 50;
  const RETRY_BASE_MS = 300;
  const RETRY_CAP_MS = 3000;
  const ACK_TIMEOUT_MS = 8000;
  /** How long a peer may stay "disconnected" before an ICE restart. */
  const PEER_GRACE_MS = 3000;
  /** How long to wait for an answer before offering again. */
  const ANSWER_TIMEOUT_MS = 5000;
  const MAX_RESTARTS = 6;
  const BEEP_EVERY_MS = 3000;
  /** While live, ask the server now and then whether our room still exists:
   *  it proves the socket is alive long before the Engine.IO heartbeat
   *  (up to 47 s) would, and heals a room the server lost. */
  const PROBE_EVERY_MS = 20000;
  const PROBE_TIMEOUT_MS = 3000;
  const RELINK_EVERY_MS = 1500;
  const RELINK_TRIES = 20;

  const KEY_USERID = 'rtcproctor.userid';
  const KEY_SEQ = 'rtcproctor.msgId';
  const KEY_LIVE = 'rtcproctor.live';

  // ---- elements ------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const el = {
    body: document.body,
    status: $('status'),
    statusText: $('status-text'),
    statusDetail: $('status-detail'),
    code: $('code'),
    camera: $('camera'),
    golive: $('golive'),
    stop: $('stop'),
    setupForm: $('setup'),
    preview: $('preview'),
    previewOff: $('preview-off'),
    cameraOn: $('camera-on'),
    log: $('log'),
    chatForm: $('chat-form'),
    msg: $('msg'),
    attention: $('attention'),
    alarm: $('alarm'),
    alarmText: $('alarm-text'),
    ack: $('ack'),
    hiddenWarn: $('hidden-warning'),
    hiddenOk: $('hidden-ok'),
    phoneTip: $('phone-tip'),
    serverNote: $('server-note'),
  };

  // ---- state ---------------------------------------------------------------

  const S = {
    server: serverBase(),
    userid: storedUserid(),
    seq: Number(storageGet(KEY_SEQ)) || 0,
    iceServers: [],
    code: '',
    /** The student wants to be live (Go Live pressed, Stop not). */
    want: false,
    stream: null,
    sock: null,
    roomOpen: false,
    attempt: 0,
    retryTimer: null,
    /** viewer userid -> Peer */
    peers: new Map(),
    /** Our current `extra`, re-sent after every reconnect. */
    extra: {},
    myAttentionId: 0,
    /** sender userid -> {msgId, text} of the last chat/attention shown */
    lastSeen: new Map(),
    /** proctors asking for the larger picture */
    highFrom: new Set(),
    quality: 'low',
    alarmFrom: null,
    beepTimer: null,
    audio: null,
    wakeLock: null,
    everLive: false,
    probeTimer: null,
    probing: false,
  };

  // ---- small helpers -------------------------------------------------------

  function storageGet(key) {
    try {
      return sessionStorage.getItem(key);
    } catch (e) {
      return null;
    }
  }
  function storageSet(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, value);
    } catch (e) {
      /* private mode: the id just won't survive a reload */
    }
  }

  /** Random id like RTCMultiConnection's, kept for the tab's lifetime so a
   *  reload or reconnect presents the same identity to the server. */
  function storedUserid() {
    let id = storageGet(KEY_USERID);
    if (!id || !/^[a-z0-9]{8,40}$/.test(id)) {
      const r = new Uint32Array(3);
      crypto.getRandomValues(r);
      id = Array.from(r, (n) => n.toString(36).padStart(7, '0')).join('');
      storageSet(KEY_USERID, id);
    }
    return id;
  }

  /** Where the signalling server is: `?server=URL`, else this page's origin. */
  function serverBase() {
    const param = new URLSearchParams(location.search).get('server');
    const base = param || location.origin;
    try {
      const u = new URL(base);
      return u.origin + u.pathname.replace(/\/+$/, '');
    } catch (e) {
      return location.origin;
    }
  }

  /** Stream code from the fragment: `/#CODE` (text up to a second `#`). */
  function codeFromHash() {
    const raw = location.hash.replace(/^#/, '').split('#')[0];
    try {
      return decodeURIComponent(raw).trim().slice(0, MAX_CODE);
    } catch (e) {
      return raw.trim().slice(0, MAX_CODE);
    }
  }

  function nextMsgId() {
    S.seq += 1;
    storageSet(KEY_SEQ, String(S.seq));
    return S.seq;
  }

  function clock() {
    const d = new Date();
    return [d.getHours(), d.getMinutes(), d.getSeconds()]
      .map((n) => String(n).padStart(2, '0'))
      .join(':');
  }

  /** Network text to display: a string, no control characters, bounded. */
  function cleanText(v, max) {
    if (typeof v !== 'string') return '';
    // eslint-disable-next-line no-control-regex
    return v.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '').trim().slice(0, max);
  }

  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : many);
  }

  // ---- status line ---------------------------------------------------------

  /** kind: idle | busy | live | reconnecting | offline | error */
  function setStatus(kind, text, detail) {
    el.body.dataset.state = kind;
    el.status.dataset.kind = kind;
    el.statusText.textContent = text;
    el.statusDetail.textContent = detail || '';
    document.title = (kind === 'live' ? '● ' : '') + 'rtcproctor — exam camera';
  }

  function watchers() {
    let n = 0;
    for (const p of S.peers.values()) if (p.pc.connectionState === 'connected') n++;
    return n;
  }

  function showLive() {
    if (!S.want || !S.roomOpen) return;
    const n = watchers();
    el.body.dataset.watchers = String(n);
    setStatus(
      'live',
      'You are live',
      n === 0 ? 'No proctor is watching yet.' : plural(n, 'proctor is', 'proctors are') + ' watching.'
    );
  }

  function setControls() {
    const live = S.want;
    el.code.disabled = live;
    el.golive.disabled = live;
    el.stop.disabled = !live;
    // Chat and attention reach a proctor only through the room.
    el.msg.disabled = !live;
    el.chatForm.querySelector('button').disabled = !live;
    el.attention.disabled = !live;
    el.body.classList.toggle('is-live', live);
  }

  // ---- chat log ------------------------------------------------------------

  /** kind: me | proctor | attention | system */
  function addLog(kind, text, who) {
    const li = document.createElement('li');
    li.className = 'msg ' + kind;
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = (who ? who + ' · ' : '') + clock();
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = text;
    li.append(meta, body);
    el.log.append(li);
    while (el.log.children.length > MAX_LOG_LINES) el.log.firstElementChild.remove();
    el.log.scrollTop = el.log.scrollHeight;
  }

  // ---- camera --------------------------------------------------------------

  /** What the picture should be now (also reported in `open-room`). */
  function videoConstraints(deviceId) {
    const q = S.quality === 'high' ? HIGH : LOW;
    return Object.assign({}, q, deviceId ? { deviceId } : {});
  }

  /** How the camera is opened: at the larger size, then scaled down with
   *  applyConstraints. Chrome can scale a camera down but never up past
   *  the format it was opened with, so this makes "high" a cheap change. */
  function captureConstraints(deviceId) {
    return Object.assign({}, HIGH, deviceId ? { deviceId } : {});
  }

  /** Bring a fresh video track to the current quality. */
  async function fitTrack(track) {
    if (!track || track.kind !== 'video') return;
    try {
      await track.applyConstraints(S.quality === 'high' ? HIGH : LOW);
    } catch (e) {
      console.warn('applyConstraints', e);
    }
  }

  /** Fill the camera chooser; labels appear once permission was granted. */
  async function listCameras() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const cams = devices.filter((d) => d.kind === 'videoinput');
    const current = currentDeviceId() || el.camera.value;
    el.camera.replaceChildren();
    if (cams.length === 0) {
      const o = new Option('No camera found', '');
      el.camera.append(o);
      return;
    }
    cams.forEach((d, i) => {
      const o = new Option(d.label || 'Camera ' + (i + 1), d.deviceId);
      el.camera.append(o);
    });
    if (current && cams.some((d) => d.deviceId === current)) el.camera.value = current;
  }

  function currentDeviceId() {
    const t = S.stream && S.stream.getVideoTracks()[0];
    const s = t && t.getSettings ? t.getSettings() : {};
    return s.deviceId || '';
  }

  function explainMediaError(e) {
    const name = e && e.name;
    if (name === 'NotAllowedError' || name === 'SecurityError')
      return 'Camera access was blocked. Allow the camera for this site in your browser settings, then press Go Live again.';
    if (name === 'NotFoundError' || name === 'OverconstrainedError')
      return 'No camera or microphone was found. Connect one, pick it above, and press Go Live again.';
    if (name === 'NotReadableError')
      return 'The camera is busy in another app. Close that app, then press Go Live again.';
    if (!navigator.mediaDevices) return 'This page needs HTTPS (or localhost) to use the camera.';
    return 'The camera could not start (' + (e && e.message ? e.message : e) + ').';
  }

  /** Camera + microphone, reusing a running stream. */
  async function ensureCamera() {
    if (S.stream && S.stream.getTracks().every((t) => t.readyState === 'live')) return S.stream;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw Object.assign(new Error('no mediaDevices'), { name: 'InsecureContext' });
    }
    const video = captureConstraints(el.camera.value);
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video, audio: true });
    } catch (e) {
      // A missing or broken microphone should not keep the camera off.
      if (!['NotFoundError', 'NotReadableError', 'OverconstrainedError'].includes(e && e.name)) throw e;
      stream = await navigator.mediaDevices.getUserMedia({ video });
      addLog('system', 'No working microphone was found: only your camera is streamed.');
    }
    await fitTrack(stream.getVideoTracks()[0]);
    setStream(stream);
    await listCameras().catch(() => {});
    return stream;
  }

  function setStream(stream) {
    S.stream = stream;
    el.preview.srcObject = stream;
    el.preview.play().catch(() => {});
    el.body.classList.add('has-camera');
    for (const t of stream.getTracks()) {
      t.addEventListener('ended', () => onTrackEnded(t));
    }
  }

  function stopCamera() {
    if (S.stream) for (const t of S.stream.getTracks()) t.stop();
    S.stream = null;
    el.preview.srcObject = null;
    el.body.classList.remove('has-camera');
  }

  /** The camera was unplugged or taken away: try to get one back. */
  async function onTrackEnded(track) {
    if (!S.stream || !S.stream.getTracks().includes(track)) return;
    if (!S.want) return;
    addLog('system', 'Your ' + (track.kind === 'video' ? 'camera' : 'microphone') + ' stopped; trying to restart it.');
    try {
      const fresh = await navigator.mediaDevices.getUserMedia(
        track.kind === 'video' ? { video: captureConstraints('') } : { audio: true }
      );
      await fitTrack(fresh.getVideoTracks()[0]);
      replaceTrack(track, fresh.getTracks()[0]);
      await listCameras().catch(() => {});
    } catch (e) {
      setStatus('error', 'Your camera stopped', explainMediaError(e));
    }
  }

  /** Swap one local track for another in the preview and every peer. */
  function replaceTrack(old, fresh) {
    S.stream.removeTrack(old);
    S.stream.addTrack(fresh);
    fresh.addEventListener('ended', () => onTrackEnded(fresh));
    for (const p of S.peers.values()) {
      for (const sender of p.pc.getSenders()) {
        if (sender.track === old || (sender.track === null && p.kinds.get(sender) === fresh.kind)) {
          sender.replaceTrack(fresh).catch(() => {});
        }
      }
    }
    old.stop();
    el.preview.srcObject = S.stream;
  }

  async function switchCamera() {
    if (!S.stream) return;
    const old = S.stream.getVideoTracks()[0];
    if (!old || currentDeviceId() === el.camera.value) return;
    try {
      old.stop(); // some phones cannot open two cameras at once
      const fresh = await navigator.mediaDevices.getUserMedia({
        video: captureConstraints({ exact: el.camera.value }),
      });
      await fitTrack(fresh.getVideoTracks()[0]);
      replaceTrack(old, fresh.getVideoTracks()[0]);
    } catch (e) {
      setStatus('error', 'Could not switch camera', explainMediaError(e));
    }
  }

  async function applyQuality() {
    const want = S.highFrom.size > 0 ? 'high' : 'low';
    if (want === S.quality) return;
    S.quality = want;
    el.body.dataset.quality = want;
    await fitQuality(want);
  }

  /** Bring the camera to the size `want` asks for: applyConstraints, else
   *  reopen it; if the reopen still got the wrong size (the old track held
   *  the device for longer), look again a few seconds later (twice at most:
   *  each reopen blinks the picture). */
  async function fitQuality(want, round = 0) {
    const track = S.stream && S.stream.getVideoTracks()[0];
    if (!track) return;
    const c = want === 'high' ? HIGH : LOW;
    try {
      await track.applyConstraints(c);
    } catch (e) {
      console.warn('applyConstraints', want, e);
    }
    // A camera that could not be opened large (or a browser that does not
    // rescale) is reopened at the wanted size (a short blink in the picture).
    const got = track.getSettings ? track.getSettings().width || 0 : 0;
    const caps = track.getCapabilities ? track.getCapabilities() : {};
    const canGrow = !caps.width || !caps.width.max || caps.width.max >= c.width.ideal;
    const tooSmall = want === 'high' && got < c.width.ideal * 0.9 && canGrow;
    const tooBig = want === 'low' && got > c.width.ideal * 1.5;
    if ((tooSmall || tooBig) && S.quality === want && S.stream && S.stream.getVideoTracks()[0] === track) {
      const deviceId = track.getSettings().deviceId;
      try {
        track.stop(); // phones often cannot open the same camera twice
        // The stopped track releases the device asynchronously; a reopen
        // that races it gets the old (small) format. Wait and retry a few
        // times until the size is right (or keep the last one).
        const video = Object.assign({}, c, deviceId ? { deviceId: { exact: deviceId } } : {});
        let fresh = null;
        let right = false;
        for (let attempt = 0; ; attempt++) {
          if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(2000, 250 * 2 ** attempt)));
          const t = (await navigator.mediaDevices.getUserMedia({ video })).getVideoTracks()[0];
          const w = (t.getSettings && t.getSettings().width) || 0;
          right = want === 'high' ? w >= c.width.ideal * 0.9 : w <= c.width.ideal * 1.5;
          if (right || attempt >= 5 || S.quality !== want) {
            fresh = t;
            break;
          }
          t.stop();
        }
        replaceTrack(track, fresh);
        if (!right && round < 2) {
          setTimeout(() => {
            if (S.quality === want) fitQuality(want, round + 1);
          }, 3000);
        }
      } catch (e) {
        console.warn('reopening the camera at', want, 'failed:', e);
        onTrackEnded(track);
      }
    }
  }

  // ---- ICE servers ---------------------------------------------------------

  /** `{"iceServers":[...]}` from the server's config.json; none if absent
   *  (host candidates are enough on a LAN or loopback). */
  async function loadIceServers() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 3000);
    try {
      const res = await fetch(S.server + '/config.json', { cache: 'no-store', signal: ctl.signal });
      if (!res.ok) return [];
      const cfg = await res.json();
      if (!cfg || !Array.isArray(cfg.iceServers)) return [];
      return cfg.iceServers.filter(
        (s) => s && (typeof s.urls === 'string' || (Array.isArray(s.urls) && s.urls.every((u) => typeof u === 'string')))
      );
    } catch (e) {
      return [];
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- socket and room -----------------------------------------------------

  function handshakeQuery() {
    return {
      userid: S.userid,
      sessionid: S.code,
      msgEvent: MSG_EVENT,
      socketCustomEvent: CUSTOM_EVENT,
      autoCloseEntireSession: 'false',
      maxParticipantsAllowed: '1000',
      extra: '{}',
    };
  }

  function openRoomArgs() {
    return {
      sessionid: S.code,
      session: { audio: true, video: true, oneway: true },
      mediaConstraints: { video: videoConstraints(el.camera.value), audio: true },
      sdpConstraints: {
        mandatory: { OfferToReceiveAudio: false, OfferToReceiveVideo: false },
        optional: [{ VoiceActivityDetection: false }],
      },
      streams: S.stream ? [{ streamid: S.stream.id, tracks: S.stream.getTracks().length }] : [],
      extra: S.extra,
      identifier: '',
      password: '',
    };
  }

  function connect() {
    clearTimeout(S.retryTimer);
    S.retryTimer = null;
    if (!S.want || S.sock) return;
    if (navigator.onLine === false) {
      setStatus('offline', 'You are offline', 'Waiting for the network to come back…');
      return;
    }
    if (!S.everLive) setStatus('busy', 'Connecting…', 'Reaching the exam server.');
    let sock;
    try {
      sock = new SioSocket(S.server, handshakeQuery());
    } catch (e) {
      setStatus('error', 'Bad server address', String(e.message || e));
      return;
    }
    S.sock = sock;
    let refusal = '';
    sock.on(MSG_EVENT, onRelay);
    sock.on('extra-data-updated', (uid, extra) => onExtra(uid, extra));
    sock.on('user-disconnected', (uid) => dropPeer(uid));
    sock.on('user-connected', (uid) => {
      const p = S.peers.get(uid);
      if (p) p.linked = true;
    });
    sock.on('userid-already-taken', () => {
      // The server still holds our previous connection; it will let go of it
      // (at once for rtcproctor, after its ping timeout for the stock server).
      refusal = 'taken';
      sock.close('userid taken');
    });
    sock.onconnect = async () => {
      try {
        const [ok, err] = await sock.emitWithAck('open-room', [openRoomArgs()], ACK_TIMEOUT_MS);
        if (sock !== S.sock) return;
        if (ok === true) {
          onRoomOpen();
        } else {
          refusal = typeof err === 'string' ? err : 'refused';
          sock.close('open-room refused');
        }
      } catch (e) {
        if (sock === S.sock) sock.close('open-room: ' + e.message);
      }
    };
    sock.onclose = (reason) => {
      if (sock !== S.sock) return;
      S.sock = null;
      S.roomOpen = false;
      clearInterval(S.probeTimer);
      if (S.want) scheduleRetry(reason, refusal);
    };
  }

  /** Refusals that time heals: our previous connection still holds the
   *  code. Anything else is the server's own reason (e.g. a code not on the
   *  roster), shown to the student as it is. */
  function transientRefusal(refusal) {
    return !refusal || refusal === 'taken' || refusal === 'Room not available';
  }

  function scheduleRetry(reason, refusal) {
    if (!transientRefusal(refusal) && !S.everLive) {
      // Never went live with this code: retrying cannot help, say why.
      S.want = false;
      setControls();
      setStatus('error', 'The server refused this code', cleanText(refusal, 300));
      el.code.focus();
      return;
    }
    const delay = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** S.attempt) * (0.75 + Math.random() * 0.5);
    S.attempt += 1;
    console.info('socket closed (' + reason + '); retry', S.attempt, 'in', Math.round(delay), 'ms');
    let detail;
    if (refusal === 'taken' || refusal === 'Room not available') {
      detail =
        'This code is already live on another device, or your previous connection is still closing. If that other device is not yours, tell your proctor (they are alerted). Trying again…';
    } else if (!transientRefusal(refusal)) {
      detail = cleanText(refusal, 300) + ' Trying again…';
    } else if (!S.everLive) {
      detail = 'Cannot reach the exam server yet. Trying again…';
    } else {
      detail = 'The connection dropped. Reconnecting (try ' + S.attempt + ')…';
    }
    if (navigator.onLine === false) setStatus('offline', 'You are offline', 'Waiting for the network to come back…');
    else setStatus(S.everLive ? 'reconnecting' : 'busy', S.everLive ? 'Reconnecting…' : 'Connecting…', detail);
    for (const p of S.peers.values()) clearPeerTimers(p);
    S.retryTimer = setTimeout(connect, delay);
  }

  function onRoomOpen() {
    S.roomOpen = true;
    S.attempt = 0;
    const again = S.everLive;
    S.everLive = true;
    storageSet(KEY_LIVE, S.code);
    requestWakeLock();
    // Like the library, tell the server our extra (the pending attention
    // request survives a reconnect; stale chat is harmless thanks to msgId).
    S.sock.emit('extra-data-updated', S.extra);
    clearInterval(S.probeTimer);
    S.probeTimer = setInterval(() => probe('periodic'), PROBE_EVERY_MS);
    showLive();
    if (again) {
      // The server forgot which proctors we talk to (chat fans out only to
      // linked users): any relayed message links us again. A peer whose
      // media still flows gets its last candidate once more (a no-op for
      // the proctor); the others get an ICE restart.
      for (const p of S.peers.values()) relink(p, RELINK_TRIES);
    }
  }

  /** Link a proctor again after our socket came back, until the server
   *  confirms with `user-connected` (the proctor's socket may come back
   *  later than ours, and the server drops messages to unknown users). */
  function relink(peer, tries) {
    clearTimeout(peer.relinkTimer);
    if (S.peers.get(peer.id) !== peer || peer.linked || !S.roomOpen) return;
    if (peer.pc.connectionState !== 'connected' || !peer.lastCandidate) {
      restartPeer(peer, 'reconnected'); // retried by its own answer timeout
      return;
    }
    send(peer.id, peer.lastCandidate);
    if (tries > 1) peer.relinkTimer = setTimeout(() => relink(peer, tries - 1), RELINK_EVERY_MS);
  }

  /** Is the socket alive and our room still there? Closes a dead socket
   *  (which reconnects) and re-opens a room the server forgot. */
  async function probe(why) {
    const sock = S.sock;
    if (!S.want || !sock || !S.roomOpen || S.probing) return;
    S.probing = true;
    try {
      const [present] = await sock.emitWithAck('check-presence', [S.code], PROBE_TIMEOUT_MS);
      if (sock !== S.sock) return;
      if (present === true) {
        showLive();
      } else {
        console.info('room missing on the server (' + why + '); opening it again');
        const [ok, err] = await sock.emitWithAck('open-room', [openRoomArgs()], ACK_TIMEOUT_MS);
        if (sock !== S.sock) return;
        if (ok !== true) sock.close('re-open refused: ' + err);
        else showLive();
      }
    } catch (e) {
      console.info('probe (' + why + ') failed: ' + e.message);
      if (sock === S.sock) sock.close('probe failed');
    } finally {
      S.probing = false;
    }
  }

  function send(to, message) {
    if (S.sock && S.sock.connected) S.sock.emit(MSG_EVENT, { remoteUserId: to, message, sender: S.userid });
  }

  // ---- relay messages from proctors ----------------------------------------

  function onRelay(env) {
    if (!env || env.remoteUserId !== S.userid || typeof env.sender !== 'string') return;
    const from = env.sender;
    if (from === S.userid) return;
    const m = env.message;
    if (env.extra && typeof env.extra === 'object') onExtra(from, env.extra);
    if (!m || typeof m !== 'object') return;
    if (m.newParticipationRequest) newProctor(from, env);
    else if (m.type === 'answer' && typeof m.sdp === 'string') onAnswer(from, m.sdp);
    else if (typeof m.candidate === 'string') onCandidate(from, m);
    else if (m.userLeft) dropPeer(from);
  }

  async function newProctor(from, env) {
    if (!S.want || !S.stream) return;
    dropPeer(from);
    if (S.peers.size >= MAX_PROCTORS) return;
    const pc = new RTCPeerConnection({ iceServers: S.iceServers });
    const peer = {
      id: from,
      pc,
      joinEnv: env,
      pending: [],
      answered: false,
      lastCandidate: null,
      linked: false,
      relinkTimer: null,
      restarts: 0,
      graceTimer: null,
      answerTimer: null,
      kinds: new Map(),
    };
    S.peers.set(from, peer);
    for (const track of S.stream.getTracks()) {
      const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [S.stream] });
      peer.kinds.set(tr.sender, track.kind);
    }
    // Proctors need to read the picture: under CPU or bandwidth pressure
    // drop frames, not resolution (at 5 fps there is little to drop).
    pc.addEventListener('signalingstatechange', () => keepResolution(pc), { once: true });
    pc.onicecandidate = (e) => {
      if (e.candidate && e.candidate.candidate) {
        peer.lastCandidate = {
          candidate: e.candidate.candidate,
          sdpMid: e.candidate.sdpMid,
          sdpMLineIndex: e.candidate.sdpMLineIndex,
        };
        send(from, peer.lastCandidate);
      }
    };
    pc.onconnectionstatechange = () => watchPeer(peer);
    pc.oniceconnectionstatechange = () => watchPeer(peer);
    await sendOffer(peer, false);
  }

  function keepResolution(pc) {
    for (const sender of pc.getSenders()) {
      if (!sender.track || sender.track.kind !== 'video' || !sender.getParameters) continue;
      try {
        const params = sender.getParameters();
        if (params.degradationPreference === 'maintain-resolution') continue;
        params.degradationPreference = 'maintain-resolution';
        sender.setParameters(params).catch(() => {});
      } catch (e) {
        /* not supported (Firefox): the browser's default applies */
      }
    }
  }

  async function sendOffer(peer, iceRestart) {
    const pc = peer.pc;
    try {
      if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
      const offer = await pc.createOffer(iceRestart ? { iceRestart: true } : undefined);
      await pc.setLocalDescription(offer);
    } catch (e) {
      console.warn('offer to', peer.id, 'failed:', e);
      return;
    }
    if (S.peers.get(peer.id) !== peer) return;
    send(peer.id, {
      type: 'offer',
      sdp: pc.localDescription.sdp,
      remotePeerSdpConstraints: { OfferToReceiveAudio: true, OfferToReceiveVideo: true },
      // RTCMultiConnection answers a renegotiation only for a peer it
      // has; an offer that was never answered is offered afresh.
      renegotiatingPeer: iceRestart && peer.answered,
      connectionDescription: peer.joinEnv,
      dontGetRemoteStream: true,
      extra: S.extra,
      streamsToShare: { [S.stream.id]: { isAudio: true, isVideo: true, isScreen: false } },
    });
    clearTimeout(peer.answerTimer);
    peer.answerTimer = setTimeout(() => {
      // Lost (the proctor's socket was away too?): offer again, bounded.
      if (S.peers.get(peer.id) === peer && pc.signalingState === 'have-local-offer') restartPeer(peer, 'no answer');
    }, ANSWER_TIMEOUT_MS);
  }

  async function onAnswer(from, sdp) {
    const peer = S.peers.get(from);
    if (!peer || peer.pc.signalingState !== 'have-local-offer') return;
    clearTimeout(peer.answerTimer);
    try {
      await peer.pc.setRemoteDescription({ type: 'answer', sdp });
      peer.answered = true;
    } catch (e) {
      console.warn('answer from', from, 'rejected:', e);
      return;
    }
    const pending = peer.pending.splice(0);
    for (const c of pending) peer.pc.addIceCandidate(c).catch(() => {});
  }

  function onCandidate(from, m) {
    const peer = S.peers.get(from);
    if (!peer) return;
    const c = { candidate: m.candidate, sdpMid: m.sdpMid, sdpMLineIndex: m.sdpMLineIndex };
    if (!peer.pc.remoteDescription || peer.pc.signalingState === 'have-local-offer') {
      if (peer.pending.length < 100) peer.pending.push(c);
      return;
    }
    peer.pc.addIceCandidate(c).catch(() => {});
  }

  function watchPeer(peer) {
    if (S.peers.get(peer.id) !== peer) return;
    const state = peer.pc.connectionState || peer.pc.iceConnectionState;
    if (state === 'connected') {
      peer.restarts = 0;
      clearTimeout(peer.graceTimer);
      peer.graceTimer = null;
    } else if (state === 'disconnected') {
      if (!peer.graceTimer) {
        peer.graceTimer = setTimeout(() => {
          peer.graceTimer = null;
          if (peer.pc.connectionState !== 'connected') restartPeer(peer, 'disconnected');
        }, PEER_GRACE_MS);
      }
    } else if (state === 'failed') {
      restartPeer(peer, 'failed');
    } else if (state === 'closed') {
      dropPeer(peer.id);
    }
    showLive();
  }

  /** ICE restart towards one proctor, bounded; gives up on a peer that
   *  never comes back (the proctor can join again). */
  function restartPeer(peer, why) {
    if (S.peers.get(peer.id) !== peer) return;
    if (!S.roomOpen) return; // done again after the socket is back
    if (peer.restarts >= MAX_RESTARTS) {
      if (peer.pc.connectionState !== 'connected') dropPeer(peer.id);
      return;
    }
    peer.restarts += 1;
    console.info('ICE restart to', peer.id, '(' + why + ')');
    sendOffer(peer, true);
  }

  function clearPeerTimers(peer) {
    clearTimeout(peer.graceTimer);
    clearTimeout(peer.answerTimer);
    clearTimeout(peer.relinkTimer);
    peer.graceTimer = peer.answerTimer = peer.relinkTimer = null;
    peer.linked = false;
  }

  function dropPeer(id) {
    const peer = S.peers.get(id);
    if (peer) {
      S.peers.delete(id);
      clearPeerTimers(peer);
      peer.pc.onconnectionstatechange = peer.pc.oniceconnectionstatechange = peer.pc.onicecandidate = null;
      peer.pc.close();
    }
    if (S.highFrom.delete(id)) applyQuality();
    showLive();
  }

  // ---- extra data: chat, attention, quality --------------------------------

  function onExtra(from, extra) {
    if (typeof from !== 'string' || from === S.userid || !extra || typeof extra !== 'object') return;
    if (extra.quality === 'high' && S.peers.has(from)) S.highFrom.add(from);
    else if (extra.quality === 'low') S.highFrom.delete(from);
    applyQuality();

    if (S.myAttentionId && extra.attentionAck === S.myAttentionId) attentionSeen();

    const name = cleanText(extra.name, 40) || 'Proctor';
    const message = cleanText(extra.message, MAX_CHAT_IN);
    const attention = cleanText(extra.attention, MAX_CHAT_IN);
    const text = message || attention;
    if (!text) return;
    // Stock pages resend the same extra with every relayed message: show a
    // line once per msgId (ours) or once per distinct text (stock pages).
    const last = S.lastSeen.get(from) || { msgId: null, text: '' };
    const hasId = typeof extra.msgId === 'number';
    const fresh = hasId ? extra.msgId !== last.msgId : text !== last.text;
    S.lastSeen.set(from, { msgId: hasId ? extra.msgId : last.msgId, text });
    if (!fresh) return;
    if (message) {
      addLog('proctor', message, name);
    } else {
      addLog('attention', 'Attention requested', name);
      raiseAlarm(from, hasId ? extra.msgId : 0);
    }
  }

  function sendExtra() {
    if (S.sock && S.sock.connected && S.roomOpen) {
      S.sock.emit('extra-data-updated', S.extra);
      return true;
    }
    return false;
  }

  function sendChat(text) {
    S.extra = { message: text, attention: '', msgId: nextMsgId() };
    const sent = sendExtra();
    addLog('me', text + (sent ? '' : ' (will be sent when you are back online)'), 'You');
  }

  function askAttention() {
    const id = nextMsgId();
    S.myAttentionId = id;
    // Plain text (RTCProctor sends markup here; we never send markup).
    S.extra = { message: '', attention: 'Attn Request: ' + clock(), msgId: id };
    const sent = sendExtra();
    addLog('me attention', 'You asked a proctor for attention' + (sent ? '.' : ' (will be sent when you are back online).'), 'You');
    el.attention.classList.add('waiting');
    el.attention.setAttribute('aria-pressed', 'true');
    el.attention.querySelector('.label').textContent = 'Waiting for a proctor…';
  }

  /** A proctor acknowledged our attention request (attentionAck). */
  function attentionSeen() {
    if (el.body.dataset.attnAck === String(S.myAttentionId)) return;
    el.body.dataset.attnAck = String(S.myAttentionId);
    // Do not re-raise the request after a reconnect.
    if (S.extra.msgId === S.myAttentionId) S.extra.attention = '';
    addLog('system', 'A proctor has seen your request.');
    el.attention.classList.remove('waiting');
    el.attention.setAttribute('aria-pressed', 'false');
    el.attention.querySelector('.label').textContent = 'Ask for attention';
  }

  // ---- alarm: a proctor wants the student's attention ----------------------

  /** Create/resume the AudioContext inside a click, so later beeps may play
   *  (autoplay rules on iOS and Chrome). */
  function unlockAudio() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!S.audio) S.audio = new Ctx();
    if (S.audio.state === 'suspended') S.audio.resume().catch(() => {});
  }

  function beep() {
    const ctx = S.audio;
    if (!ctx) return;
    if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    const t0 = ctx.currentTime + 0.02;
    [880, 660, 880].forEach((hz, i) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'sine';
      osc.frequency.value = hz;
      const s = t0 + i * 0.22;
      gain.gain.setValueAtTime(0.0001, s);
      gain.gain.exponentialRampToValueAtTime(0.35, s + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, s + 0.2);
      osc.connect(gain).connect(ctx.destination);
      osc.start(s);
      osc.stop(s + 0.21);
    });
    el.body.dataset.beeps = String(Number(el.body.dataset.beeps || 0) + 1);
    el.body.dataset.audio = ctx.state;
  }

  function raiseAlarm(from, msgId) {
    S.alarmFrom = { from, msgId };
    el.body.dataset.alerts = String(Number(el.body.dataset.alerts || 0) + 1);
    el.body.classList.add('alerting');
    el.alarm.hidden = false;
    el.alarmText.textContent = 'A proctor needs your attention (' + clock() + ').';
    el.ack.focus();
    if (navigator.vibrate) navigator.vibrate([300, 150, 300]);
    clearInterval(S.beepTimer);
    beep();
    S.beepTimer = setInterval(beep, BEEP_EVERY_MS);
  }

  function acknowledgeAlarm() {
    clearInterval(S.beepTimer);
    S.beepTimer = null;
    el.body.classList.remove('alerting');
    el.alarm.hidden = true;
    const a = S.alarmFrom;
    S.alarmFrom = null;
    if (!a) return;
    addLog('system', 'You answered the attention request.');
    // Same field a proctor uses to acknowledge ours; stock pages ignore it.
    if (a.msgId) {
      S.extra = Object.assign({}, S.extra, { message: '', attention: '', attentionAck: a.msgId });
      sendExtra();
    }
    el.msg.focus();
  }

  // ---- wake lock, visibility, network --------------------------------------

  async function requestWakeLock() {
    if (!('wakeLock' in navigator) || S.wakeLock || document.visibilityState !== 'visible') return;
    try {
      S.wakeLock = await navigator.wakeLock.request('screen');
      S.wakeLock.addEventListener('release', () => {
        S.wakeLock = null;
      });
    } catch (e) {
      /* low battery or not allowed: the phone tip covers it */
    }
  }

  function releaseWakeLock() {
    if (S.wakeLock) S.wakeLock.release().catch(() => {});
    S.wakeLock = null;
  }

  function onVisibility() {
    if (!S.want) return;
    if (document.visibilityState === 'hidden') {
      S.wasHidden = true;
    } else {
      requestWakeLock();
      probe('visible again');
      if (S.wasHidden) {
        S.wasHidden = false;
        el.hiddenWarn.hidden = false;
        // A phone may have paused the camera while hidden.
        if (S.stream && S.stream.getTracks().some((t) => t.readyState !== 'live')) onTrackEnded(S.stream.getVideoTracks()[0]);
      }
    }
  }

  function onOnline() {
    if (!S.want) return;
    if (!S.sock) {
      S.attempt = 0;
      connect();
    } else if (S.roomOpen) {
      // The network changed under us: the socket may be a dead half-open
      // connection that would only time out much later.
      probe('back online');
    }
  }

  function onOffline() {
    if (!S.want) return;
    setStatus('offline', 'You are offline', 'Waiting for the network to come back…');
  }

  // ---- Go Live / Stop ------------------------------------------------------

  async function goLive() {
    const code = el.code.value.trim().slice(0, MAX_CODE);
    if (!code) {
      setStatus('error', 'Enter your stream code first', 'Your exam gave you a code or a link with the code in it.');
      el.code.focus();
      return;
    }
    unlockAudio();
    S.code = code;
    S.want = true;
    S.everLive = false;
    S.attempt = 0;
    setControls();
    if (codeFromHash() !== code) history.replaceState(null, '', '#' + encodeURIComponent(code));
    setStatus('busy', 'Starting your camera…', 'Allow camera and microphone if your browser asks.');
    try {
      await ensureCamera();
    } catch (e) {
      S.want = false;
      setControls();
      setStatus('error', 'Camera not available', explainMediaError(e));
      return;
    }
    if (!S.want) return; // Stop pressed meanwhile
    S.iceServers = await loadIceServers();
    if (!S.want) return;
    connect();
  }

  function stop() {
    const wasLive = S.want;
    S.want = false;
    storageSet(KEY_LIVE, null);
    clearTimeout(S.retryTimer);
    clearInterval(S.probeTimer);
    for (const id of Array.from(S.peers.keys())) {
      send(id, { userLeft: true });
      dropPeer(id);
    }
    if (S.sock) {
      const sock = S.sock;
      S.sock = null;
      sock.close('stopped');
    }
    S.roomOpen = false;
    S.everLive = false;
    S.highFrom.clear();
    S.quality = 'low';
    el.body.dataset.quality = 'low';
    el.body.dataset.watchers = '0';
    acknowledgeAlarm();
    releaseWakeLock();
    stopCamera();
    setControls();
    el.hiddenWarn.hidden = true;
    setStatus('idle', wasLive ? 'Stopped — you are not live' : 'Ready', 'Press Go Live when your exam starts.');
  }

  // ---- wiring --------------------------------------------------------------

  function init() {
    el.code.value = codeFromHash();
    el.body.dataset.quality = 'low';
    el.body.dataset.watchers = '0';
    el.body.dataset.alerts = '0';
    el.body.dataset.beeps = '0';
    el.body.dataset.userid = S.userid;
    setControls();
    setStatus('idle', 'Ready', el.code.value ? 'Press Go Live when your exam starts.' : 'Enter your stream code, then press Go Live.');

    el.setupForm.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!S.want) goLive();
    });
    el.stop.addEventListener('click', stop);
    el.camera.addEventListener('change', switchCamera);
    el.cameraOn.addEventListener('click', () => {
      ensureCamera().catch((e) => setStatus('error', 'Camera not available', explainMediaError(e)));
    });
    el.chatForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = cleanText(el.msg.value, MAX_CHAT_OUT);
      if (!text) return;
      el.msg.value = '';
      sendChat(text);
    });
    el.attention.addEventListener('click', () => {
      unlockAudio();
      askAttention();
    });
    el.ack.addEventListener('click', acknowledgeAlarm);
    el.hiddenOk.addEventListener('click', () => {
      el.hiddenWarn.hidden = true;
    });
    window.addEventListener('hashchange', () => {
      if (!S.want) el.code.value = codeFromHash();
    });
    window.addEventListener('online', onOnline);
    window.addEventListener('offline', onOffline);
    document.addEventListener('visibilitychange', onVisibility);
    // A closing tab tells the proctors at once instead of after a timeout.
    window.addEventListener('pagehide', () => {
      for (const id of Array.from(S.peers.keys())) {
        send(id, { userLeft: true });
        dropPeer(id);
      }
      if (S.sock) S.sock.close('page closed');
    });
    if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
      navigator.mediaDevices.addEventListener('devicechange', () => listCameras().catch(() => {}));
    }
    if (window.matchMedia && window.matchMedia('(pointer: coarse)').matches) el.phoneTip.hidden = false;
    // `?server=` sends the camera elsewhere than this page's own server:
    // say where, so a doctored link cannot do it unnoticed.
    if (new URL(S.server).origin !== location.origin) {
      el.serverNote.textContent = 'Your camera will be sent to ' + new URL(S.server).host + '.';
      el.serverNote.hidden = false;
    }
    listCameras().catch(() => {});

    // A reload while live resumes the same code (the student never pressed Stop).
    const resume = storageGet(KEY_LIVE);
    if (resume && resume === el.code.value) {
      goLive();
    } else if (navigator.permissions && navigator.permissions.query) {
      // Show the preview at once when the camera is already allowed.
      navigator.permissions
        .query({ name: 'camera' })
        .then((p) => {
          if (p.state === 'granted' && !S.stream) ensureCamera().catch(() => {});
        })
        .catch(() => {});
    }
  }

  init();
})();
