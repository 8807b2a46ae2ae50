// The student page (headless Chromium, fake camera) watched by our headless
// monitor through a separate `rtcproctor serve`, which is killed (SIGKILL)
// mid-exam and started again on the same port: the page and the monitor
// must find each other again by themselves, with pictures and chat both
// ways. Prints a FAULTS line with the recovery times (for BENCHMARKS.md).
//
//   node page-faults.js --bin target/debug/rtcproctor
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
  console.error('page-faults: playwright-core missing; run scripts/setup --test and set RTCPROCTOR_NODE_DIR');
  process.exit(3);
}
const { chromium } = require(path.join(NODE_DIR, 'node_modules', 'playwright-core'));
const argv = process.argv.slice(2);
const BIN = argv.includes('--bin') ? argv[argv.indexOf('--bin') + 1] : '';
const KEY = 'page-faults-key';

const log = (...a) => console.log('[page-faults]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}
async function until(what, fn, ms = 20000, every = 100) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < ms) {
    last = await fn();
    if (last) return last;
    await sleep(every);
  }
  throw new Error('timed out after ' + ms + ' ms waiting for ' + what);
}

const children = [];
let ctx = null;
let profile = null;
function cleanup() {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
}
process.on('exit', cleanup);
setTimeout(() => {
  log('FAIL: overall timeout');
  cleanup();
  process.exit(1);
}, 150000).unref();

/// `rtcproctor serve` on `bind`; resolves with the child and its base URL.
async function serve(bind) {
  const child = spawn(BIN, ['serve', '--http', '--bind', bind, '--proctor-key', KEY], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let base = null;
  readline.createInterface({ input: child.stdout }).on('line', (l) => {
    const m = /student page:\s*(\S+)/.exec(l);
    if (m) base = m[1];
  });
  child.stderr.resume();
  await until('the server to start', () => base, 20000);
  return { child, base };
}

async function main() {
  check(BIN && fs.existsSync(BIN), '--bin PATH to the rtcproctor binary');
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rtcp-pagefaults-'));
  const code = 'pf-' + Math.random().toString(36).slice(2, 10);
  const roster = path.join(profile, 'roster.tsv');
  fs.writeFileSync(roster, 'p1\t' + code + '\n');

  let server = await serve('127.0.0.1:0');
  const base = server.base;
  const port = new URL(base).port;
  log('server on', base);

  const monitor = spawn(BIN, ['monitor', '--headless', '--server', base, '--proctor-key', KEY, '--roster', roster], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: Object.assign({}, process.env, { RTCPROCTOR_DATA_DIR: profile }),
  });
  children.push(monitor);
  monitor.stderr.resume();
  const events = [];
  readline.createInterface({ input: monitor.stdout }).on('line', (l) => {
    try {
      const e = JSON.parse(l);
      e.at_ms = Date.now();
      events.push(e);
    } catch (e) {
      /* not JSON */
    }
  });
  const command = (obj) => monitor.stdin.write(JSON.stringify(obj) + '\n');
  const after = (t, pred) => events.find((e) => e.at_ms >= t && pred(e));

  ctx = await chromium.launchPersistentContext(profile + '/chrome', {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('pageerror', (e) => log('page error:', e.message));
  const data = () => page.evaluate(() => ({ ...document.body.dataset }));
  const decoded = (t) => after(t, (e) => e.event === 'stats' && e.student === 'p1' && e.stats.fps_decoded > 0);

  await page.goto(base + '#' + code);
  await page.click('#golive');
  await until('page live', async () => (await data()).state === 'live');
  await until('decoded frames at the monitor', () => decoded(0), 30000);
  log('ok monitor decodes the page');

  // Kill the server mid-exam; start it again on the same port.
  server.child.kill('SIGKILL');
  const killed = Date.now();
  await until('the monitor to see the student go', () =>
    after(killed, (e) => e.event === 'state' && e.student === 'p1' && e.state !== 'live')
  );
  await sleep(2000);
  server = await serve('127.0.0.1:' + port);
  const restarted = Date.now();
  await until('the student live again at the monitor', () =>
    after(restarted, (e) => e.event === 'state' && e.student === 'p1' && e.state === 'live')
  , 60000);
  const liveS = (Date.now() - restarted) / 1000;
  const backLive = Date.now();
  await until('decoded frames again', () => decoded(backLive), 20000);
  const picturesS = (Date.now() - restarted) / 1000;
  log('ok live again', liveS, 's after the restart');

  command({ cmd: 'chat', student: 'p1', text: 'still with you' });
  await until('chat at the page', () =>
    page.evaluate(() => Array.from(document.querySelectorAll('#log li.proctor .text')).some((e) => e.textContent === 'still with you'))
  );
  await page.fill('#msg', 'me too');
  await page.press('#msg', 'Enter');
  await until('chat at the monitor', () => after(restarted, (e) => e.event === 'chat' && e.from === 'student' && e.text === 'me too'));
  const chatS = (Date.now() - restarted) / 1000;
  log('ok chat both ways after the restart');
  console.log(
    `FAULTS page-server-restart live_s=${liveS.toFixed(2)} pictures_s=${picturesS.toFixed(2)} chat_both_ways_s=${chatS.toFixed(2)}`
  );

  command({ cmd: 'quit' });
  await until('monitor exits', () => monitor.exitCode !== null, 10000);
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
