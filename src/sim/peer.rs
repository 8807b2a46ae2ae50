//! One WebRTC peer connection from a synthetic student to one watching
//! proctor, negotiated exactly as RTCMultiConnection's broadcaster does it
//! (protocol notes §6.5.1): the student offers (H.264 video and, optionally,
//! Opus audio, sendonly in effect), trickles its candidates in the
//! `{remoteUserId, message: {candidate, sdpMid, sdpMLineIndex}, sender}`
//! envelope, then applies the proctor's answer and candidates.
//!
//! Tasks per peer, all started once ICE connects and stopped by
//! [`Peer::close`]:
//! 1. video: copies encoded frames from the student's [`VideoSource`] into
//!    the track, starting at a keyframe and skipping to the next keyframe
//!    after falling behind;
//! 2. keyframe requests: PLI/FIR from the proctor (delivered by the
//!    [`KeyframeRequests`] interceptor) ask the encoder for a keyframe;
//! 3. audio: Opus silence, 60 ms per packet (no encoder needed), or with
//!    `--tone` the student's [`ToneLoop`] packets round and round, 20 ms
//!    each; every
//!    packet carries its RFC 6464 audio level (silence: 127, the floor).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::RTCIceServer;
use rtc::peer_connection::configuration::interceptor_registry::{
    Registry, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState,
};
use webrtc::rtp_transceiver::RtpSender;

use super::source::VideoSource;
use super::tone::ToneLoop;
use crate::signal::client::SignalClient;
use crate::{Error, Result};

/// H.264 as Chromium offers it for its OpenH264 encoder.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

/// An Opus packet of three 20 ms CELT silence frames (RFC 6716 §3.2.5, code
/// 3, constant size): TOC 0xfb, count byte 0x03, then `ff fe` three times.
const OPUS_SILENCE_60MS: [u8; 8] = [0xfb, 0x03, 0xff, 0xfe, 0xff, 0xfe, 0xff, 0xfe];
const AUDIO_PACKET: Duration = Duration::from_millis(60);

/// What a peer needs to know to offer.
#[derive(Clone)]
pub struct PeerSetup {
    pub client: SignalClient,
    /// The relay event name (`msgEvent`).
    pub msg_event: String,
    /// The student's userid.
    pub me: String,
    /// The proctor's userid.
    pub viewer: String,
    /// The join request as received: echoed as `connectionDescription`.
    pub request: Value,
    /// The student's current extra, sent with the offer.
    pub extra: Value,
    pub ice_servers: Vec<RTCIceServer>,
    /// Local UDP address(es) for ICE, e.g. "0.0.0.0:0" (all interfaces) or
    /// "127.0.0.1:0" (loopback only, for tests).
    pub udp_bind: Vec<String>,
    pub audio: bool,
    /// The student's tone (`--tone`); None sends silence.
    pub tone: Option<ToneLoop>,
}

impl PeerSetup {
    /// Send this student's tone instead of silence.
    pub fn with_tone(mut self, tone: Option<&ToneLoop>) -> Self {
        self.tone = tone.cloned();
        self
    }
}

/// The level of digital silence in the audio-level extension (-127 dBov).
const SILENCE_LEVEL: u8 = 127;

/// What happened to a peer (for the student's loop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    Connected {
        viewer: String,
    },
    /// ICE failed or the connection closed: the student forgets the viewer.
    Failed {
        viewer: String,
    },
}

