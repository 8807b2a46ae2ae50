//! One synthetic student: signalling and peers, speaking exactly like the
//! RTCProctor student page (protocol notes §2, §6.8), plus the demo
//! schedules (chat, attention, dropping off).
//!
//! The loop, until cancelled:
//! 1. Connect to the server (query as RTCMultiConnection sends it, relay
//!    event "rtc-video-proctoring") and `open-room` with the code and
//!    `session {audio, video, oneway}`. "Room not available" (an old socket
//!    of ours still holds the code) is retried with backoff.
//! 2. For each proctor's `newParticipationRequest`, offer a new peer
//!    ([`Peer`]); apply its answer and candidates; forget it on `userLeft`,
//!    `user-disconnected` or a failed connection (then emit `disconnect-with`
//!    as the library does).
//! 3. On a scheduled drop-off, or when the server connection is lost, close
//!    every peer and the socket and go back to 1 (same userid; a fresh one
//!    after `userid-already-taken`), so proctors see the student off-air and
//!    live again.
//!
//! The video thread keeps running across reconnects, so the frame counter
//! keeps counting: a gap in it is the time the student was away.

use std::collections::HashMap;
use std::time::Duration;

use rtc::peer_connection::configuration::RTCIceServer;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::peer::{Peer, PeerEvent, PeerSetup};
use super::source::{VideoSource, unix_ms};
use super::tone::ToneLoop;
use crate::Result;
use crate::signal::client::{Backoff, ClientConfig, ClientEvent, ClientTls, SignalClient};
use crate::signal::protocol::{
    EXTRA_ATTENTION_ACK, EXTRA_DATA_UPDATED, EXTRA_MSG_ID, EXTRA_NAME, OPEN_ROOM,
    RTCPROCTOR_MSG_EVENT, USER_DISCONNECTED, USERID_ALREADY_TAKEN,
};

/// Everything one synthetic student needs.
#[derive(Debug, Clone)]
pub struct StudentConfig {
    /// The server as RTCMultiConnection's socketURL, e.g. http://127.0.0.1:8443/
    pub server: url::Url,
    pub tls: ClientTls,
    /// The stream code (room id).
    pub code: String,
    /// Drawn into the picture and sent as `extra.name`.
    pub name: String,
    /// Our userid on the server; None: a random one like the library's.
    pub userid: Option<String>,
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// Camera-like texture and noise (benchmarks): see `Pattern::with_texture`.
    pub texture: bool,
    /// Send an Opus track besides the video, like the page: silence, or
    /// with `tone` a pulsing tone at that frequency (Hz).
    pub audio: bool,
    pub tone: Option<f32>,
    /// `open-room`'s `identifier`: empty like RTCProctor's page; set, the
    /// stock server lists the room under it (`get-public-rooms`).
    pub identifier: String,
    pub ice_servers: Vec<RTCIceServer>,
    /// Local UDP addresses for ICE ("0.0.0.0:0", or "127.0.0.1:0" in tests).
    pub udp_bind: Vec<String>,
    pub schedule: Schedule,
}

impl StudentConfig {
    /// A student as RTCProctor's page configures it: 320x240 at 5 fps with
    /// audio, the flat picture, verified TLS, no ICE servers, UDP on every
    /// interface, no schedule, a random userid. Start from this and set
    /// fields: callers then keep compiling when fields are added.
    pub fn new(server: url::Url, code: &str, name: &str) -> StudentConfig {
        StudentConfig {
            server,
            tls: ClientTls::Verify,
            code: code.to_string(),
            name: name.to_string(),
            userid: None,
            width: 320,
            height: 240,
            fps: 5,
            texture: false,
            audio: true,
            tone: None,
            identifier: String::new(),
            ice_servers: Vec::new(),
            udp_bind: vec!["0.0.0.0:0".to_string()],
            schedule: Schedule::default(),
        }
    }
}

