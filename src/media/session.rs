//! One WebRTC peer connection per watched student: we answer the student's
//! offer receive-only, trickle candidates, and turn RTP into pictures.
//!
//! The session's loop, per video track:
//! 1. RTP packets arrive (`track.poll()`); every packet counts for liveness
//!    and statistics, visible or not.
//! 2. [`FrameAssembler`] reassembles access units (Annex-B for H.264) and
//!    releases each on its marker bit, as soon as it is complete.
//! 3. Only while the student is visible, access units go to the decode pool,
//!    starting at a keyframe; becoming visible, a decode error or a dropped
//!    unit sends a PLI at once so the next keyframe comes within a round trip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer, RTCIceTransportPolicy,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, Registry,
    register_default_interceptors,
};

use super::assemble::FrameAssembler;
use super::audio::{self, PeakMeter};
use super::decode::{Codec, DecodePool, FrameSink, Submit};
use super::sdp;
use crate::proctor::StreamStats;

/// Largest thumbnail the engine publishes for students not enlarged.
pub const THUMBNAIL_MAX: (u32, u32) = (160, 120);

/// Fewest milliseconds between two PLIs of one stream (a burst of decode
/// errors must not become a burst of keyframes).
const PLI_MIN_GAP: Duration = Duration::from_millis(250);

/// How peer connections are set up.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// STUN/TURN servers.
    pub ice_servers: Vec<RTCIceServer>,
    /// Use TURN relay candidates only (tests of TURN; strict networks).
    pub relay_only: bool,
    /// Local UDP addresses to gather host candidates on. `0.0.0.0:0` binds
    /// every non-loopback interface; tests and loopback servers use
    /// `127.0.0.1:0`.
    pub udp_addrs: Vec<String>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            ice_servers: Vec::new(),
            relay_only: false,
            udp_addrs: vec!["0.0.0.0:0".into()],
        }
    }
}

impl MediaConfig {
    /// Only loopback host candidates (tests, and servers on this machine).
    pub fn loopback() -> Self {
        MediaConfig {
            udp_addrs: vec!["127.0.0.1:0".into()],
            ..MediaConfig::default()
        }
    }
}

/// What a session reports to its owner.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A local ICE candidate to send to the student.
    LocalCandidate(RTCIceCandidateInit),
    /// The peer connection's state changed.
    State(RTCPeerConnectionState),
    /// A remote track started.
    Track { kind: RtpCodecKind, mime: String },
}

/// Counters of one session, reset by [`MediaSession::take_stats`].
#[derive(Debug, Default)]
struct Counters {
    packets: u64,
    bytes: u64,
    frames: u64,
    /// Extended highest sequence number, and the one at interval start.
    max_seq: Option<u64>,
    base_seq: Option<u64>,
    codec: String,
    audio: PeakMeter,
    decoded_at_start: u64,
    work_ns_at_start: u64,
    /// PLIs sent.
    plis: u32,
}

impl Counters {
    fn on_video_packet(&mut self, seq: u16, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
        let ext = match self.max_seq {
            None => seq as u64 + (1 << 16),
            Some(max) => {
                // Nearest extension of `seq` to the current maximum.
                let cycle = max & !0xffff;
                let cands = [cycle.wrapping_sub(1 << 16), cycle, cycle + (1 << 16)];
                cands
                    .iter()
                    .map(|c| c + seq as u64)
                    .min_by_key(|&e| e.abs_diff(max))
                    .unwrap_or(max)
            }
        };
        if self.base_seq.is_none() {
            self.base_seq = Some(ext.saturating_sub(1));
        }
        self.max_seq = Some(self.max_seq.map_or(ext, |m| m.max(ext)));
    }
}

struct Shared {
    sink: Arc<FrameSink>,
    pool: DecodePool,
    stream: u64,
    visible: AtomicBool,
    full_res: AtomicBool,
    /// Rings when the session wants a keyframe (became visible, loss).
    keyframe: Notify,
    /// Set when decoding must restart at the next keyframe.
    await_keyframe: AtomicBool,
    counters: Mutex<Counters>,
    last_rtp: Mutex<Option<Instant>>,
    audio_level_id: Mutex<Option<u8>>,
    events: mpsc::UnboundedSender<SessionEvent>,
    cancel: CancellationToken,
}

