// End-to-end test of the student page in headless Chromium with a fake
// camera, watched by RTCProctor's monitor setup (RTCMultiConnection 3.7.1).
//
//   node page-e2e.js --mode stock              stock rtcmulticonnection-server
//   node page-e2e.js --mode rtcproctor --bin B B serve --http --open-viewing
//   add --shots DIR to save screenshots of every state (phone + desktop).
//
// Exits 0 when every step passed, 1 otherwise (first failure printed).
// Timings are printed ("timing ..."), never asserted tightly.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const NODE_DIR = process.env.RTCPROCTOR_NODE_DIR;
if (!NODE_DIR || !fs.existsSync(path.join(NODE_DIR, 'node_modules', 'playwright-core'))) {
  console.error('page-e2e: playwright-core missing; run scripts/setup --test and set RTCPROCTOR_NODE_DIR');
  process.exit(3);
}
const { chromium } = require(path.join(NODE_DIR, 'node_modules', 'playwright-core'));

const argv = process.argv.slice(2);
const arg = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const MODE = arg('--mode', 'stock');
const BIN = arg('--bin', '');
const SHOTS = arg('--shots', '');
const OVERALL_MS = Number(arg('--timeout-ms', '240000'));

const children = new Set();
let browserCtx = null;
let profileDir = null;

function log(...a) {
  console.log('[page-e2e]', ...a);
}

function cleanup() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch (e) {
      /* gone */
    }
  }
  children.clear();
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
}
process.on('exit', cleanup);
setTimeout(() => {
  log('FAIL: overall timeout of', OVERALL_MS, 'ms');
  cleanup();
  process.exit(1);
}, OVERALL_MS).unref();

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error('timed out after ' + ms + ' ms: ' + what)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Poll `fn` until it returns a truthy value; returns it. */
async function until(what, fn, ms = 15000, every = 200) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error('timed out after ' + ms + ' ms waiting for ' + what + ' (last: ' + JSON.stringify(String(last)) + ')');
}

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

// ---- servers ---------------------------------------------------------------

/** Start a child and resolve once `ready()` says so. */
function startChild(cmd, args, name) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => {
    const s = String(d);
    if (process.env.PAGE_E2E_VERBOSE) process.stderr.write('[' + name + '] ' + s);
  });
  child.output = () => out;
  return child;
}

async function httpOk(url) {
  try {
    const res = await fetch(url);
    return res.ok;
  } catch (e) {
    return false;
  }
}

/** The node helper: stock signalling (+static) or static only. */
async function startNodeServer(port, staticOnly) {
  const script = path.join(__dirname, 'page-stock-server.js');
  const child = startChild('node', [script, '--port', String(port)].concat(staticOnly ? ['--static'] : []), 'node-server');
  await until('node server to listen on ' + port, () => /LISTENING \d+/.test(child.output()), 10000, 50);
  return child;
}

let rosterFile = null;
async function startSignal(port) {
  if (MODE === 'stock') return startNodeServer(port, false);
  const child = startChild(BIN, ['serve', '--http', '--bind', '127.0.0.1:' + port, '--open-viewing', '--roster', rosterFile], 'rtcproctor');
  await until('rtcproctor serve on ' + port, () => httpOk('http://127.0.0.1:' + port + '/'), 15000, 100);
  return child;
}

async function killChild(child) {
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await withTimeout(gone, 5000, 'server exit');
}

/**
 * A TCP relay in front of the signalling server for the student page only.
 * `blackhole()` silently stops forwarding on every connection (a network
 * that vanished without a FIN/RST); `restore()` forwards new connections
 * again and closes the server side of the dead ones (the server notices),
 * while the page's side stays open but silent, as after a real network
 * change: only the page's own liveness checks can find out.
 */