/// A running peer connection to one proctor.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    viewer: String,
    remote_set: bool,
    early_candidates: Vec<RTCIceCandidateInit>,
    tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Peer {
    /// Create the peer connection, add the tracks, send the offer. Media
    /// starts by itself once ICE connects.
    pub async fn offer(
        setup: PeerSetup,
        video: &VideoSource,
        events: mpsc::Sender<PeerEvent>,
    ) -> Result<Peer> {
        let h264 = RTCRtpCodec {
            mime_type: MIME_TYPE_H264.to_string(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: H264_FMTP.to_string(),
            rtcp_feedback: ["nack", "nack pli", "ccm fir", "goog-remb"]
                .iter()
                .map(|fb| {
                    let (typ, parameter) = fb.split_once(' ').unwrap_or((fb, ""));
                    RTCPFeedback {
                        typ: typ.to_string(),
                        parameter: parameter.to_string(),
                    }
                })
                .collect(),
        };
        let opus = RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_string(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_string(),
            rtcp_feedback: vec![],
        };
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: h264.clone(),
                    payload_type: 102,
                },
                RtpCodecKind::Video,
            )
            .map_err(webrtc_err)?;
        if setup.audio {
            media
                .register_codec(
                    RTCRtpCodecParameters {
                        rtp_codec: opus.clone(),
                        payload_type: 111,
                    },
                    RtpCodecKind::Audio,
                )
                .map_err(webrtc_err)?;
            // The level meter's source, as Chromium offers it.
            media
                .register_header_extension(
                    RTCRtpHeaderExtensionCapability {
                        uri: crate::media::sdp::AUDIO_LEVEL_URI.into(),
                    },
                    RtpCodecKind::Audio,
                    None,
                )
                .map_err(webrtc_err)?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media)
            .map_err(webrtc_err)?
            .with(Slot::from(14_000), KeyframeRequests::default());

        let (connected_tx, connected_rx) = watch::channel(false);
        let handler = Arc::new(Handler {
            client: setup.client.clone(),
            msg_event: setup.msg_event.clone(),
            me: setup.me.clone(),
            viewer: setup.viewer.clone(),
            connected: connected_tx,
            events,
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(setup.ice_servers.clone())
                    .build(),
            )
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(setup.udp_bind.clone())
            .build()
            .await
            .map_err(webrtc_err)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        // One media stream with both tracks, so the browser library sees one
        // stream with audio and video (it keys tiles by stream id).
        let stream_id = format!("rtcproctor-{:016x}", rand::random::<u64>());
        let video_track = Arc::new(local_track(&stream_id, RtpCodecKind::Video, h264)?);
        let video_sender = pc
            .add_track(video_track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(webrtc_err)?;
        let audio = if setup.audio {
            let track = Arc::new(local_track(&stream_id, RtpCodecKind::Audio, opus)?);
            let sender = pc
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(webrtc_err)?;
            Some((track, sender))
        } else {
            None
        };

        let offer = pc.create_offer(None).await.map_err(webrtc_err)?;
        pc.set_local_description(offer).await.map_err(webrtc_err)?;
        let local = pc
            .local_description()
            .await
            .ok_or_else(|| Error::Other(anyhow::anyhow!("no local description after offer")))?;
        let envelope = json!({
            "remoteUserId": setup.viewer,
            "message": {
                "type": "offer",
                "sdp": local.sdp,
                "remotePeerSdpConstraints": {"OfferToReceiveAudio": true, "OfferToReceiveVideo": true},
                "renegotiatingPeer": false,
                "connectionDescription": setup.request,
                "dontGetRemoteStream": true,
                "extra": setup.extra,
                "streamsToShare": {
                    stream_id.clone(): {"isAudio": false, "isVideo": true, "isScreen": false}
                }
            },
            "sender": setup.me,
        });
        setup.client.emit(&setup.msg_event, vec![envelope]).await?;

        // Media tasks wait for ICE to connect.
        let tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let starter = {
            let tasks = tasks.clone();
            let mut connected = connected_rx;
            let frames = video.subscribe();
            let keyframe = video.keyframe_requester();
            let interval = video.frame_interval();
            let tone = setup.tone.clone();
            tokio::spawn(async move {
                if connected.wait_for(|c| *c).await.is_err() {
                    return;
                }
                let mut started = vec![
                    tokio::spawn(pump_video(
                        video_track.clone(),
                        video_sender,
                        frames,
                        keyframe.clone(),
                        interval,
                    )),
                    tokio::spawn(watch_keyframe_requests(video_track, keyframe)),
                ];
                match (audio, tone) {
                    (Some((track, sender)), Some(tone)) => {
                        started.push(tokio::spawn(pump_tone(track, sender, tone)));
                    }
                    (Some((track, sender)), None) => {
                        started.push(tokio::spawn(pump_silence(track, sender)));
                    }
                    (None, _) => {}
                }
                if let Ok(mut t) = tasks.lock() {
                    t.extend(started);
                }
            })
        };
        if let Ok(mut t) = tasks.lock() {
            t.push(starter);
        }
        Ok(Peer {
            pc,
            viewer: setup.viewer,
            remote_set: false,
            early_candidates: Vec::new(),
            tasks,
        })
    }

    /// The proctor this peer streams to.
    pub fn viewer(&self) -> &str {
        &self.viewer
    }

    /// Apply the proctor's answer, then any candidates that came first.
    pub async fn on_answer(&mut self, sdp: &str) -> Result<()> {
        let answer = RTCSessionDescription::answer(sdp.to_string()).map_err(webrtc_err)?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(webrtc_err)?;
        self.remote_set = true;
        for c in std::mem::take(&mut self.early_candidates) {
            if let Err(e) = self.pc.add_ice_candidate(c).await {
                tracing::debug!("ignoring a candidate from {}: {e}", self.viewer);
            }
        }
        Ok(())
    }

    /// Add a trickled candidate from the proctor (`message` of the envelope).
    pub async fn on_candidate(&mut self, message: &Value) -> Result<()> {
        let Some(init) = crate::signal::protocol::candidate_init(message) else {
            return Ok(());
        };
        if !self.remote_set {
            self.early_candidates.push(init);
            return Ok(());
        }
        self.pc.add_ice_candidate(init).await.map_err(webrtc_err)
    }

    /// Stop the media tasks and close the connection.
    pub async fn close(self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
        if let Err(e) = self.pc.close().await {
            tracing::debug!("closing the peer of {}: {e}", self.viewer);
        }
    }
}

fn local_track(
    stream_id: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
) -> Result<TrackLocalStaticSample> {
    TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            stream_id.to_string(),
            format!("{kind}-{:016x}", rand::random::<u64>()),
            format!("synthetic {kind}"),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(rand::random::<u32>()),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        ),
    )
    .map_err(webrtc_err)
}

