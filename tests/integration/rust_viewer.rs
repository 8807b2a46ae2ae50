//! A minimal RTCProctor-style viewer for tests: joins a student's room over
//! our socket.io client, answers the student's offer with webrtc (H.264 and
//! Opus only), decodes the video with openh264 and reads the test pattern's
//! marks back. It can send PLI to ask for a keyframe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media::io::sample_builder::SampleBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::{
    Registry, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtcproctor::signal::client::{ClientConfig, ClientEvent, SignalClient};
use rtcproctor::sim::pattern::{Marks, read_marks};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCPeerConnectionIceEvent,
};

/// What the viewer saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A decoded frame: its marks, whether the access unit was an IDR, size.
    Frame {
        marks: Option<Marks>,
        idr: bool,
        width: usize,
        height: usize,
    },
    /// An audio RTP packet arrived.
    Audio,
    /// Any other socket.io event from the server (name, args).
    Signal(String, Vec<Value>),
}

pub struct RustViewer {
    pub client: SignalClient,
    pub userid: String,
    pub seen: mpsc::Receiver<Seen>,
    pli: mpsc::Sender<()>,
    pc: Arc<tokio::sync::Mutex<Option<Arc<dyn PeerConnection>>>>,
    /// The student's userid, once its offer arrived.
    student: Arc<std::sync::Mutex<Option<String>>>,
}

impl RustViewer {
    /// Join `code` and start answering. Panics (test helper) when the room
    /// cannot be joined.
    pub async fn join(server: &url::Url, code: &str, userid: &str) -> RustViewer {
        Self::join_with_key(server, code, userid, None).await
    }

    /// [`join`](Self::join) sending our server's proctor key.
    pub async fn join_with_key(
        server: &url::Url,
        code: &str,
        userid: &str,
        key: Option<&str>,
    ) -> RustViewer {
        let mut cfg = ClientConfig::rtcproctor(server.clone(), userid, code);
        cfg.proctor_key = key.map(str::to_string);
        let (client, mut rx) = SignalClient::connect(cfg).await.expect("viewer connects");
        let ack = client
            .emit_with_ack(
                "join-room",
                vec![json!({"sessionid": code, "session": {"audio": true, "video": true, "oneway": true},
                    "mediaConstraints": {}, "sdpConstraints": {}, "streams": [], "extra": {}, "password": ""})],
                Duration::from_secs(10),
            )
            .await
            .expect("join ack");
        assert_eq!(ack, vec![json!(true)], "join-room {code}");
        client
            .emit(
                "rtc-video-proctoring",
                vec![json!({"remoteUserId": code, "sender": userid, "message": {
                    "newParticipationRequest": true, "isOneWay": true, "isDataOnly": false,
                    "localPeerSdpConstraints": {"OfferToReceiveAudio": true, "OfferToReceiveVideo": true},
                    "remotePeerSdpConstraints": {"OfferToReceiveAudio": true, "OfferToReceiveVideo": true}}})],
            )
            .await
            .expect("join request");

        let (seen_tx, seen) = mpsc::channel(1024);
        let (pli, mut pli_rx) = mpsc::channel::<()>(8);
        let pc_slot: Arc<tokio::sync::Mutex<Option<Arc<dyn PeerConnection>>>> = Arc::default();
        let video_track: Arc<tokio::sync::Mutex<Option<Arc<dyn TrackRemote>>>> = Arc::default();
        {
            let video_track = video_track.clone();
            tokio::spawn(async move {
                while pli_rx.recv().await.is_some() {
                    if let Some(t) = video_track.lock().await.clone() {
                        let ssrc = t.ssrcs().await.first().copied().unwrap_or(0);
                        let _ = t
                            .write_rtcp(vec![Box::new(PictureLossIndication {
                                sender_ssrc: 0,
                                media_ssrc: ssrc,
                            })])
                            .await;
                    }
                }
            });
        }
        let me = userid.to_string();
        let signal = client.clone();
        let slot = pc_slot.clone();
        let student_id: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let student_slot = student_id.clone();
        tokio::spawn(async move {
            let mut student: Option<String> = None;
            while let Some(ev) = rx.recv().await {
                let ClientEvent::Event { name, args } = ev else {
                    break;
                };
                if name != "rtc-video-proctoring" {
                    let _ = seen_tx.send(Seen::Signal(name, args)).await;
                    continue;
                }
                let env = &args[0];
                if env["remoteUserId"] != json!(me) {
                    continue;
                }
                let sender = env["sender"].as_str().unwrap_or_default().to_string();
                let msg = &env["message"];
                if msg["type"] == "offer" {
                    student = Some(sender.clone());
                    if let Ok(mut s) = student_slot.lock() {
                        *s = Some(sender.clone());
                    }
                    let pc = answer(
                        &signal,
                        &me,
                        &sender,
                        msg["sdp"].as_str().unwrap_or_default(),
                        seen_tx.clone(),
                        video_track.clone(),
                    )
                    .await;
                    *slot.lock().await = Some(pc);
                } else if msg.get("candidate").is_some()
                    && student.as_deref() == Some(&sender)
                    && let Some(pc) = slot.lock().await.clone()
                {
                    let init = RTCIceCandidateInit {
                        candidate: msg["candidate"].as_str().unwrap_or_default().to_string(),
                        sdp_mid: msg["sdpMid"].as_str().map(str::to_string),
                        sdp_mline_index: msg["sdpMLineIndex"].as_u64().map(|i| i as u16),
                        ..Default::default()
                    };
                    let _ = pc.add_ice_candidate(init).await;
                }
            }
        });
        RustViewer {
            client,
            userid: userid.to_string(),
            seen,
            pli,
            pc: pc_slot,
            student: student_id,
        }
    }