function startProxy(listenPort, targetPort) {
  const pairs = new Set();
  let dead = false;
  const server = net.createServer((c) => {
    const s = net.connect(targetPort, '127.0.0.1');
    const pair = { c, s, dead };
    pairs.add(pair);
    c.on('data', (d) => pair.dead || s.write(d));
    s.on('data', (d) => pair.dead || c.write(d));
    const end = () => {
      pairs.delete(pair);
      c.destroy();
      s.destroy();
    };
    c.on('close', end);
    c.on('error', end);
    s.on('close', () => (pair.dead ? s.destroy() : end()));
    s.on('error', () => (pair.dead ? s.destroy() : end()));
  });
  return new Promise((resolve) =>
    server.listen(listenPort, '127.0.0.1', () =>
      resolve({
        blackhole() {
          dead = true;
          for (const p of pairs) p.dead = true;
        },
        restore() {
          dead = false;
          for (const p of pairs) if (p.dead) p.s.destroy();
        },
        close() {
          for (const p of pairs) {
            p.c.destroy();
            p.s.destroy();
          }
          server.close();
        },
      })
    )
  );
}

// ---- browser helpers -------------------------------------------------------

async function state(page) {
  return page.evaluate(() => ({ ...document.body.dataset, status: document.getElementById('status-text').textContent }));
}

async function videoAdvancing(viewer, minWidth = 1) {
  const a = await viewer.evaluate(() => V.stats());
  if (!a || a.w < minWidth) return false;
  await sleep(1200);
  const b = await viewer.evaluate(() => V.stats());
  return !!b && b.w >= minWidth && b.t > a.t ? b : false;
}

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  // What the student sees (viewport) on a phone and a laptop, plus the
  // whole phone page.
  for (const [label, size, fullPage] of [
    ['phone', { width: 390, height: 844 }, false],
    ['phone-full', { width: 390, height: 844 }, true],
    ['desktop', { width: 1280, height: 860 }, false],
  ]) {
    await page.setViewportSize(size);
    await sleep(250);
    await page.screenshot({ path: path.join(SHOTS, name + '-' + label + '.png'), fullPage });
  }
  await page.setViewportSize({ width: 1280, height: 860 });
}

// ---- the test ---------------------------------------------------------------