/// Whether the proctor's answer accepted the audio-level extension. The
/// track writes the extension under the id it had at offer time even when
/// the answer left it out, and a receiver that did not negotiate that id
/// may take it for another extension and drop the packets; so it is only
/// written when negotiated.
async fn audio_level_negotiated(sender: &Arc<dyn RtpSender>) -> bool {
    sender.get_parameters().await.is_ok_and(|p| {
        p.rtp_parameters
            .header_extensions
            .iter()
            .any(|e| e.uri == crate::media::sdp::AUDIO_LEVEL_URI)
    })
}

/// Write one audio sample, with its level when the answer accepted the
/// extension.
async fn write_audio(
    track: &TrackLocalStaticSample,
    (ssrc, pt): (u32, u8),
    sample: &Sample,
    level: Option<AudioLevelExtension>,
) -> bool {
    let writer = track.sample_writer(ssrc, pt);
    let writer = match level {
        Some(l) => writer.with_audio_level(l),
        None => writer,
    };
    writer.write_sample(sample).await.is_ok()
}

/// The SSRC and negotiated payload type to write with.
async fn send_params(
    track: &TrackLocalStaticSample,
    sender: &Arc<dyn RtpSender>,
) -> Option<(u32, u8)> {
    use webrtc::media_stream::Track;
    let ssrc = *track.ssrcs().await.first()?;
    let pt = sender
        .get_parameters()
        .await
        .ok()?
        .rtp_parameters
        .codecs
        .first()?
        .payload_type;
    Some((ssrc, pt))
}