/// Scripted behaviour for demos and tests.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Send a chat line this often.
    pub chat_every: Option<Duration>,
    /// Raise attention this often.
    pub attention_every: Option<Duration>,
    /// Drop off (close everything) this often...
    pub drop_every: Option<Duration>,
    /// ...and come back after this long.
    pub drop_for: Duration,
    /// When in its period each event first fires, as a fraction in (0, 1]
    /// (0 means 1: a full period after going live). Spreads many students.
    pub phase: f64,
}

/// What a student reports (printed by `rtcproctor student`, watched by tests
/// and the demo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StudentEvent {
    /// The room is open: proctors can watch.
    Live {
        code: String,
    },
    /// Not live (connection lost, dropped off on schedule, or refused).
    Offline {
        code: String,
        reason: String,
    },
    /// A proctor asked to watch; an offer went out.
    ViewerJoined {
        code: String,
        viewer: String,
    },
    /// Media flows to that proctor.
    ViewerConnected {
        code: String,
        viewer: String,
    },
    ViewerLeft {
        code: String,
        viewer: String,
    },
    /// We sent a chat line or an attention request.
    Sent {
        code: String,
        attention: bool,
        msg_id: u64,
        text: String,
    },
    /// A proctor's chat line, attention or acknowledgement (`extra`).
    FromProctor {
        code: String,
        viewer: String,
        extra: Value,
    },
}