async function main() {
  if (MODE !== 'stock' && !(BIN && fs.existsSync(BIN))) throw new Error('--mode rtcproctor needs --bin PATH to the rtcproctor binary');
  const code = 'e2e-' + Math.random().toString(36).slice(2, 10);
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtcp-page-'));
  // Our server only lets roster codes go live.
  rosterFile = path.join(profileDir, 'roster.tsv');
  fs.writeFileSync(rosterFile, 's1\t' + code + '\n');
  const sigPort = await freePort();
  const staticPort = await freePort();
  let signal = await startSignal(sigPort);
  // The page and the viewer are loaded from a different origin than the
  // signalling server, so `?server=` and cross-origin use are exercised too.
  await startNodeServer(staticPort, true);
  const server = 'http://127.0.0.1:' + sigPort;
  // The student reaches the server through a relay the test can cut.
  const proxyPort = await freePort();
  const proxy = await startProxy(proxyPort, sigPort);
  const viaProxy = 'http://127.0.0.1:' + proxyPort;
  const pageUrl =
    MODE === 'stock'
      ? 'http://127.0.0.1:' + staticPort + '/?server=' + encodeURIComponent(viaProxy) + '#' + code
      : viaProxy + '/#' + code; // the page embedded in the binary
  const viewerUrl = 'http://127.0.0.1:' + staticPort + '/test/viewer.html?server=' + encodeURIComponent(server) + '&code=' + encodeURIComponent(code);
  log('mode', MODE, 'signal', server, 'code', code);

  browserCtx = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
  const student = browserCtx.pages()[0] || (await browserCtx.newPage());
  student.on('pageerror', (e) => log('student page error:', e.message));
  student.on('console', (m) => {
    // Failed WebSocket attempts are expected while the server is down.
    const expected = m.text().startsWith('WebSocket connection to');
    if (process.env.PAGE_E2E_VERBOSE || (m.type() === 'error' && !expected)) log('student console', m.type(), m.text());
  });

  const steps = [];
  async function step(name, fn, ms = 20000) {
    const t0 = Date.now();
    await withTimeout(fn(), ms, name);
    const dt = Date.now() - t0;
    steps.push([name, dt]);
    log('ok', name, '(' + dt + ' ms)');
  }

  await step('page loads with the code from the fragment', async () => {
    await student.goto(pageUrl);
    const v = await student.inputValue('#code');
    check(v === code, 'code field is ' + v);
    const s = await state(student);
    check(s.state === 'idle', 'state idle, got ' + s.state);
    // The page names the server it streams to when that is not its own.
    const note = await student.isVisible('#server-note');
    check(note === (MODE === 'stock'), 'server note shown: ' + note);
    await shot(student, 'idle');
  });

  if (MODE === 'rtcproctor') await step('a code off the roster is refused with the reason', async () => {
    await student.fill('#code', 'not-on-roster');
    await student.click('#golive');
    await until('refusal shown', async () => (await state(student)).state === 'error');
    const detail = await student.textContent('#status-detail');
    check(/roster/i.test(detail), 'reason shown: ' + detail);
    check(!(await student.isDisabled('#golive')), 'Go Live usable again');
    await shot(student, 'refused');
    await student.fill('#code', code);
  });

  await step('go live', async () => {
    await student.click('#golive');
    await until('student live', async () => (await state(student)).state === 'live');
    const opts = await student.$$eval('#camera option', (os) => os.map((o) => o.textContent));
    check(opts.length >= 1 && opts[0] !== '' && !/^Camera \d/.test(opts[0]), 'camera labels after permission: ' + opts);
  });

  const viewer = await browserCtx.newPage();
  viewer.on('pageerror', (e) => log('viewer page error:', e.message));
  await step('viewer receives video', async () => {
    await viewer.goto(viewerUrl);
    const st = await until('video advancing at the viewer', () => videoAdvancing(viewer));
    log('viewer video', st.w + 'x' + st.h);
    await until('student counts one proctor', async () => (await state(student)).watchers === '1');
    await shot(student, 'live');
    if (SHOTS) {
      await student.emulateMedia({ colorScheme: 'dark' });
      await shot(student, 'live-dark');
      await student.emulateMedia({ colorScheme: 'light' });
    }
  });

  await step('chat student -> proctor', async () => {
    const text = 'hello proctor <b>bold?</b>';
    await student.fill('#msg', text);
    await student.press('#msg', 'Enter');
    await until('viewer gets the chat', () => viewer.evaluate((t) => V.extras.some((e) => e.message === t && typeof e.msgId === 'number'), text));
  });

  await step('chat proctor -> student, shown as text', async () => {
    const text = 'hi student <img src=x onerror="window.pwned=1">';
    await viewer.evaluate((t) => V.send({ message: t, attention: '', msgId: 1, name: 'Ms Proctor' }), text);
    await until('student shows the chat', () =>
      student.evaluate((t) => Array.from(document.querySelectorAll('#log li.proctor .text')).some((e) => e.textContent === t), text)
    );
    const html = await student.evaluate(() => ({ imgs: document.querySelectorAll('#log img').length, pwned: !!window.pwned }));
    check(html.imgs === 0 && !html.pwned, 'chat rendered as HTML');
    // The same extra again (stock servers duplicate it) must not repeat the line.
    await viewer.evaluate((t) => V.send({ message: t, attention: '', msgId: 1, name: 'Ms Proctor' }), text);
    await sleep(500);
    const n = await student.evaluate(() => document.querySelectorAll('#log li.proctor').length);
    check(n === 1, 'duplicate chat shown ' + n + ' times');
    await shot(student, 'chat');
  });

  await step('attention student -> proctor, acknowledged', async () => {
    await student.click('#attention');
    const ext = await until('viewer gets attention', () => viewer.evaluate(() => V.extras.find((e) => e.attention && e.msgId)));
    check(!/[<>]/.test(ext.attention), 'attention text carries markup: ' + ext.attention);
    await viewer.evaluate((id) => V.send({ message: '', attention: '', msgId: 1, attentionAck: id }), ext.msgId);
    await until('student sees the acknowledgement', async () => (await state(student)).attnAck === String(ext.msgId));
  });

  await step('attention proctor -> student: alert until acknowledged', async () => {
    await viewer.evaluate(() => V.send({ message: '', attention: 'Attn Request: now', msgId: 2 }));
    await until('alert raised', async () => {
      const s = await state(student);
      return s.alerts === '1' && Number(s.beeps) >= 1;
    });
    const s = await state(student);
    check(s.audio === 'running', 'AudioContext state ' + s.audio);
    check(await student.evaluate(() => document.body.classList.contains('alerting')), 'page flashes');
    check(await student.isVisible('#alarm'), 'alarm dialog visible');
    await shot(student, 'attention');
    await student.click('#ack');
    check(!(await student.evaluate(() => document.body.classList.contains('alerting'))), 'flash stopped');
    await until('proctor gets the student acknowledgement', () => viewer.evaluate(() => V.extras.some((e) => e.attentionAck === 2)));
    const beeps = Number((await state(student)).beeps);
    await sleep(3500);
    check(Number((await state(student)).beeps) === beeps, 'beeping continued after acknowledgement');
  });

  await step('quality high -> larger picture, low -> small again', async () => {
    await viewer.evaluate(() => V.send({ message: '', attention: '', msgId: 2, quality: 'high' }));
    await until('student applies high', async () => (await state(student)).quality === 'high');
    let last = null;
    const track = await until('camera at the larger size', async () => {
      last = await student.evaluate(() => {
        const t = document.getElementById('preview').srcObject.getVideoTracks()[0];
        return { s: t.getSettings(), c: t.getConstraints(), q: document.body.dataset.quality };
      });
      return last.s.width >= 600 ? last.s : false;
    }).catch((e) => {
      throw new Error(e.message + ' ' + JSON.stringify(last));
    });
    log('camera settings while high', track.width + 'x' + track.height + '@' + track.frameRate);
    const hi = await until('bigger video at the viewer', () => videoAdvancing(viewer, 480), 15000);
    await viewer.evaluate(() => V.send({ message: '', attention: '', msgId: 2, quality: 'low' }));
    await until('student applies low', async () => (await state(student)).quality === 'low');
    const lo = await until('small video at the viewer', async () => {
      const s = await videoAdvancing(viewer);
      return s && s.w <= 400 ? s : false;
    }, 15000);
    log('quality', 'high', hi.w + 'x' + hi.h, 'low', lo.w + 'x' + lo.h);
  }, 40000);

  const viewer2 = await browserCtx.newPage();
  viewer2.on('console', (m) => {
    if (process.env.PAGE_E2E_VERBOSE) log('viewer2 console', m.type(), m.text());
  });
  await step('a viewer leaves, another keeps receiving', async () => {
    await viewer2.goto(viewerUrl);
    await until('second viewer video', () => videoAdvancing(viewer2));
    await until('student counts two proctors', async () => (await state(student)).watchers === '2');
    await viewer.evaluate(() => V.leave());
    await viewer.close();
    await until('student counts one proctor again', async () => (await state(student)).watchers === '1');
    await until('second viewer still advancing', () => videoAdvancing(viewer2));
  });

  const faults = !process.env.PAGE_E2E_SKIP_FAULTS;
  if (faults) await step('server killed and restarted while live', async () => {
    await killChild(signal);
    await until('student shows reconnecting', async () => ['reconnecting', 'busy'].includes((await state(student)).state), 10000, 100);
    await shot(student, 'reconnecting');
    await sleep(2000);
    signal = await startSignal(sigPort);
    const back = Date.now();
    await until('student live again', async () => (await state(student)).state === 'live', 20000, 100);
    const live = Date.now() - back;
    await until('viewer receiving again', () => videoAdvancing(viewer2), 30000);
    const media = Date.now() - back;
    log('timing server-restart: live again', live, 'ms after the server returned; viewer video advancing after', media, 'ms');
    // Chat still flows both ways (the server had forgotten who talks to whom).
    await student.fill('#msg', 'after restart from student');
    await student.press('#msg', 'Enter');
    await until('viewer gets chat after restart', () => viewer2.evaluate(() => V.extras.some((e) => e.message === 'after restart from student')));
    await viewer2.evaluate(() => V.send({ message: 'after restart from proctor', attention: '', msgId: 10 }));
    await until('student gets chat after restart', () =>
      student.evaluate(() => Array.from(document.querySelectorAll('#log li.proctor .text')).some((e) => e.textContent === 'after restart from proctor'))
    );
  }, 70000);

  if (faults) await step('page offline for 10 s (CDP emulation + silent network), then back', async () => {
    const cdp = await browserCtx.newCDPSession(student);
    await cdp.send('Network.enable');
    // CDP offline makes the browser say "offline" and fail new requests but
    // leaves an open WebSocket alone, so the relay drops its traffic too.
    proxy.blackhole();
    await cdp.send('Network.emulateNetworkConditions', { offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const seen = new Set();
    const t0 = Date.now();
    let shotTaken = false;
    while (Date.now() - t0 < 10000) {
      seen.add((await state(student)).state);
      if (!shotTaken && Date.now() - t0 > 2000) {
        shotTaken = true;
        await shot(student, 'offline');
      }
      await sleep(250);
    }
    proxy.restore();
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    const back = Date.now();
    log('states while offline:', Array.from(seen).join(','));
    check(seen.has('offline'), 'the page never said it was offline');
    await until('student live again', async () => (await state(student)).state === 'live', 20000, 100);
    const live = Date.now() - back;
    await until('viewer receiving after offline', () => videoAdvancing(viewer2), 30000).catch(async (e) => {
      const v = await viewer2.evaluate(() => ({ ended: V.ended, left: V.left, offline: V.offline, video: !!V.video, streams: V.streams, joins: V.joins, fails: V.joinFailures, err: V.lastError, stats: V.stats() }));
      throw new Error(e.message + ' viewer: ' + JSON.stringify(v) + ' student: ' + JSON.stringify(await state(student)));
    });
    const media = Date.now() - back;
    log('timing offline-10s: live again', live, 'ms after the network returned; viewer video advancing after', media, 'ms');
    await cdp.detach();
  }, 70000);

  await step('a reload while live goes live again with the same identity', async () => {
    const before = await state(student);
    await student.reload();
    await until('student live after reload', async () => (await state(student)).state === 'live', 20000, 100);
    const after = await state(student);
    check(after.userid === before.userid, 'userid changed across reload: ' + before.userid + ' -> ' + after.userid);
    await until('viewer receiving after reload', () => videoAdvancing(viewer2), 30000);
  }, 60000);

  await step('hidden page on return shows the warning', async () => {
    await student.evaluate(() => {
      // Headless pages are always visible: pretend the student switched apps.
      const real = Object.getOwnPropertyDescriptor(Document.prototype, 'visibilityState');
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
      Object.defineProperty(document, 'visibilityState', real);
      delete document.visibilityState;
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await until('warning shown', () => student.isVisible('#hidden-warning'), 5000);
    await student.click('#hidden-ok');
    check(!(await student.isVisible('#hidden-warning')), 'warning dismissed');
  });

  await step('stop ends the stream', async () => {
    const ended = await viewer2.evaluate(() => V.ended);
    await viewer2.evaluate(() => {
      V.rejoin = false;
      V.left = 0;
    });
    await student.click('#stop');
    // The stock monitor blanks the tile on onstreamended or onleave.
    await until('viewer sees the stream end', () => viewer2.evaluate((n) => (V.ended > n || V.left > 0) && !V.video, ended)).catch(async (e) => {
      const v = await viewer2.evaluate(() => ({ ended: V.ended, left: V.left, offline: V.offline, video: !!V.video, streams: V.streams, joins: V.joins }));
      throw new Error(e.message + ' viewer: ' + JSON.stringify(v));
    });
    const s = await state(student);
    check(s.state === 'idle', 'state after stop ' + s.state);
    const live = await student.evaluate(() => {
      const v = document.getElementById('preview');
      return !!v.srcObject;
    });
    check(!live, 'camera still attached after Stop');
  });

  proxy.close();
  log('PASS', steps.length, 'steps');
}

main()
  .then(async () => {
    if (browserCtx) await withTimeout(browserCtx.close(), 10000, 'browser close').catch(() => {});
    cleanup();
    process.exit(0);
  })
  .catch(async (e) => {
    log('FAIL:', e && e.stack ? e.stack : e);
    if (browserCtx) await withTimeout(browserCtx.close(), 10000, 'browser close').catch(() => {});
    cleanup();
    process.exit(1);
  });
