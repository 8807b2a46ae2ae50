// Headless Chromium running the stock RTCMultiConnection 3.7.1 library,
// configured as RTCProctor's monitor page configures it (protocol notes §3, §5),
// joins one stream code and reports what its <video> element shows.
//
// usage: node rtcmc_monitor.js SERVER_URL CODE SECONDS
//   env RTCPROCTOR_NODE_DIR: where scripts/setup --test installed the packages
// Prints one JSON line: {joined, error, videoWidth, videoHeight, framesEarly,
// framesLate, audio {packetsReceived, totalSamplesReceived, concealedSamples,
// maxAudioLevel, totalAudioEnergy},
// width, height, rgba (base64 of a captured frame)}.
// Exits 0 when it printed a report, 1 on a setup failure.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const nodeDir = process.env.RTCPROCTOR_NODE_DIR;
if (!nodeDir) { console.error('RTCPROCTOR_NODE_DIR is not set'); process.exit(1); }
const { chromium } = require(path.join(nodeDir, 'node_modules', 'playwright-core'));
const [server, code, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg || 20);
const libJs = fs.readFileSync(path.join(nodeDir, 'rtcmc/package/dist/RTCMultiConnection.js'), 'utf8');
// The exact socket.io client RTCProctor ships (v3.0.4).
const ioJs = fs.readFileSync(path.join(nodeDir, 'node_modules/socket.io-client/dist/socket.io.js'), 'utf8');

// The page is served on the signalling server's own origin (intercepted by
// Playwright), as RTCProctor deployments serve pages next to the server, so
// socket.io polling needs no CORS.
const page_html = `<!doctype html><html><body>
<div id="box"></div>
<script src="/rtcproctor-test/socket.io.js"></script>
<script src="/rtcproctor-test/RTCMultiConnection.js"></script>
<script>
  var connection = new RTCMultiConnection();
  connection.socketURL = ${JSON.stringify(server)};
  connection.socketMessageEvent = 'rtc-video-proctoring';
  connection.session = { audio: true, video: true, oneway: true };
  connection.iceServers = [];
  connection.videosContainer = document.getElementById('box');
  connection.sdpConstraints.mandatory = { OfferToReceiveAudio: true, OfferToReceiveVideo: true };
  window.report = { joined: null, error: null, streams: 0 };
  connection.onstream = function (event) {
    window.report.streams++;
    var v = event.mediaElement;
    v.muted = true;
    v.id = 'remote';
    document.getElementById('box').appendChild(v);
    v.play().catch(function () {});
  };
  connection.join(${JSON.stringify(code)}, function (isJoined, roomid, error) {
    window.report.joined = isJoined;
    window.report.error = error || null;
  });
</script></body></html>`;

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rtcproctor-chromium-'));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium', headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
        // Unmuting the tile (for the audio level) needs no click.
        '--autoplay-policy=no-user-gesture-required',
        // Keep WebRTC on loopback: gather 127.0.0.1 candidates, no mDNS names.
        '--allow-loopback-in-peer-connection',
        '--disable-features=WebRtcHideLocalIpsWithMdns'],
    });
    const page = ctx.pages()[0] || await ctx.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(m.text()));
    await page.route('**/rtcproctor-test/**', (route) => {
      const url = route.request().url();
      if (url.endsWith('/monitor.html')) return route.fulfill({ contentType: 'text/html', body: page_html });
      if (url.endsWith('/socket.io.js')) return route.fulfill({ contentType: 'application/javascript', body: ioJs });
      if (url.endsWith('/RTCMultiConnection.js')) return route.fulfill({ contentType: 'application/javascript', body: libJs });
      return route.fulfill({ status: 404, body: 'not found' });
    });
    await page.goto(new URL('rtcproctor-test/monitor.html', server).toString());
    const deadline = Date.now() + seconds * 1000;
    const state = () => page.evaluate(() => {
      const v = document.getElementById('remote');
      const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
      return Object.assign({}, window.report, {
        videoWidth: v ? v.videoWidth : 0, videoHeight: v ? v.videoHeight : 0,
        frames: q ? q.totalVideoFrames : 0,
      });
    });
    let s = await state();
    while (Date.now() < deadline && !(s.videoWidth > 0 && s.frames > 0) && s.joined !== false) {
      await new Promise((r) => setTimeout(r, 200));
      s = await state();
    }
    const framesEarly = s.frames;
    await new Promise((r) => setTimeout(r, 2000));
    const late = await state();
    // Audio: whether Chromium's Opus decoder accepts the student's packets
    // (concealed samples are what it had to invent instead).
    // maxAudioLevel: the loudest `audioLevel` seen over 1.5 s of samples
    // (a toned student beeps 400 ms every second). Chromium measures the
    // level after the element's volume, so the tile is unmuted first, as
    // RTCProctor's "Turn Audio On" button does.
    const audio = await page.evaluate(async () => {
      const v = document.getElementById('remote');
      if (v) { v.muted = false; v.play().catch(function () {}); }
      await new Promise((r) => setTimeout(r, 500));
      const out = { packetsReceived: 0, totalSamplesReceived: 0, concealedSamples: 0,
        maxAudioLevel: 0, totalAudioEnergy: 0 };
      for (let i = 0; i < 15; i++) {
        const now = { packetsReceived: 0, totalSamplesReceived: 0, concealedSamples: 0, totalAudioEnergy: 0 };
        for (const id of Object.keys(connection.peers)) {
          const pc = connection.peers[id] && connection.peers[id].peer;
          if (!pc || !pc.getStats) continue;
          (await pc.getStats()).forEach((r) => {
            if (r.type === 'inbound-rtp' && r.kind === 'audio') {
              now.packetsReceived += r.packetsReceived || 0;
              now.totalSamplesReceived += r.totalSamplesReceived || 0;
              now.concealedSamples += r.concealedSamples || 0;
              now.totalAudioEnergy += r.totalAudioEnergy || 0;
              out.maxAudioLevel = Math.max(out.maxAudioLevel, r.audioLevel || 0);
            }
          });
        }
        Object.assign(out, now);
        await new Promise((r) => setTimeout(r, 100));
      }
      return out;
    });
    // One frame as RGBA, at the video's own size, for the caller to read the marks.
    const frame = await page.evaluate(() => {
      const v = document.getElementById('remote');
      if (!v || !v.videoWidth) return null;
      const c = document.createElement('canvas');
      c.width = v.videoWidth; c.height = v.videoHeight;
      const g = c.getContext('2d');
      g.drawImage(v, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let bin = '';
      for (let i = 0; i < d.length; i += 0x8000) bin += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
      return { width: c.width, height: c.height, rgba: btoa(bin) };
    });
    console.log(JSON.stringify(Object.assign({
      joined: late.joined, error: late.error, streams: late.streams,
      videoWidth: late.videoWidth, videoHeight: late.videoHeight,
      framesEarly, framesLate: late.frames, audio,
      logs: late.videoWidth ? [] : logs.slice(-30),
    }, frame || {})));
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
