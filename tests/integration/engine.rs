//! The monitor engine: a two-peer WebRTC loopback (no server), then the
//! whole engine against a real signalling server with a fixture student.
//!
//! The fixture student encodes a picture whose top half carries the frame
//! number as 16 black/white bars; the tests read the number back from the
//! engine's decoded thumbnail, so "a frame arrived" is never enough.

// Test fixtures: a failed step should panic right there.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtcproctor::media::{DecodePool, FrameSink, MediaConfig, MediaSession, SessionEvent};
use rtcproctor::proctor::{
    EngineCommand, EngineConfig, EngineEvent, EngineHandle, Frame, FrameSlots, Party, StreamState,
    StudentId, Timing, engine,
};
use rtcproctor::roster::Roster;
use rtcproctor::signal::client::{ClientConfig, ClientEvent, ClientTls, SignalClient};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::timeout;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
};

const W: usize = 320;
const H: usize = 240;
const BARS: usize = 16;

// ---------------------------------------------------------------------------
// The picture pattern.

/// I420 picture of frame `n`: top half 16 bars (bit i of n, MSB left),
/// bottom half mid grey.
fn pattern(n: u32) -> Vec<u8> {
    let mut yuv = vec![128u8; W * H * 3 / 2];
    for y in 0..H / 2 {
        for x in 0..W {
            let bit = BARS - 1 - x * BARS / W;
            yuv[y * W + x] = if n >> bit & 1 == 1 { 235 } else { 16 };
        }
    }
    yuv
}

/// The frame number a decoded RGB picture carries.
fn read_counter(f: &Frame) -> u32 {
    let (w, h) = (f.width as usize, f.height as usize);
    let y = h / 4;
    let mut n = 0;
    for i in 0..BARS {
        let x = (2 * i + 1) * w / (2 * BARS);
        let v = f.rgb[(y * w + x) * 3];
        n = n << 1 | u32::from(v > 128);
    }
    n
}

// ---------------------------------------------------------------------------
// A publishing peer: H.264 from openh264, like the student page.

struct OffererHandler {
    candidates: mpsc::UnboundedSender<RTCIceCandidateInit>,
    connected: mpsc::UnboundedSender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for OffererHandler {
    async fn on_ice_candidate(&self, e: RTCPeerConnectionIceEvent) {
        if let Ok(c) = e.candidate.to_json() {
            let _ = self.candidates.send(c);
        }
    }
    async fn on_connection_state_change(&self, s: RTCPeerConnectionState) {
        let _ = self.connected.send(s);
    }
}

/// What the fixture publisher sends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Video {
    /// H.264 (openh264), the only video codec in the offer.
    H264,
    /// VP8 (libvpx), the only video codec in the offer.
    Vp8Only,
}

/// A minimal libvpx VP8 encoder for the VP8-only publisher.
struct Vp8Encoder {
    ctx: Box<vpx_sys::vpx_codec_ctx_t>,
}