    /// Ask the student for a keyframe.
    pub async fn send_pli(&self) {
        let _ = self.pli.send(()).await;
    }

    /// Leave like the library does on unload, then disconnect.
    pub async fn leave(self) {
        let student = self
            .student
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_default();
        let _ = self
            .client
            .emit(
                "rtc-video-proctoring",
                vec![json!({"remoteUserId": student, "sender": self.userid, "message": {"userLeft": true}})],
            )
            .await;
        if let Some(pc) = self.pc.lock().await.take() {
            let _ = pc.close().await;
        }
        self.client.close().await;
    }
}

async fn answer(
    signal: &SignalClient,
    me: &str,
    student: &str,
    sdp: &str,
    seen: mpsc::Sender<Seen>,
    video_track: Arc<tokio::sync::Mutex<Option<Arc<dyn TrackRemote>>>>,
) -> Arc<dyn PeerConnection> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_H264.into(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: rtcproctor::sim::peer::H264_FMTP.into(),
                    rtcp_feedback: vec![],
                },
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )
        .expect("h264");
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.into(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: String::new(),
                    rtcp_feedback: vec![],
                },
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .expect("opus");
    let registry = register_default_interceptors(Registry::new(), &mut media).expect("registry");
    let handler = Arc::new(ViewerHandler {
        signal: signal.clone(),
        me: me.to_string(),
        student: student.to_string(),
        seen,
        video_track,
    });
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .expect("viewer peer");
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    pc.set_remote_description(RTCSessionDescription::offer(sdp.to_string()).expect("offer"))
        .await
        .expect("apply offer");
    let answer = pc.create_answer(None).await.expect("answer");
    pc.set_local_description(answer)
        .await
        .expect("local answer");
    let local = pc.local_description().await.expect("local description");
    signal
        .emit(
            "rtc-video-proctoring",
            vec![json!({"remoteUserId": student, "sender": me, "message": {
                "type": "answer", "sdp": local.sdp, "remotePeerSdpConstraints": false,
                "renegotiatingPeer": false, "dontGetRemoteStream": false, "extra": {}}})],
        )
        .await
        .expect("send answer");
    pc
}

struct ViewerHandler {
    signal: SignalClient,
    me: String,
    student: String,
    seen: mpsc::Sender<Seen>,
    video_track: Arc<tokio::sync::Mutex<Option<Arc<dyn TrackRemote>>>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ViewerHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(c) = event.candidate.to_json() {
            let _ = self
                .signal
                .emit(
                    "rtc-video-proctoring",
                    vec![json!({"remoteUserId": self.student, "sender": self.me, "message": {
                        "candidate": c.candidate, "sdpMid": c.sdp_mid, "sdpMLineIndex": c.sdp_mline_index}})],
                )
                .await;
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let seen = self.seen.clone();
        if track.kind().await == RtpCodecKind::Audio {
            tokio::spawn(async move {
                while let Some(ev) = track.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(_) = ev {
                        let _ = seen.try_send(Seen::Audio);
                    }
                }
            });
            return;
        }
        *self.video_track.lock().await = Some(track.clone());
        let (au_tx, au_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || decode_loop(au_rx, seen));
        tokio::spawn(async move {
            let mut builder = SampleBuilder::new(512, H264Packet::default(), 90_000);
            while let Some(ev) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = ev {
                    builder.push(Instant::now(), p);
                    while let Some(sample) = builder.pop(Instant::now()) {
                        if au_tx.send(sample.data.to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

fn decode_loop(rx: std::sync::mpsc::Receiver<Vec<u8>>, seen: mpsc::Sender<Seen>) {
    use openh264::formats::YUVSource;
    let Ok(mut decoder) = openh264::decoder::Decoder::new() else {
        return;
    };
    while let Ok(au) = rx.recv() {
        let idr = openh264::nal_units(&au).any(|nal| {
            nal.iter()
                .skip_while(|b| **b == 0)
                .nth(1)
                .is_some_and(|h| h & 0x1F == 5)
        });
        let Ok(Some(yuv)) = decoder.decode(&au) else {
            continue;
        };
        let (w, h) = yuv.dimensions();
        let (ys, _, _) = yuv.strides();
        let marks = read_marks(yuv.y(), ys, w, h);
        if seen
            .blocking_send(Seen::Frame {
                marks,
                idr,
                width: w,
                height: h,
            })
            .is_err()
        {
            return;
        }
    }
}