const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Run one student until `cancel` fires.
pub async fn run(
    cfg: StudentConfig,
    cancel: CancellationToken,
    events: Option<mpsc::Sender<StudentEvent>>,
) -> Result<()> {
    let video = VideoSource::start(cfg.width, cfg.height, cfg.fps, &cfg.name, cfg.texture)?;
    let tone = match cfg.tone.filter(|_| cfg.audio) {
        Some(hz) => Some(ToneLoop::new(hz)?),
        None => None,
    };
    let mut student = Student {
        tone,
        userid: cfg.userid.clone().unwrap_or_else(new_userid),
        extra: json!({ EXTRA_NAME: cfg.name }),
        msg_id: 0,
        peers: HashMap::new(),
        last_from: HashMap::new(),
        events,
        cfg,
        video,
    };
    let mut backoff = Backoff::default();
    while !cancel.is_cancelled() {
        let next = student.session(&cancel, &mut backoff).await;
        student.close_peers().await;
        let pause = match next {
            Next::Stop => break,
            Next::Retry(reason) => {
                student.report_offline(reason).await;
                backoff.next_delay()
            }
            Next::Away(reason, how_long) => {
                student.report_offline(reason).await;
                how_long
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    Ok(())
}

/// What to do after a session ends.
enum Next {
    Stop,
    /// Reconnect after a backoff delay.
    Retry(String),
    /// Stay away this long (scheduled drop-off), then reconnect.
    Away(String, Duration),
}

struct Student {
    cfg: StudentConfig,
    userid: String,
    extra: Value,
    msg_id: u64,
    video: VideoSource,
    /// The tone (`--tone`); None: silence.
    tone: Option<ToneLoop>,
    peers: HashMap<String, Peer>,
    /// Last `extra` seen per proctor: the server repeats updates.
    last_from: HashMap<String, Value>,
    events: Option<mpsc::Sender<StudentEvent>>,
}

impl Student {
    /// Connect, open the room and serve proctors until something ends it.
    async fn session(&mut self, cancel: &CancellationToken, backoff: &mut Backoff) -> Next {
        let client_cfg = ClientConfig {
            url: self.cfg.server.clone(),
            userid: self.userid.clone(),
            msg_event: RTCPROCTOR_MSG_EVENT.to_string(),
            session_id: self.cfg.code.clone(),
            extra: self.extra.clone(),
            proctor_key: None,
            tls: self.cfg.tls.clone(),
        };
        let (client, mut rx) = tokio::select! {
            _ = cancel.cancelled() => return Next::Stop,
            r = SignalClient::connect(client_cfg) => match r {
                Ok(c) => c,
                Err(e) => return Next::Retry(e.to_string()),
            },
        };
        // While waiting for the open-room ack, watch the events: the stock
        // server answers a userid it still holds with `userid-already-taken`
        // and then never acks anything on that socket.
        let open = client.emit_with_ack(OPEN_ROOM, vec![self.open_room_args()], ACK_TIMEOUT);
        tokio::pin!(open);
        let mut early = Vec::new();
        let opened = loop {
            tokio::select! {
                r = &mut open => break r,
                ev = rx.recv() => match ev {
                    Some(ClientEvent::Event { name, .. }) if name == USERID_ALREADY_TAKEN => {
                        self.userid = new_userid();
                        client.close().await;
                        return Next::Retry("userid already taken; retrying with a new one".into());
                    }
                    Some(ClientEvent::Event { name, args }) => early.push((name, args)),
                    Some(ClientEvent::Disconnected { reason }) => return Next::Retry(reason),
                    None => return Next::Retry("connection task ended".into()),
                },
            }
        };
        match opened {
            Ok(ack) if ack.first() == Some(&Value::Bool(true)) => {}
            Ok(ack) => {
                client.close().await;
                let why = ack.get(1).and_then(Value::as_str).unwrap_or("refused");
                return Next::Retry(format!("cannot open room \"{}\": {why}", self.cfg.code));
            }
            Err(e) => {
                client.close().await;
                return Next::Retry(e.to_string());
            }
        }
        backoff.reset();
        self.report(StudentEvent::Live {
            code: self.cfg.code.clone(),
        })
        .await;

        let (peer_tx, mut peer_rx) = mpsc::channel(64);
        for (name, args) in early {
            self.on_event(&client, &name, &args, &peer_tx).await;
        }
        let phase = self.cfg.schedule.phase;
        let mut chat = ticker(self.cfg.schedule.chat_every, phase);
        let mut attention = ticker(self.cfg.schedule.attention_every, phase);
        let mut drop_off = ticker(self.cfg.schedule.drop_every, phase);
        let next = loop {
            tokio::select! {
                _ = cancel.cancelled() => break Next::Stop,
                ev = rx.recv() => match ev {
                    Some(ClientEvent::Event { name, args }) => {
                        if name == USERID_ALREADY_TAKEN {
                            self.userid = new_userid();
                            break Next::Retry("userid already taken; retrying with a new one".into());
                        }
                        self.on_event(&client, &name, &args, &peer_tx).await;
                    }
                    Some(ClientEvent::Disconnected { reason }) => break Next::Retry(reason),
                    None => break Next::Retry("connection task ended".into()),
                },
                Some(pe) = peer_rx.recv() => self.on_peer_event(&client, pe).await,
                _ = tick(&mut chat) => self.send_chat(&client, false).await,
                _ = tick(&mut attention) => self.send_chat(&client, true).await,
                _ = tick(&mut drop_off) => {
                    break Next::Away("dropped off on schedule".into(), self.cfg.schedule.drop_for);
                }
            }
        };
        self.close_peers().await;
        client.close().await;
        next
    }

    async fn on_event(
        &mut self,
        client: &SignalClient,
        name: &str,
        args: &[Value],
        peer_tx: &mpsc::Sender<PeerEvent>,
    ) {
        match name {
            RTCPROCTOR_MSG_EVENT => {
                let Some(env) = args.first() else { return };
                if env.get("remoteUserId").and_then(Value::as_str) != Some(&self.userid) {
                    return;
                }
                let Some(sender) = env.get("sender").and_then(Value::as_str) else {
                    return;
                };
                let sender = sender.to_string();
                let message = env.get("message").cloned().unwrap_or(Value::Null);
                self.on_relay(client, sender, env, &message, peer_tx).await;
            }
            USER_DISCONNECTED => {
                if let Some(viewer) = args.first().and_then(Value::as_str) {
                    self.drop_peer(viewer).await;
                }
            }
            EXTRA_DATA_UPDATED => {
                let (Some(viewer), Some(extra)) =
                    (args.first().and_then(Value::as_str), args.get(1))
                else {
                    return;
                };
                if viewer == self.userid || self.last_from.get(viewer) == Some(extra) {
                    return;
                }
                self.last_from.insert(viewer.to_string(), extra.clone());
                let has_content = ["message", "attention", EXTRA_ATTENTION_ACK]
                    .iter()
                    .any(|k| extra.get(k).is_some_and(|v| v != "" && !v.is_null()));
                if has_content {
                    self.report(StudentEvent::FromProctor {
                        code: self.cfg.code.clone(),
                        viewer: viewer.to_string(),
                        extra: extra.clone(),
                    })
                    .await;
                }
            }
            _ => {}
        }
    }

    async fn on_relay(
        &mut self,
        client: &SignalClient,
        sender: String,
        envelope: &Value,
        message: &Value,
        peer_tx: &mpsc::Sender<PeerEvent>,
    ) {
        if message.get("newParticipationRequest") == Some(&Value::Bool(true)) {
            // A proctor (re)joins: a fresh peer, whatever existed before.
            self.drop_peer(&sender).await;
            let setup = PeerSetup {
                client: client.clone(),
                msg_event: RTCPROCTOR_MSG_EVENT.to_string(),
                me: self.userid.clone(),
                viewer: sender.clone(),
                request: envelope.clone(),
                extra: self.extra.clone(),
                ice_servers: self.cfg.ice_servers.clone(),
                udp_bind: self.cfg.udp_bind.clone(),
                audio: self.cfg.audio,
                tone: None,
            }
            .with_tone(self.tone.as_ref());
            match Peer::offer(setup, &self.video, peer_tx.clone()).await {
                Ok(peer) => {
                    self.peers.insert(sender.clone(), peer);
                    self.report(StudentEvent::ViewerJoined {
                        code: self.cfg.code.clone(),
                        viewer: sender,
                    })
                    .await;
                }
                Err(e) => {
                    tracing::warn!("student {}: cannot offer to {sender}: {e}", self.cfg.code)
                }
            }
        } else if message.get("type").and_then(Value::as_str) == Some("answer") {
            let sdp = message
                .get("sdp")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(peer) = self.peers.get_mut(&sender)
                && let Err(e) = peer.on_answer(sdp).await
            {
                tracing::warn!("student {}: bad answer from {sender}: {e}", self.cfg.code);
                self.drop_peer(&sender).await;
            }
        } else if message.get("candidate").is_some() {
            if let Some(peer) = self.peers.get_mut(&sender)
                && let Err(e) = peer.on_candidate(message).await
            {
                tracing::debug!("student {}: candidate from {sender}: {e}", self.cfg.code);
            }
        } else if message.get("userLeft") == Some(&Value::Bool(true)) {
            self.drop_peer(&sender).await;
        }
    }

    async fn on_peer_event(&mut self, client: &SignalClient, event: PeerEvent) {
        match event {
            PeerEvent::Connected { viewer } => {
                if self.peers.contains_key(&viewer) {
                    self.report(StudentEvent::ViewerConnected {
                        code: self.cfg.code.clone(),
                        viewer,
                    })
                    .await;
                }
            }
            PeerEvent::Failed { viewer } => {
                if self.peers.contains_key(&viewer) {
                    // As the library does when a peer fails or closes.
                    let _ = client
                        .emit(
                            crate::signal::protocol::DISCONNECT_WITH,
                            vec![json!(viewer)],
                        )
                        .await;
                    self.drop_peer(&viewer).await;
                }
            }
        }
    }

    /// A chat line or an attention request, as the student page sends them
    /// (plus our `msgId`).
    async fn send_chat(&mut self, client: &SignalClient, attention: bool) {
        self.msg_id += 1;
        let text = if attention {
            let secs = unix_ms() / 1000 % 86_400;
            format!(
                "<span style='color:red;'>Attn Request: {:02}:{:02}:{:02}</span>",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            )
        } else {
            const LINES: [&str; 4] = [
                "Hello, can you see me?",
                "I have finished question",
                "May I use scratch paper?",
                "My connection is slow, sorry.",
            ];
            let line = LINES[(self.msg_id as usize - 1) % LINES.len()];
            format!("{line} ({})", self.msg_id)
        };
        let (message, attn) = if attention {
            ("", text.as_str())
        } else {
            (text.as_str(), "")
        };
        if let Some(obj) = self.extra.as_object_mut() {
            obj.insert("message".into(), json!(message));
            obj.insert("attention".into(), json!(attn));
            obj.insert(EXTRA_MSG_ID.into(), json!(self.msg_id));
        }
        if let Err(e) = client
            .emit(EXTRA_DATA_UPDATED, vec![self.extra.clone()])
            .await
        {
            tracing::debug!("student {}: cannot send chat: {e}", self.cfg.code);
            return;
        }
        self.report(StudentEvent::Sent {
            code: self.cfg.code.clone(),
            attention,
            msg_id: self.msg_id,
            text,
        })
        .await;
    }

    fn open_room_args(&self) -> Value {
        json!({
            "sessionid": self.cfg.code,
            "session": {"audio": true, "video": true, "oneway": true},
            "mediaConstraints": {
                "video": {
                    "width": {"ideal": self.cfg.width},
                    "height": {"ideal": self.cfg.height},
                    "frameRate": self.cfg.fps,
                },
                "audio": self.cfg.audio,
            },
            "sdpConstraints": {
                "mandatory": {"OfferToReceiveAudio": false, "OfferToReceiveVideo": false},
                "optional": [{"VoiceActivityDetection": false}],
            },
            "streams": [{"streamid": format!("{}-stream", self.userid), "tracks": if self.cfg.audio { 2 } else { 1 }}],
            "extra": self.extra,
            "identifier": self.cfg.identifier,
            "password": "",
        })
    }

    async fn drop_peer(&mut self, viewer: &str) {
        if let Some(peer) = self.peers.remove(viewer) {
            peer.close().await;
            self.last_from.remove(viewer);
            self.report(StudentEvent::ViewerLeft {
                code: self.cfg.code.clone(),
                viewer: viewer.to_string(),
            })
            .await;
        }
    }

    async fn close_peers(&mut self) {
        let viewers: Vec<String> = self.peers.keys().cloned().collect();
        for v in viewers {
            self.drop_peer(&v).await;
        }
    }

    async fn report_offline(&self, reason: String) {
        tracing::info!("student {}: offline: {reason}", self.cfg.code);
        self.report(StudentEvent::Offline {
            code: self.cfg.code.clone(),
            reason,
        })
        .await;
    }

    async fn report(&self, event: StudentEvent) {
        tracing::debug!("{event:?}");
        if let Some(tx) = &self.events {
            let _ = tx.send(event).await;
        }
    }
}

/// A random userid like RTCMultiConnection's (base-36 of random numbers).
fn new_userid() -> String {
    let mut n: u128 = rand::random::<u128>() >> 24;
    let mut s = String::new();
    while n > 0 {
        let d = (n % 36) as u32;
        s.push(char::from_digit(d, 36).unwrap_or('0'));
        n /= 36;
    }
    s
}

fn ticker(every: Option<Duration>, phase: f64) -> Option<tokio::time::Interval> {
    let phase = if phase > 0.0 && phase <= 1.0 {
        phase
    } else {
        1.0
    };
    every.filter(|d| !d.is_zero()).map(|d| {
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d.mul_f64(phase), d);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    })
}

/// Wait for the next tick, or forever without a schedule.
async fn tick(t: &mut Option<tokio::time::Interval>) {
    match t {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userids_look_like_the_librarys() {
        let a = new_userid();
        assert!(a.len() >= 15, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, new_userid());
    }
}