impl Shared {
    fn touch(&self) {
        if let Ok(mut t) = self.last_rtp.lock() {
            *t = Some(Instant::now());
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Handler {
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => {
                let _ = self.shared.events.send(SessionEvent::LocalCandidate(init));
            }
            Err(e) => tracing::debug!("unusable local candidate: {e}"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.shared.events.send(SessionEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let Some(&ssrc) = track.ssrcs().await.first() else {
            tracing::warn!("remote track without SSRC ignored");
            return;
        };
        let mime = track
            .codec(ssrc)
            .await
            .map(|c| c.mime_type)
            .unwrap_or_default();
        let _ = self.shared.events.send(SessionEvent::Track {
            kind,
            mime: mime.clone(),
        });
        let shared = Arc::clone(&self.shared);
        match kind {
            RtpCodecKind::Video => {
                let codec = Codec::from_mime(&mime);
                shared.counters().codec = codec.map_or(mime.clone(), |c| c.name().to_string());
                tokio::spawn(keyframe_requests(
                    Arc::clone(&shared),
                    Arc::clone(&track),
                    ssrc,
                ));
                tokio::spawn(read_video(shared, track, codec));
            }
            RtpCodecKind::Audio => {
                tokio::spawn(read_audio(shared, track));
            }
            _ => {}
        }
    }
}

/// Send a PLI whenever the session or the decoder asks for a keyframe.
async fn keyframe_requests(shared: Arc<Shared>, track: Arc<dyn TrackRemote>, media_ssrc: u32) {
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = shared.keyframe.notified() => {}
            _ = shared.sink.keyframe_wanted.notified() => {
                shared.await_keyframe.store(true, Ordering::Relaxed);
            }
        }
        if let Some(t) = last {
            let since = t.elapsed();
            if since < PLI_MIN_GAP {
                tokio::time::sleep(PLI_MIN_GAP - since).await;
            }
        }
        last = Some(Instant::now());
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
            tracing::debug!("PLI not sent: {e}");
            return;
        }
        let mut c = shared.counters();
        c.plis = c.plis.saturating_add(1);
    }
}

enum Assembler {
    H264(FrameAssembler<H264Packet>),
    Vp8(FrameAssembler<Vp8Packet>),
}

async fn read_video(shared: Arc<Shared>, track: Arc<dyn TrackRemote>, codec: Option<Codec>) {
    let mut assembler = match codec {
        Some(Codec::H264) => Some(Assembler::H264(FrameAssembler::default())),
        Some(Codec::Vp8) => Some(Assembler::Vp8(FrameAssembler::default())),
        None => None,
    };
    loop {
        let event = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            e = track.poll() => e,
        };
        let Some(event) = event else { break };
        let packet = match event {
            TrackRemoteEvent::OnRtpPacket(p) => p,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        shared.touch();
        shared
            .counters()
            .on_video_packet(packet.header.sequence_number, packet.payload.len() + 12);
        let now = Instant::now();
        let (Some(assembler), Some(codec)) = (assembler.as_mut(), codec) else {
            continue;
        };
        match assembler {
            Assembler::H264(a) => a.push(now, packet),
            Assembler::Vp8(a) => a.push(now, packet),
        }
        loop {
            let frame = match assembler {
                Assembler::H264(a) => a.pop(now),
                Assembler::Vp8(a) => a.pop(now),
            };
            let Some(frame) = frame else { break };
            shared.counters().frames += 1;
            if frame.dropped_packets > 0 {
                shared.await_keyframe.store(true, Ordering::Relaxed);
                shared.keyframe.notify_one();
            }
            if !shared.visible.load(Ordering::Relaxed) || frame.data.is_empty() {
                continue;
            }
            if shared.await_keyframe.load(Ordering::Relaxed) {
                if !codec.is_keyframe(&frame.data) {
                    // Still no keyframe: ask again (at most every
                    // PLI_MIN_GAP). The one asked for may have been lost,
                    // and a stream whose first keyframe came before the
                    // track was read shows no gap to trigger a request.
                    shared.keyframe.notify_one();
                    continue;
                }
                shared.await_keyframe.store(false, Ordering::Relaxed);
            }
            let max = if shared.full_res.load(Ordering::Relaxed) {
                None
            } else {
                Some(THUMBNAIL_MAX)
            };
            match shared
                .pool
                .submit(shared.stream, codec, frame.data, max, &shared.sink)
            {
                Submit::Queued => {}
                Submit::Dropped => {
                    shared.await_keyframe.store(true, Ordering::Relaxed);
                    shared.keyframe.notify_one();
                }
                Submit::Closed => return,
            }
        }
    }
}

async fn read_audio(shared: Arc<Shared>, track: Arc<dyn TrackRemote>) {
    // Made on the first packet without a level extension (rare: browsers
    // and our synthetic student send it).
    let mut decoded: Option<audio::OpusLevel> = None;
    loop {
        let event = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            e = track.poll() => e,
        };
        let Some(event) = event else { break };
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => {
                shared.touch();
                let id = shared.audio_level_id.lock().ok().and_then(|g| *g);
                let level = match id.and_then(|id| p.header.get_extension(id)) {
                    Some(ext) => audio::level_from_extension(&ext),
                    None if !p.payload.is_empty() => {
                        if decoded.is_none() {
                            decoded = audio::OpusLevel::new();
                        }
                        decoded.as_mut().and_then(|d| d.level(&p.payload))
                    }
                    None => None,
                };
                if let Some(level) = level {
                    shared.counters().audio.push(level);
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// The codecs we answer with: H.264 (packetization-mode 1) first, VP8
/// second, Opus for audio; plus the audio level header extension.
fn media_engine() -> webrtc::error::Result<MediaEngine> {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    let video_fb = vec![
        feedback("goog-remb", ""),
        feedback("ccm", "fir"),
        feedback("nack", ""),
        feedback("nack", "pli"),
    ];
    let codec = |mime: &str, clock_rate, channels, fmtp: &str, fb: Vec<RTCPFeedback>, pt| {
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.into(),
                clock_rate,
                channels,
                sdp_fmtp_line: fmtp.into(),
                rtcp_feedback: fb,
            },
            payload_type: pt,
        }
    };
    let mut me = MediaEngine::default();
    for (pt, profile) in [(102, "42e01f"), (104, "42001f")] {
        me.register_codec(
            codec(
                "video/H264",
                90_000,
                0,
                &format!(
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
                ),
                video_fb.clone(),
                pt,
            ),
            RtpCodecKind::Video,
        )?;
        me.register_codec(
            codec("video/rtx", 90_000, 0, &format!("apt={pt}"), vec![], pt + 1),
            RtpCodecKind::Video,
        )?;
    }
    me.register_codec(
        codec("video/VP8", 90_000, 0, "", video_fb, 96),
        RtpCodecKind::Video,
    )?;
    me.register_codec(
        codec("video/rtx", 90_000, 0, "apt=96", vec![], 97),
        RtpCodecKind::Video,
    )?;
    me.register_codec(
        codec(
            "audio/opus",
            48_000,
            2,
            "minptime=10;useinbandfec=1",
            vec![],
            111,
        ),
        RtpCodecKind::Audio,
    )?;
    me.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: sdp::AUDIO_LEVEL_URI.into(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    Ok(me)
}

/// A receive-only peer connection answering one student's offer.
pub struct MediaSession {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    started: Instant,
    last_stats: Mutex<Instant>,
}

impl std::fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaSession({})", self.shared.sink.student)
    }
}

impl MediaSession {
    /// Answer `offer_sdp`. Returns the session, the answer SDP to send back,
    /// and the session's events (local candidates, state, tracks).
    pub async fn answer(
        config: &MediaConfig,
        offer_sdp: &str,
        sink: Arc<FrameSink>,
        pool: DecodePool,
        visible: bool,
        full_res: bool,
    ) -> anyhow::Result<(MediaSession, String, mpsc::UnboundedReceiver<SessionEvent>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            stream: pool.new_stream(),
            sink,
            pool,
            visible: AtomicBool::new(visible),
            full_res: AtomicBool::new(full_res),
            keyframe: Notify::new(),
            await_keyframe: AtomicBool::new(true),
            counters: Mutex::new(Counters::default()),
            last_rtp: Mutex::new(None),
            audio_level_id: Mutex::new(sdp::extmap_id(offer_sdp, "audio", sdp::AUDIO_LEVEL_URI)),
            events: tx,
            cancel: CancellationToken::new(),
        });
        let mut me = media_engine()?;
        let registry = register_default_interceptors(Registry::new(), &mut me)?;
        let mut conf = RTCConfigurationBuilder::new().with_ice_servers(config.ice_servers.clone());
        if config.relay_only {
            conf = conf.with_ice_transport_policy(RTCIceTransportPolicy::Relay);
        }
        let pc = PeerConnectionBuilder::new()
            .with_configuration(conf.build())
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                shared: Arc::clone(&shared),
            }))
            .with_udp_addrs(config.udp_addrs.clone())
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let session = MediaSession {
            pc,
            shared,
            started: Instant::now(),
            last_stats: Mutex::new(Instant::now()),
        };
        let offer = RTCSessionDescription::offer(sdp::prefer_video_codecs(offer_sdp))?;
        session.pc.set_remote_description(offer).await?;
        let answer = session.pc.create_answer(None).await?;
        session.pc.set_local_description(answer).await?;
        let answer = session
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow::anyhow!("the peer connection produced no answer"))?;
        Ok((session, answer.sdp, rx))
    }

    /// Add a candidate the student trickled.
    pub async fn add_remote_candidate(&self, candidate: RTCIceCandidateInit) -> anyhow::Result<()> {
        self.pc.add_ice_candidate(candidate).await?;
        Ok(())
    }

    /// Decode (true) or only watch liveness (false). Becoming visible asks
    /// for a keyframe at once.
    pub fn set_visible(&self, visible: bool) {
        let was = self.shared.visible.swap(visible, Ordering::Relaxed);
        if visible && !was {
            self.shared.await_keyframe.store(true, Ordering::Relaxed);
            self.shared.keyframe.notify_one();
        } else if !visible && was {
            self.shared.pool.forget(self.shared.stream);
        }
    }

    /// Publish full decoded resolution (enlarged) or thumbnails.
    pub fn set_full_resolution(&self, full: bool) {
        self.shared.full_res.store(full, Ordering::Relaxed);
    }

    /// Ask the sender for a keyframe now.
    pub fn request_keyframe(&self) {
        self.shared.keyframe.notify_one();
    }

    /// When the last RTP packet (audio or video) arrived.
    pub fn last_rtp(&self) -> Option<Instant> {
        self.shared.last_rtp.lock().ok().and_then(|g| *g)
    }

    /// When the session was created.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Statistics since the previous call.
    pub fn take_stats(&self) -> StreamStats {
        let now = Instant::now();
        let secs = self
            .last_stats
            .lock()
            .map(|mut t| {
                let s = now.duration_since(*t).as_secs_f32();
                *t = now;
                s
            })
            .unwrap_or(1.0)
            .max(0.001);
        let sink = &self.shared.sink;
        let decoded = sink.decoded.load(Ordering::Relaxed);
        let work_ns = sink.work_ns.load(Ordering::Relaxed);
        let (width, height) = sink.source_size();
        let frame_age_ms = sink
            .last_published
            .lock()
            .ok()
            .and_then(|g| *g)
            .map(|t| now.duration_since(t).as_millis() as u64);
        let mut c = self.shared.counters();
        let expected = match (c.base_seq, c.max_seq) {
            (Some(b), Some(m)) => m.saturating_sub(b),
            _ => 0,
        };
        let packet_loss = if expected > 0 {
            (1.0 - c.packets as f32 / expected as f32).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let new_decoded = decoded - c.decoded_at_start;
        let stats = StreamStats {
            fps_received: c.frames as f32 / secs,
            fps_decoded: new_decoded as f32 / secs,
            width,
            height,
            codec: c.codec.clone(),
            bitrate_kbps: c.bytes as f32 * 8.0 / 1000.0 / secs,
            packet_loss,
            frame_age_ms,
            audio_level: c.audio.take(),
            decode_ms: if new_decoded > 0 {
                (work_ns - c.work_ns_at_start) as f32 / new_decoded as f32 / 1e6
            } else {
                0.0
            },
            keyframe_requests: c.plis,
        };
        c.plis = 0;
        c.packets = 0;
        c.bytes = 0;
        c.frames = 0;
        c.base_seq = c.max_seq;
        c.decoded_at_start = decoded;
        c.work_ns_at_start = work_ns;
        stats
    }

    /// Close the peer connection and stop the session's tasks.
    pub async fn close(&self) {
        self.shared.cancel.cancel();
        self.shared.pool.forget(self.shared.stream);
        if let Err(e) = self.pc.close().await {
            tracing::debug!("closing a peer connection: {e}");
        }
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap_and_loss_is_counted() {
        let mut c = Counters::default();
        for seq in [65533u16, 65534, 65535, 0, 2, 3] {
            c.on_video_packet(seq, 100);
        }
        // 65533..=3 is 7 packets, 6 arrived (1 lost).
        let expected = c.max_seq.unwrap() - c.base_seq.unwrap();
        assert_eq!(expected, 7);
        assert_eq!(c.packets, 6);
    }
}
