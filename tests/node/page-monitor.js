// The student page watched by our own monitor engine: `rtcproctor monitor
// --headless` (embedded server, JSON lines on stdout, commands on stdin)
// and the page served by that server, in headless Chromium with a fake
// camera. Decoded frames, chat and attention both ways, enlarge -> larger
// picture, Stop -> the student leaves.
//
//   node page-monitor.js --bin target/debug/rtcproctor [--vp8]
//
// --y4m FILE --shots DIR: the fake camera plays FILE (a .y4m of the
// synthetic student's pattern, made by the Rust test) and the monitor saves
// snapshots of what it decoded to DIR: live.png, later.png (a second later)
// and large.png (enlarged); the Rust test reads the pattern's marks in them.
//
// --vp8: the browser offers VP8 only (H.264 removed with setCodecPreferences
// before every offer), as a browser without H.264 would; the monitor must
// decode VP8 and follow the resolution change.
//
// Exits 0 when every step passed, 1 otherwise.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const NODE_DIR = process.env.RTCPROCTOR_NODE_DIR;
if (!NODE_DIR || !fs.existsSync(path.join(NODE_DIR, 'node_modules', 'playwright-core'))) {
  console.error('page-monitor: playwright-core missing; run scripts/setup --test and set RTCPROCTOR_NODE_DIR');
  process.exit(3);
}
const { chromium } = require(path.join(NODE_DIR, 'node_modules', 'playwright-core'));
const argv = process.argv.slice(2);
const BIN = argv.includes('--bin') ? argv[argv.indexOf('--bin') + 1] : '';
const VP8_ONLY = argv.includes('--vp8');
const argOf = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : '');
const Y4M = argOf('--y4m');
const SHOTS = argOf('--shots');

const log = (...a) => console.log('[page-monitor]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}
async function until(what, fn, ms = 20000, every = 150) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    last = await fn();
    if (last) return last;
    await sleep(every);
  }
  throw new Error('timed out after ' + ms + ' ms waiting for ' + what);
}

let monitor = null;
let ctx = null;
let profile = null;
function cleanup() {
  if (monitor && monitor.exitCode === null) monitor.kill('SIGKILL');
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
}
process.on('exit', cleanup);
setTimeout(() => {
  log('FAIL: overall timeout');
  cleanup();
  process.exit(1);
}, 150000).unref();