async fn pump_video(
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    mut frames: tokio::sync::broadcast::Receiver<super::encoder::EncodedFrame>,
    keyframe: Arc<AtomicBool>,
    interval: Duration,
) {
    use tokio::sync::broadcast::error::RecvError;
    let Some((ssrc, pt)) = send_params(&track, &sender).await else {
        tracing::warn!("video sender has no negotiated codec");
        return;
    };
    keyframe.store(true, Ordering::Relaxed);
    let mut need_keyframe = true;
    loop {
        match frames.recv().await {
            Ok(frame) => {
                if need_keyframe && !frame.keyframe {
                    continue;
                }
                need_keyframe = false;
                let sample = Sample {
                    data: frame.data,
                    duration: interval,
                    ..Sample::new(Instant::now())
                };
                if let Err(e) = track.sample_writer(ssrc, pt).write_sample(&sample).await {
                    tracing::debug!("video write stopped: {e}");
                    return;
                }
            }
            Err(RecvError::Lagged(_)) => {
                need_keyframe = true;
                keyframe.store(true, Ordering::Relaxed);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn watch_keyframe_requests(track: Arc<TrackLocalStaticSample>, keyframe: Arc<AtomicBool>) {
    while let Some(event) = track.poll().await {
        // Only PLI and FIR reach the application (see KeyframeRequests).
        if let TrackLocalEvent::OnRtcpPacket(_) = event {
            keyframe.store(true, Ordering::Relaxed);
        }
    }
}

async fn pump_silence(track: Arc<TrackLocalStaticSample>, sender: Arc<dyn RtpSender>) {
    let Some((ssrc, pt)) = send_params(&track, &sender).await else {
        tracing::warn!("audio sender has no negotiated codec");
        return;
    };
    let with_level = audio_level_negotiated(&sender).await;
    let data = Bytes::from_static(&OPUS_SILENCE_60MS);
    let mut tick = tokio::time::interval(AUDIO_PACKET);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let sample = Sample {
            data: data.clone(),
            duration: AUDIO_PACKET,
            ..Sample::new(Instant::now())
        };
        let level = with_level.then_some(AudioLevelExtension {
            level: SILENCE_LEVEL,
            voice: false,
        });
        if !write_audio(&track, (ssrc, pt), &sample, level).await {
            return;
        }
    }
}

/// Send the student's tone round and round, one packet per frame, each with
/// its level.
async fn pump_tone(track: Arc<TrackLocalStaticSample>, sender: Arc<dyn RtpSender>, tone: ToneLoop) {
    let Some((ssrc, pt)) = send_params(&track, &sender).await else {
        tracing::warn!("audio sender has no negotiated codec");
        return;
    };
    let with_level = audio_level_negotiated(&sender).await;
    let mut tick = tokio::time::interval(super::tone::FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for packet in tone.packets().iter().cycle() {
        tick.tick().await;
        let sample = Sample {
            data: packet.data.clone(),
            duration: super::tone::FRAME,
            ..Sample::new(Instant::now())
        };
        let level = with_level.then_some(AudioLevelExtension {
            level: packet.level,
            voice: packet.voice,
        });
        if !write_audio(&track, (ssrc, pt), &sample, level).await {
            return;
        }
    }
}

struct Handler {
    client: SignalClient,
    msg_event: String,
    me: String,
    viewer: String,
    connected: watch::Sender<bool>,
    events: mpsc::Sender<PeerEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Ok(c) = event.candidate.to_json() else {
            return;
        };
        let envelope = json!({
            "remoteUserId": self.viewer,
            "message": {
                "candidate": c.candidate,
                "sdpMid": c.sdp_mid.unwrap_or_default(),
                "sdpMLineIndex": c.sdp_mline_index.unwrap_or(0),
            },
            "sender": self.me,
        });
        if let Err(e) = self.client.emit(&self.msg_event, vec![envelope]).await {
            tracing::debug!("cannot send a candidate to {}: {e}", self.viewer);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!("peer {} -> {}: {state}", self.me, self.viewer);
        match state {
            RTCPeerConnectionState::Connected => {
                let _ = self.connected.send(true);
                let _ = self
                    .events
                    .send(PeerEvent::Connected {
                        viewer: self.viewer.clone(),
                    })
                    .await;
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                let _ = self
                    .events
                    .send(PeerEvent::Failed {
                        viewer: self.viewer.clone(),
                    })
                    .await;
            }
            _ => {}
        }
    }
}

/// Lets keyframe requests (PLI, FIR) from the proctor through to the
/// application and keeps every other inbound RTCP inside the interceptor
/// chain (reports, NACKs and bandwidth feedback are handled there). Placed
/// last in the chain so the other interceptors see all RTCP first.
#[derive(Default)]
pub struct KeyframeRequests {
    inbound: VecDeque<TaggedPacket>,
    outbound: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                })
                .cloned()
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.inbound.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.inbound.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        self.outbound.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.outbound.pop_front()
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

fn webrtc_err(e: impl std::fmt::Display) -> Error {
    Error::Other(anyhow::anyhow!("WebRTC: {e}"))
}