impl Vp8Encoder {
    fn new(fps: u32) -> Self {
        unsafe {
            let iface = vpx_sys::vpx_codec_vp8_cx();
            let mut cfg = std::mem::MaybeUninit::<vpx_sys::vpx_codec_enc_cfg_t>::uninit();
            assert_eq!(
                vpx_sys::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0),
                vpx_sys::VPX_CODEC_OK
            );
            let mut cfg = cfg.assume_init();
            cfg.g_w = W as u32;
            cfg.g_h = H as u32;
            cfg.g_timebase = vpx_sys::vpx_rational {
                num: 1,
                den: fps as i32,
            };
            cfg.rc_target_bitrate = 400;
            cfg.g_lag_in_frames = 0;
            let mut ctx: Box<vpx_sys::vpx_codec_ctx_t> = Box::new(std::mem::zeroed());
            assert_eq!(
                vpx_sys::vpx_codec_enc_init_ver(
                    &mut *ctx,
                    iface,
                    &cfg,
                    0,
                    vpx_sys::VPX_ENCODER_ABI_VERSION as i32
                ),
                vpx_sys::VPX_CODEC_OK
            );
            Vp8Encoder { ctx }
        }
    }

    fn encode(&mut self, yuv: &mut [u8], pts: i64, key: bool) -> Vec<u8> {
        let mut out = Vec::new();
        unsafe {
            let mut img = std::mem::MaybeUninit::<vpx_sys::vpx_image_t>::uninit();
            let img = vpx_sys::vpx_img_wrap(
                img.as_mut_ptr(),
                vpx_sys::vpx_img_fmt::VPX_IMG_FMT_I420,
                W as u32,
                H as u32,
                1,
                yuv.as_mut_ptr(),
            );
            let flags = if key {
                vpx_sys::VPX_EFLAG_FORCE_KF as i64
            } else {
                0
            };
            let err = vpx_sys::vpx_codec_encode(
                &mut *self.ctx,
                img,
                pts,
                1,
                flags,
                vpx_sys::VPX_DL_REALTIME as u64,
            );
            assert_eq!(err, vpx_sys::VPX_CODEC_OK);
            let mut iter: vpx_sys::vpx_codec_iter_t = std::ptr::null();
            loop {
                let pkt = vpx_sys::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                if pkt.is_null() {
                    break;
                }
                if (*pkt).kind == vpx_sys::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    let f = (*pkt).data.frame;
                    out.extend_from_slice(std::slice::from_raw_parts(
                        f.buf as *const u8,
                        f.sz as usize,
                    ));
                }
            }
        }
        out
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        unsafe {
            vpx_sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

struct Publisher {
    pc: Arc<dyn PeerConnection>,
    candidates: mpsc::UnboundedReceiver<RTCIceCandidateInit>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// While set, no frames are sent (the stream stalls).
    paused: Arc<std::sync::atomic::AtomicBool>,
}

impl Publisher {
    /// A peer offering one video track; returns it and its offer SDP.
    async fn offer(fps: u32, video: Video) -> (Publisher, String) {
        let mut me = MediaEngine::default();
        me.register_default_codecs().unwrap();
        let (ctx, crx) = mpsc::unbounded_channel();
        let (stx, _srx) = mpsc::unbounded_channel();
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(me)
            .with_handler(Arc::new(OffererHandler {
                candidates: ctx,
                connected: stx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .unwrap();
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let codec = match video {
            Video::H264 => rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
                mime_type: "video/H264".into(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line:
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".into(),
                rtcp_feedback: vec![],
            },
            // The offer lists only the track's codec: a VP8-only offer.
            Video::Vp8Only => rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
                mime_type: "video/VP8".into(),
                clock_rate: 90_000,
                ..Default::default()
            },
        };
        let ssrc: u32 = rand::random();
        let track = Arc::new(
            TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    "stream".into(),
                    "video".into(),
                    "video".into(),
                    rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video,
                    vec![rtc::rtp_transceiver::rtp_sender::RTCRtpEncodingParameters {
                        rtp_coding_parameters:
                            rtc::rtp_transceiver::rtp_sender::RTCRtpCodingParameters {
                                ssrc: Some(ssrc),
                                ..Default::default()
                            },
                        codec,
                        ..Default::default()
                    }],
                ),
            )
            .unwrap(),
        );
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .unwrap();
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer).await.unwrap();
        let sdp = pc.local_description().await.unwrap().sdp;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Encode on a plain thread (the encoder is not async), write on the runtime.
        let handle = tokio::runtime::Handle::current();
        let stop2 = Arc::clone(&stop);
        let paused2 = Arc::clone(&paused);
        std::thread::spawn(move || {
            let pt = loop {
                let params = handle.block_on(sender.get_parameters());
                if let Some(pt) = params
                    .ok()
                    .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type))
                {
                    break pt;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let mut h264 = openh264::encoder::Encoder::new().unwrap();
            let mut vp8 = (video == Video::Vp8Only).then(|| Vp8Encoder::new(fps));
            let frame_time = Duration::from_secs(1) / fps;
            let mut n = 0u32;
            let mut next = Instant::now();
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                next += frame_time;
                if paused2.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    continue;
                }
                n += 1;
                let key = n.is_multiple_of(fps * 2);
                let au = match vp8.as_mut() {
                    Some(enc) => enc.encode(&mut pattern(n), n as i64, key || n == 1),
                    None => {
                        if key {
                            h264.force_intra_frame();
                        }
                        let buf = openh264::formats::YUVBuffer::from_vec(pattern(n), W, H);
                        h264.encode(&buf).unwrap().to_vec()
                    }
                };
                let sample = rtc::media::Sample {
                    data: au.into(),
                    duration: frame_time,
                    ..rtc::media::Sample::new(Instant::now())
                };
                let _ = handle.block_on(track.sample_writer(ssrc, pt).write_sample(&sample));
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        (
            Publisher {
                pc,
                candidates: crx,
                stop,
                paused,
            },
            sdp,
        )
    }

    async fn set_answer(&self, sdp: &str) {
        let answer = RTCSessionDescription::answer(sdp.to_string()).unwrap();
        self.pc.set_remote_description(answer).await.unwrap();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let pc = Arc::clone(&self.pc);
        tokio::spawn(async move {
            let _ = pc.close().await;
        });
    }
}

/// Wait for a frame of `student` whose counter is above `above`.
async fn counter_above(slots: &FrameSlots, student: &StudentId, above: u32) -> u32 {
    loop {
        if let Some(f) = slots.latest(student) {
            let n = read_counter(&f);
            if n > above && n < 10_000 {
                return n;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Answer `publisher`'s offer with a session and trickle until `slots`
/// show a counted frame; returns the session and the first counter.
async fn connect_loopback(
    video: Video,
) -> (
    Publisher,
    MediaSession,
    FrameSlots,
    StudentId,
    mpsc::Receiver<EngineEvent>,
    u32,
) {
    let (mut publisher, offer) = Publisher::offer(10, video).await;
    let slots = FrameSlots::default();
    let (events, events_rx) = mpsc::channel(64);
    let student = StudentId("loop".into());
    let sink = Arc::new(FrameSink::new(student.clone(), slots.clone(), events));
    let pool = DecodePool::new(1).unwrap();
    let (session, answer, mut sev) =
        MediaSession::answer(&MediaConfig::loopback(), &offer, sink, pool, true, false)
            .await
            .unwrap();
    publisher.set_answer(&answer).await;
    let s = &session;
    let first = tokio::select! {
        n = counter_above(&slots, &student, 0) => n,
        _ = async {
            loop {
                tokio::select! {
                    Some(c) = publisher.candidates.recv() => s.add_remote_candidate(c).await.unwrap(),
                    Some(ev) = sev.recv() => if let SessionEvent::LocalCandidate(c) = ev {
                        publisher.pc.add_ice_candidate(c).await.unwrap();
                    },
                }
            }
        } => unreachable!(),
    };
    (publisher, session, slots, student, events_rx, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_vp8_only_publisher_still_decodes() {
    timeout(Duration::from_secs(30), async {
        let (_publisher, session, slots, student, _ev, first) =
            connect_loopback(Video::Vp8Only).await;
        counter_above(&slots, &student, first + 3).await;
        let stats = session.take_stats();
        assert_eq!(stats.codec, "VP8");
        assert_eq!((stats.width, stats.height), (320, 240));
        session.close().await;
    })
    .await
    .expect("VP8 loopback test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_peer_decodes_the_frame_counter() {
    timeout(Duration::from_secs(30), async {
        let (_publisher, session, slots, student, mut events_rx, first) =
            connect_loopback(Video::H264).await;
        let later = counter_above(&slots, &student, first + 4).await;
        assert!(later > first);
        let f = slots.latest(&student).unwrap();
        assert_eq!((f.width, f.height), (160, 120), "thumbnail size");
        assert!(matches!(
            events_rx.recv().await,
            Some(EngineEvent::FrameReady { .. })
        ));
        let stats = session.take_stats();
        assert_eq!(stats.codec, "H264");
        assert_eq!((stats.width, stats.height), (320, 240));
        assert!(
            stats.fps_received > 0.0 && stats.bitrate_kbps > 0.0,
            "{stats:?}"
        );

        // Enlarged: full decoded size.
        session.set_full_resolution(true);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let f = slots.latest(&student).unwrap();
            if f.width == 320 {
                assert!(read_counter(&f) > later);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never switched to full resolution"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Invisible: RTP keeps arriving, nothing is decoded.
        session.set_visible(false);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = session.take_stats();
        tokio::time::sleep(Duration::from_millis(700)).await;
        let stats = session.take_stats();
        assert_eq!(stats.fps_decoded, 0.0, "{stats:?}");
        assert!(stats.fps_received > 0.0, "{stats:?}");
        let hidden_at = read_counter(&slots.latest(&student).unwrap());
        // Visible again: a keyframe is requested, pictures resume.
        session.set_visible(true);
        counter_above(&slots, &student, hidden_at + 5).await;
        session.close().await;
    })
    .await
    .expect("loopback media test timed out");
}

// ---------------------------------------------------------------------------
// Signalling servers.

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node_dir() -> std::path::PathBuf {
    std::env::var_os("RTCPROCTOR_NODE_DIR")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/node"))
}

/// The stock npm rtcmulticonnection-server@1.3.3 on a loopback port.
struct StockServer {
    child: Child,
    url: url::Url,
}

impl StockServer {
    fn start() -> StockServer {
        let dir = node_dir().join("node_modules/rtcmulticonnection-server");
        assert!(
            dir.join("server.js").exists(),
            "{} is missing: run `scripts/setup --test` (it installs the npm test packages) \
             or set RTCPROCTOR_NODE_DIR",
            dir.display()
        );
        let port = free_port();
        let child = Command::new("node")
            .arg("server.js")
            .current_dir(&dir)
            .env("IP", "127.0.0.1")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run node (install nodejs: scripts/setup --test)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the stock server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        StockServer {
            child,
            url: url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
        }
    }
}

impl Drop for StockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// A fixture student speaking the RTCMultiConnection dialect.

struct Student {
    client: SignalClient,
    /// Proctor chat/attention extras the student received.
    received: mpsc::UnboundedReceiver<Value>,
    task: tokio::task::JoinHandle<()>,
    msg_id: u64,
    /// The pause switches of this student's publishers (one per viewer).
    pause_flags: Arc<std::sync::Mutex<Vec<Arc<std::sync::atomic::AtomicBool>>>>,
}

impl Student {
    async fn go_live(url: &url::Url, code: &str) -> Student {
        let userid = format!("student-{}", rand::random::<u32>());
        let mut cfg = ClientConfig::rtcproctor(url.clone(), &userid, code);
        cfg.tls = ClientTls::InsecureLoopback;
        let (client, mut events) = SignalClient::connect(cfg).await.unwrap();
        let open = json!({
            "sessionid": code,
            "session": {"audio": true, "video": true, "oneway": true},
            "mediaConstraints": {"video": true, "audio": true},
            "sdpConstraints": {"mandatory": {"OfferToReceiveAudio": false, "OfferToReceiveVideo": false}},
            "streams": [], "extra": {}, "identifier": "", "password": "",
        });
        // Asked twice if need be: our server may drop an event sent right
        // after connecting (socketioxide installs handlers after CONNECT).
        let ack = match client
            .emit_with_ack("open-room", vec![open.clone()], Duration::from_millis(1500))
            .await
        {
            Ok(ack) => ack,
            Err(_) => client
                .emit_with_ack("open-room", vec![open], Duration::from_secs(5))
                .await
                .unwrap(),
        };
        assert_eq!(ack.first(), Some(&Value::Bool(true)), "open-room: {ack:?}");
        let (tx, received) = mpsc::unbounded_channel();
        let c = client.clone();
        let pause_flags = Arc::new(std::sync::Mutex::new(Vec::new()));
        let flags = Arc::clone(&pause_flags);
        let task = tokio::spawn(async move {
            let mut peers: Vec<(String, Publisher)> = Vec::new();
            let (cand_tx, mut cand_rx) = mpsc::unbounded_channel::<(String, RTCIceCandidateInit)>();
            loop {
                tokio::select! {
                    Some((to, cand)) = cand_rx.recv() => {
                        let m = json!({"remoteUserId": to, "sender": userid, "message": {
                            "candidate": cand.candidate, "sdpMid": cand.sdp_mid, "sdpMLineIndex": cand.sdp_mline_index}});
                        let _ = c.emit("rtc-video-proctoring", vec![m]).await;
                    }
                    ev = events.recv() => {
                        let Some(ClientEvent::Event { name, args }) = ev else { break };
                        if name == "extra-data-updated" {
                            if args.first().and_then(Value::as_str) != Some(userid.as_str()) {
                                let _ = tx.send(args.get(1).cloned().unwrap_or(Value::Null));
                            }
                            continue;
                        }
                        if name != "rtc-video-proctoring" { continue }
                        let env = &args[0];
                        let viewer = env["sender"].as_str().unwrap_or("").to_string();
                        let msg = &env["message"];
                        if msg["newParticipationRequest"] == json!(true) {
                            let (mut p, sdp) = Publisher::offer(10, Video::H264).await;
                            flags.lock().unwrap().push(Arc::clone(&p.paused));
                            let mut cands = std::mem::replace(&mut p.candidates, mpsc::unbounded_channel().1);
                            let (to, ctx) = (viewer.clone(), cand_tx.clone());
                            tokio::spawn(async move {
                                while let Some(cand) = cands.recv().await {
                                    if ctx.send((to.clone(), cand)).is_err() { break }
                                }
                            });
                            let offer = json!({"remoteUserId": viewer, "sender": userid, "message": {
                                "type": "offer", "sdp": sdp, "remotePeerSdpConstraints": {"OfferToReceiveAudio": true, "OfferToReceiveVideo": true},
                                "renegotiatingPeer": false, "connectionDescription": env, "dontGetRemoteStream": true,
                                "extra": {}, "streamsToShare": {}}});
                            c.emit("rtc-video-proctoring", vec![offer]).await.unwrap();
                            peers.push((viewer, p));
                        } else if msg["type"] == json!("answer") {
                            if let Some((_, p)) = peers.iter().find(|(v, _)| *v == viewer) {
                                p.set_answer(msg["sdp"].as_str().unwrap()).await;
                            }
                        } else if let Some(cand) = msg["candidate"].as_str() {
                            if let Some((_, p)) = peers.iter().find(|(v, _)| *v == viewer) {
                                let init = RTCIceCandidateInit {
                                    candidate: cand.to_string(),
                                    sdp_mid: msg["sdpMid"].as_str().map(str::to_string),
                                    sdp_mline_index: msg["sdpMLineIndex"].as_u64().map(|i| i as u16),
                                    ..Default::default()
                                };
                                let _ = p.pc.add_ice_candidate(init).await;
                            }
                        } else if msg["userLeft"] == json!(true) {
                            peers.retain(|(v, _)| *v != viewer);
                        }
                    }
                }
            }
        });
        Student {
            client,
            received,
            task,
            msg_id: 0,
            pause_flags,
        }
    }

    /// Stop (or resume) sending video without leaving: the stream stalls.
    fn set_paused(&self, paused: bool) {
        for f in self.pause_flags.lock().unwrap().iter() {
            f.store(paused, std::sync::atomic::Ordering::Relaxed);
        }
    }

    async fn send_extra(&mut self, message: &str, attention: &str) {
        self.msg_id += 1;
        let extra = json!({"message": message, "attention": attention, "msgId": self.msg_id});
        self.client
            .emit("extra-data-updated", vec![extra])
            .await
            .unwrap();
    }

    /// Stop like the page's Stop button: the socket closes.
    async fn stop(self) {
        self.client.close().await;
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------
// The engine end to end.

fn quick_timing() -> Timing {
    Timing {
        poll_off_air: Duration::from_millis(500),
        stall_after: Duration::from_secs(2),
        rejoin_after: Duration::from_secs(6),
        offer_timeout: Duration::from_secs(5),
        media_timeout: Duration::from_secs(10),
        ack_timeout: Duration::from_secs(5),
        stats_every: Duration::from_millis(500),
    }
}

fn start_engine(url: &url::Url, key: Option<&str>, roster: &str) -> EngineHandle {
    let mut cfg = EngineConfig::new(url.clone());
    cfg.proctor_key = key.map(str::to_string);
    cfg.timing = quick_timing();
    cfg.decode_workers = 1;
    engine::start(Roster::parse(roster).unwrap(), cfg).unwrap()
}

/// Next event matching `pred`, skipping others.
async fn wait_for(
    engine: &mut EngineHandle,
    what: &str,
    pred: impl Fn(&EngineEvent) -> bool,
) -> EngineEvent {
    // Generous: a synthetic student whose first open-room is lost retries
    // after its 10 s ack timeout.
    let r = timeout(Duration::from_secs(40), async {
        loop {
            match engine.events.recv().await {
                Some(e) if pred(&e) => return e,
                Some(_) => {}
                None => panic!("engine stopped while waiting for {what}"),
            }
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn is_state(e: &EngineEvent, who: &str, s: StreamState) -> bool {
    matches!(e, EngineEvent::State { student, state, .. } if student.0 == who && *state == s)
}

async fn engine_end_to_end(url: url::Url, key: Option<&str>) {
    let mut engine = start_engine(&url, key, "s1\tcode-one\ns2\tcode-two\n");
    let s1 = StudentId("s1".into());
    // Nobody is live yet: both off-air.
    wait_for(&mut engine, "s2 off-air", |e| {
        is_state(e, "s2", StreamState::OffAir)
    })
    .await;

    // s1 goes live after the engine started: picked up by the off-air poll.
    let mut student = Student::go_live(&url, "code-one").await;
    wait_for(&mut engine, "s1 live", |e| {
        is_state(e, "s1", StreamState::Live)
    })
    .await;
    let n = timeout(
        Duration::from_secs(10),
        counter_above(&engine.frames, &s1, 0),
    )
    .await
    .expect("no decoded frame with a counter");
    timeout(
        Duration::from_secs(10),
        counter_above(&engine.frames, &s1, n + 3),
    )
    .await
    .expect("the counter does not advance");
    let stats = wait_for(&mut engine, "s1 stats", |e| {
        matches!(e, EngineEvent::Stats { student, stats } if student.0 == "s1" && stats.fps_decoded > 0.0)
    })
    .await;
    if let EngineEvent::Stats { stats, .. } = stats {
        assert_eq!(stats.codec, "H264");
        assert_eq!((stats.width, stats.height), (320, 240));
    }

    // Chat and attention from the student.
    student.send_extra("hello <b>proctor</b>", "").await;
    let chat = wait_for(&mut engine, "student chat", |e| {
        matches!(e, EngineEvent::Chat { .. })
    })
    .await;
    assert!(
        matches!(&chat, EngineEvent::Chat { from: Party::Student, text, .. } if text == "hello proctor"),
        "{chat:?}"
    );
    student.send_extra("", "Attn Request: 10:00:00").await;
    wait_for(&mut engine, "student attention", |e| {
        matches!(
            e,
            EngineEvent::Attention {
                from: Party::Student,
                raised: true,
                ..
            }
        )
    })
    .await;

    // Chat and attention from the proctor reach the student page.
    let send = |c| engine.commands.send(c);
    send(EngineCommand::SendChat {
        student: s1.clone(),
        text: "eyes on the screen".into(),
    })
    .await
    .unwrap();
    send(EngineCommand::AckAttention {
        student: s1.clone(),
    })
    .await
    .unwrap();
    send(EngineCommand::RaiseAttention {
        student: s1.clone(),
    })
    .await
    .unwrap();
    let mut got_chat = false;
    let mut got_ack = false;
    let mut got_attention = false;
    timeout(Duration::from_secs(10), async {
        while !(got_chat && got_ack && got_attention) {
            let extra = student
                .received
                .recv()
                .await
                .expect("student socket closed");
            got_chat |= extra["message"] == json!("eyes on the screen");
            got_ack |= extra["attentionAck"] == json!(2);
            got_attention |= extra["attention"]
                .as_str()
                .is_some_and(|a| a.contains("attention"));
        }
    })
    .await
    .expect("proctor chat/attention did not reach the student");

    // Snapshot to PNG.
    let dir = std::env::temp_dir().join(format!("rtcproctor-snap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s1.png");
    send(EngineCommand::Snapshot {
        student: s1.clone(),
        path: path.clone(),
    })
    .await
    .unwrap();
    wait_for(&mut engine, "snapshot", |e| {
        matches!(e, EngineEvent::Snapshot { .. })
    })
    .await;
    let png = image::open(&path).expect("snapshot is a PNG").to_rgb8();
    assert!(png.width() > 0 && png.height() > 0);
    let _ = std::fs::remove_dir_all(&dir);

    // The camera freezes (no RTP, socket still up): stalled, then live again.
    student.set_paused(true);
    wait_for(&mut engine, "s1 stalled", |e| {
        is_state(e, "s1", StreamState::Stalled)
    })
    .await;
    student.set_paused(false);
    wait_for(&mut engine, "s1 live after the stall", |e| {
        is_state(e, "s1", StreamState::Live)
    })
    .await;

    // The student stops: left, and the frame slot is cleared.
    student.stop().await;
    wait_for(&mut engine, "s1 left", |e| {
        is_state(e, "s1", StreamState::Left) || is_state(e, "s1", StreamState::Reconnecting)
    })
    .await;

    // And goes live again: picked up by itself.
    let student = Student::go_live(&url, "code-one").await;
    wait_for(&mut engine, "s1 live again", |e| {
        is_state(e, "s1", StreamState::Live)
    })
    .await;
    timeout(
        Duration::from_secs(10),
        counter_above(&engine.frames, &s1, 0),
    )
    .await
    .expect("no frame after rejoining");
    engine.commands.send(EngineCommand::Shutdown).await.unwrap();
    timeout(Duration::from_secs(10), async {
        while engine.events.recv().await.is_some() {}
    })
    .await
    .expect("engine did not stop");
    student.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_watches_a_student_through_the_stock_server() {
    let server = StockServer::start();
    timeout(
        Duration::from_secs(120),
        engine_end_to_end(server.url.clone(), None),
    )
    .await
    .expect("end-to-end test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_watches_a_student_through_our_server() {
    use rtcproctor::signal::server::{ServerConfig, start};
    let server = start(ServerConfig::loopback()).await.unwrap();
    let url = url::Url::parse(server.base_url()).unwrap();
    let key = server.proctor_key().to_string();
    timeout(Duration::from_secs(120), engine_end_to_end(url, Some(&key)))
        .await
        .expect("end-to-end test timed out");
    server.shutdown().await;
}

/// Someone else tries to go live on a code that is live: they are refused
/// and the proctor watching the code hears about it (once, although the
/// intruder retries), while the stream goes on. Then the proctor decides
/// the device on the code is the wrong one and releases the code: that
/// device is dropped and another one goes live on the code and is watched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_device_on_a_live_code_alerts_the_proctor() {
    use rtcproctor::signal::server::{ServerConfig, start};
    let server = start(ServerConfig::loopback()).await.unwrap();
    let url = url::Url::parse(server.base_url()).unwrap();
    let key = server.proctor_key().to_string();
    timeout(Duration::from_secs(90), async {
        let mut engine = start_engine(&url, Some(&key), "s1\tcode-one\n");
        let s1 = StudentId("s1".into());
        let _student = Student::go_live(&url, "code-one").await;
        wait_for(&mut engine, "s1 live", |e| {
            is_state(e, "s1", StreamState::Live)
        })
        .await;

        let mut cfg = ClientConfig::rtcproctor(url.clone(), "intruder", "code-one");
        cfg.tls = ClientTls::InsecureLoopback;
        let (intruder, _events) = SignalClient::connect(cfg).await.unwrap();
        let open = json!({
            "sessionid": "code-one",
            "session": {"audio": true, "video": true, "oneway": true},
            "extra": {}, "identifier": "", "password": "",
        });
        for _ in 0..3 {
            let ack = intruder
                .emit_with_ack("open-room", vec![open.clone()], Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(ack, vec![json!(false), json!("Room not available")]);
        }
        let e = wait_for(&mut engine, "code conflict", |e| {
            matches!(e, EngineEvent::CodeConflict { .. })
        })
        .await;
        assert!(matches!(e, EngineEvent::CodeConflict { student, .. } if student == s1));
        // Throttled: the two retries right after make no second event, and
        // the real student's picture keeps coming.
        let n = counter_above(&engine.frames, &s1, 0).await;
        counter_above(&engine.frames, &s1, n + 2).await;
        while let Ok(e) = engine.events.try_recv() {
            assert!(!matches!(e, EngineEvent::CodeConflict { .. }), "{e:?}");
        }
        intruder.close().await;

        engine
            .commands
            .send(EngineCommand::ReleaseCode {
                student: s1.clone(),
            })
            .await
            .unwrap();
        wait_for(
            &mut engine,
            "released notice",
            |e| matches!(e, EngineEvent::Notice { text } if text.contains("code released")),
        )
        .await;
        wait_for(&mut engine, "s1 left", |e| {
            is_state(e, "s1", StreamState::Left)
        })
        .await;
        let _other = Student::go_live(&url, "code-one").await;
        wait_for(&mut engine, "s1 live again", |e| {
            is_state(e, "s1", StreamState::Live)
        })
        .await;
        counter_above(&engine.frames, &s1, 0).await;
        engine.commands.send(EngineCommand::Shutdown).await.unwrap();
        while engine.events.recv().await.is_some() {}
    })
    .await
    .expect("code conflict test timed out");
    server.shutdown().await;
}

/// The synthetic student (`rtcproctor student`) through our server: the
/// engine's thumbnail carries the pattern's marks (frame counter and send
/// time), proctor chat reaches the student, and a second monitor watching
/// the same student does not disturb the first when it leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_reads_the_synthetic_students_marks() {
    use rtcproctor::signal::server::{ServerConfig, start};
    use rtcproctor::sim::pattern::read_marks_rgb;
    use rtcproctor::sim::student::{Schedule, StudentConfig, StudentEvent, run};
    let server = start(ServerConfig::loopback()).await.unwrap();
    let url = url::Url::parse(server.base_url()).unwrap();
    let key = server.proctor_key().to_string();
    let cancel = tokio_util::sync::CancellationToken::new();
    let (sev_tx, mut sev) = mpsc::channel(256);
    let cfg = StudentConfig {
        tls: ClientTls::InsecureLoopback,
        fps: 10,
        udp_bind: vec!["127.0.0.1:0".into()],
        schedule: Schedule::default(),
        ..StudentConfig::new(url.clone(), "sim-code", "Sim")
    };
    let student = tokio::spawn(run(cfg, cancel.clone(), Some(sev_tx)));
    timeout(Duration::from_secs(60), async {
        let mut a = start_engine(&url, Some(&key), "sim\tsim-code\n");
        let mut b = start_engine(&url, Some(&key), "sim\tsim-code\n");
        let sim = StudentId("sim".into());
        wait_for(&mut a, "live on monitor A", |e| {
            is_state(e, "sim", StreamState::Live)
        })
        .await;
        wait_for(&mut b, "live on monitor B", |e| {
            is_state(e, "sim", StreamState::Live)
        })
        .await;
        let marks = |slots: &FrameSlots| {
            slots
                .latest(&sim)
                .and_then(|f| read_marks_rgb(&f.rgb, f.width as usize, f.height as usize))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let first = loop {
            if let Some(m) = marks(&a.frames) {
                break m;
            }
            assert!(
                Instant::now() < deadline,
                "no readable marks in the thumbnail"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let f = a.frames.latest(&sim).unwrap();
        assert_eq!((f.width, f.height), (160, 120));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(first.sent_unix_ms <= now_ms && now_ms - first.sent_unix_ms < 60_000);

        // Monitor B leaves: A keeps receiving new frames.
        b.commands.send(EngineCommand::Shutdown).await.unwrap();
        while b.events.recv().await.is_some() {}
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = marks(&a.frames).map_or(first.counter, |m| m.counter);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if marks(&a.frames).is_some_and(|m| m.counter > before + 3) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "monitor A stopped receiving when B left"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Chat reaches the synthetic student.
        a.commands
            .send(EngineCommand::SendChat {
                student: sim.clone(),
                text: "hello sim".into(),
            })
            .await
            .unwrap();
        loop {
            match sev.recv().await.expect("student stopped") {
                StudentEvent::FromProctor { extra, .. }
                    if extra["message"] == json!("hello sim") =>
                {
                    break;
                }
                _ => {}
            }
        }
        a.commands.send(EngineCommand::Shutdown).await.unwrap();
        while a.events.recv().await.is_some() {}
    })
    .await
    .expect("synthetic student test timed out");
    cancel.cancel();
    let _ = timeout(Duration::from_secs(5), student).await;
    server.shutdown().await;
}

/// `rtcproctor monitor --headless` with its embedded server: the student
/// link goes to stderr, JSON lines to stdout, commands come from stdin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_monitor_prints_json_lines_and_takes_commands() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let dir = std::env::temp_dir().join(format!("rtcproctor-headless-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let roster = dir.join("roster.tsv");
    std::fs::write(&roster, "h1\thead-one\nh2\thead-two\n").unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rtcproctor"))
        .args([
            "monitor",
            "--headless",
            "--http",
            "--bind",
            "127.0.0.1:0",
            "--roster",
        ])
        .arg(&roster)
        // The session record goes to the test's folder, not the user's.
        .env("RTCPROCTOR_DATA_DIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let r = timeout(Duration::from_secs(60), async {
        // The student link on stderr tells the port.
        let mut err_lines = BufReader::new(stderr).lines();
        let link = loop {
            let line = err_lines
                .next_line()
                .await
                .unwrap()
                .expect("monitor exited early");
            if let Some(l) = line.trim().strip_prefix("student link:") {
                break l.trim().to_string();
            }
        };
        tokio::spawn(async move {
            while let Ok(Some(l)) = err_lines.next_line().await {
                eprintln!("monitor: {l}");
            }
        });
        let mut url = url::Url::parse(&link).unwrap();
        url.set_fragment(None);
        let mut student = Student::go_live(&url, "head-one").await;
        let mut out = BufReader::new(stdout).lines();
        let mut seen_offair_h2 = false;
        loop {
            let v = json_line(&mut out).await;
            assert_ne!(
                v["event"],
                json!("frame_ready"),
                "frame_ready must not be printed"
            );
            seen_offair_h2 |= v["event"] == json!("state")
                && v["student"] == json!("h2")
                && v["state"] == json!("off_air");
            if v["event"] == json!("stats")
                && v["student"] == json!("h1")
                && v["stats"]["fps_decoded"].as_f64() > Some(0.0)
            {
                assert_eq!(v["stats"]["codec"], json!("H264"));
                break;
            }
        }
        assert!(seen_offair_h2, "h2 was never reported off-air");
        stdin
            .write_all(b"{\"cmd\":\"chat\",\"student\":\"h1\",\"text\":\"from stdin\"}\n")
            .await
            .unwrap();
        loop {
            let extra = student.received.recv().await.expect("student closed");
            if extra["message"] == json!("from stdin") {
                break;
            }
        }
        student.send_extra("question", "").await;
        loop {
            let v = json_line(&mut out).await;
            if v["event"] == json!("chat") && v["from"] == json!("student") {
                assert_eq!(v["text"], json!("question"));
                break;
            }
        }
        stdin.write_all(b"{\"cmd\":\"quit\"}\n").await.unwrap();
        let status = child.wait().await.unwrap();
        assert!(status.success(), "monitor exited with {status}");
        student.stop().await;
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    r.expect("headless monitor test timed out");
}

async fn json_line<R: tokio::io::AsyncBufRead + Unpin>(out: &mut tokio::io::Lines<R>) -> Value {
    let line = out
        .next_line()
        .await
        .unwrap()
        .expect("monitor stdout closed");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
}

/// The signalling server goes away and comes back on the same address: the
/// engine reports reconnecting, then picks the student up again by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_reconnects_after_the_server_restarts() {
    use rtcproctor::signal::server::{ServerConfig, start};
    let server = start(ServerConfig::loopback()).await.unwrap();
    let addr = server.addr();
    let url = url::Url::parse(server.base_url()).unwrap();
    let key = server.proctor_key().to_string();
    timeout(Duration::from_secs(90), async {
        let mut engine = start_engine(&url, Some(&key), "r1\trestart-one\n");
        let student = Student::go_live(&url, "restart-one").await;
        wait_for(&mut engine, "r1 live", |e| {
            is_state(e, "r1", StreamState::Live)
        })
        .await;
        server.shutdown().await;
        wait_for(&mut engine, "r1 reconnecting", |e| {
            is_state(e, "r1", StreamState::Reconnecting) || is_state(e, "r1", StreamState::Left)
        })
        .await;
        wait_for(&mut engine, "server down", |e| {
            matches!(
                e,
                EngineEvent::Server {
                    connected: false,
                    ..
                }
            )
        })
        .await;
        student.stop().await;

        let mut config = ServerConfig::loopback();
        config.bind = addr;
        config.proctor_key = Some(key.clone());
        let server = start(config).await.unwrap();
        wait_for(&mut engine, "server up again", |e| {
            matches!(
                e,
                EngineEvent::Server {
                    connected: true,
                    ..
                }
            )
        })
        .await;
        let student = Student::go_live(&url, "restart-one").await;
        wait_for(&mut engine, "r1 live again", |e| {
            is_state(e, "r1", StreamState::Live)
        })
        .await;
        let r1 = StudentId("r1".into());
        timeout(
            Duration::from_secs(10),
            counter_above(&engine.frames, &r1, 0),
        )
        .await
        .expect("no frame after the server came back");
        engine.commands.send(EngineCommand::Shutdown).await.unwrap();
        while engine.events.recv().await.is_some() {}
        student.stop().await;
        server.shutdown().await;
    })
    .await
    .expect("server restart test timed out");
}