async function main() {
  check(BIN && fs.existsSync(BIN), '--bin PATH to the rtcproctor binary');
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rtcp-pagemon-'));
  const code = 'mon-' + Math.random().toString(36).slice(2, 10);
  const roster = path.join(profile, 'roster.tsv');
  fs.writeFileSync(roster, 'm1\t' + code + '\n');

  monitor = spawn(BIN, ['monitor', '--headless', '--http', '--bind', '127.0.0.1:0', '--roster', roster], {
    stdio: ['pipe', 'pipe', 'pipe'],
    // The session record goes to the test's folder, not the user's.
    env: Object.assign({}, process.env, { RTCPROCTOR_DATA_DIR: profile }),
  });
  const events = [];
  readline.createInterface({ input: monitor.stdout }).on('line', (l) => {
    try {
      events.push(JSON.parse(l));
    } catch (e) {
      /* not JSON */
    }
  });
  let link = null;
  readline.createInterface({ input: monitor.stderr }).on('line', (l) => {
    const m = /student link:\s*(\S+)/.exec(l);
    if (m) link = m[1];
    if (process.env.PAGE_E2E_VERBOSE) log('monitor:', l);
  });
  const command = (obj) => monitor.stdin.write(JSON.stringify(obj) + '\n');
  const seen = (pred) => events.find(pred);

  await until('student link from the monitor', () => link, 30000);
  const origin = new URL(link).origin;
  log('monitor serves', origin);

  ctx = await chromium.launchPersistentContext(profile + '/chrome', {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required',
    ].concat(Y4M ? ['--use-file-for-fake-video-capture=' + Y4M] : []),
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('pageerror', (e) => log('page error:', e.message));
  const data = () => page.evaluate(() => ({ ...document.body.dataset }));

  if (VP8_ONLY) {
    await page.addInitScript(() => {
      const createOffer = RTCPeerConnection.prototype.createOffer;
      RTCPeerConnection.prototype.createOffer = function (...args) {
        const vp8 = RTCRtpSender.getCapabilities('video').codecs.filter((c) => !/h264/i.test(c.mimeType));
        for (const t of this.getTransceivers()) {
          if (t.sender && t.sender.track && t.sender.track.kind === 'video') t.setCodecPreferences(vp8);
        }
        return createOffer.apply(this, args);
      };
    });
  }
  await page.goto(origin + '/#' + code);
  await page.click('#golive');
  await until('page live', async () => (await data()).state === 'live');
  const st = await until('decoded frames at the monitor', () =>
    seen((e) => e.event === 'stats' && e.student === 'm1' && e.stats.fps_decoded > 0)
  , 30000);
  check(st.stats.codec === (VP8_ONLY ? 'VP8' : 'H264'), 'codec ' + st.stats.codec);
  log('ok monitor decodes the page:', st.stats.codec, st.stats.width + 'x' + st.stats.height, st.stats.fps_decoded + ' fps');
  await until('page counts the monitor', async () => (await data()).watchers === '1');
  // What the monitor decoded, saved for the Rust test to read the marks.
  const snapshot = async (name) => {
    const file = path.join(SHOTS, name);
    const before = events.length;
    command({ cmd: 'snapshot', student: 'm1', path: file });
    await until('snapshot ' + name, () => events.slice(before).find((e) => e.event === 'snapshot' && e.path === file));
    log('snapshot', file);
  };
  if (SHOTS) {
    await snapshot('live.png');
    await sleep(1200);
    await snapshot('later.png');
  }

  command({ cmd: 'chat', student: 'm1', text: 'monitor says hi' });
  await until('chat at the page', () =>
    page.evaluate(() => Array.from(document.querySelectorAll('#log li.proctor .text')).some((e) => e.textContent === 'monitor says hi'))
  );
  await page.fill('#msg', 'student answers');
  await page.press('#msg', 'Enter');
  await until('chat at the monitor', () => seen((e) => e.event === 'chat' && e.from === 'student' && e.text === 'student answers'));
  log('ok chat both ways');

  await page.click('#attention');
  await until('attention at the monitor', () => seen((e) => e.event === 'attention' && e.from === 'student' && e.raised));
  command({ cmd: 'ack', student: 'm1' });
  await until('acknowledgement at the page', async () => !!(await data()).attnAck);
  command({ cmd: 'attention', student: 'm1' });
  await until('alert at the page', async () => {
    const d = await data();
    return d.alerts === '1' && Number(d.beeps) >= 1;
  });
  await page.click('#ack');
  log('ok attention both ways');

  command({ cmd: 'enlarge', student: 'm1' });
  await until('page asked for high', async () => (await data()).quality === 'high');
  const big = await until('bigger frames at the monitor', () => {
    const s = events.filter((e) => e.event === 'stats' && e.student === 'm1').pop();
    return s && s.stats.width >= 600 ? s : false;
  }, 20000);
  if (SHOTS) {
    // A frame decoded at the large size (stats can run ahead of the frame slot).
    await sleep(1000);
    await snapshot('large.png');
  }
  command({ cmd: 'enlarge', student: null });
  await until('page back to low', async () => (await data()).quality === 'low');
  log('ok enlarge: monitor got', big.stats.width + 'x' + big.stats.height);

  const before = events.length;
  await page.click('#stop');
  await until('monitor sees the student leave', () =>
    events.slice(before).find((e) => e.event === 'state' && e.student === 'm1' && ['left', 'off_air'].includes(e.state))
  );
  log('ok stop: the monitor saw the student leave');

  command({ cmd: 'quit' });
  await until('monitor exits', () => monitor.exitCode !== null, 10000);
  check(monitor.exitCode === 0, 'monitor exit status ' + monitor.exitCode);
  log('PASS');
}

main()
  .then(async () => {
    if (ctx) await ctx.close().catch(() => {});
    cleanup();
    process.exit(0);
  })
  .catch(async (e) => {
    log('FAIL:', e && e.stack ? e.stack : e);
    if (ctx) await ctx.close().catch(() => {});
    cleanup();
    process.exit(1);
  });
