//! Wire vocabulary of RTCMultiConnection over socket.io (see
//! shared/reference/rtcmulticonnection-protocol.md §6). Event names are
//! constants here, next to their payloads, for both the server and clients.

/// The relay event name RTCProctor pages use (`msgEvent` query parameter).
pub const RTCPROCTOR_MSG_EVENT: &str = "rtc-video-proctoring";
/// The library's default relay event name when `msgEvent` is absent.
pub const DEFAULT_MSG_EVENT: &str = "RTCMultiConnection-Message";

pub const OPEN_ROOM: &str = "open-room";
pub const JOIN_ROOM: &str = "join-room";
pub const EXTRA_DATA_UPDATED: &str = "extra-data-updated";
pub const USER_CONNECTED: &str = "user-connected";
pub const USER_DISCONNECTED: &str = "user-disconnected";
pub const DISCONNECT_WITH: &str = "disconnect-with";
pub const CHECK_PRESENCE: &str = "check-presence";
pub const USERID_ALREADY_TAKEN: &str = "userid-already-taken";
/// `get-public-rooms(identifier)`: the live rooms; see "Listing live rooms"
/// below for who may ask and what the answer holds.
pub const GET_PUBLIC_ROOMS: &str = "get-public-rooms";

/// rtcproctor server → proctors watching a code: another device (another
/// userid) tried to go live on this code while it is live. Argument:
/// `{"code": "<code>"}`. A student whose code was taken first by someone
/// else keeps retrying, so proctors hear about it every few seconds until
/// they act; the stock server has no such event (the real student only sees
/// "Room not available").
pub const CODE_CONFLICT: &str = "rtcproctor-code-conflict";

/// Proctor → rtcproctor server, with an ack: disconnect whoever publishes
/// `{"code": "<code>"}` and keep that device (its userid) off this code for
/// [`RELEASE_FOR`]. The answer to a code conflict when the face on the tile
/// is not the student's: the real student's page, which keeps retrying,
/// gets the code. Needs the proctor key (not merely `--open-viewing`).
pub const RELEASE_CODE: &str = "rtcproctor-release-code";
/// How long a released device stays off the code.
pub const RELEASE_FOR: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Error strings of the stock server's acks; clients compare them verbatim.
pub const ROOM_NOT_AVAILABLE: &str = "Room not available";
pub const ROOM_FULL: &str = "Room full";
pub const INVALID_PASSWORD: &str = "Invalid password";

/// Handshake query parameter carrying the proctor key. The stock server
/// ignores unknown query parameters, so our monitor can always send it; the
/// stock student page never needs it (students only open rooms).
pub const PROCTOR_KEY_PARAM: &str = "proctorKey";

// ---------------------------------------------------------------------------
// rtcproctor's extensions to the dialect (decided once, used by the student
// page, the monitor engine and the synthetic student).
//
// One socket per (proctor, student) pair. The monitor opens one socket.io
// connection per student it watches, like RTCProctor's monitor+chat page. Two
// reasons: `extra-data-updated` fans out to every peer a socket is connected
// with, so a single proctor socket would send one student's chat to all of
// them (the stock student page would show it); and the stock server routes
// join requests by the socket's last `join-room`, which one socket per student
// makes harmless.
//
// Chat and attention stay in `extra` exactly as RTCProctor sends them
// (`{message, attention}`) so stock pages keep working. Extra fields, ignored
// by stock pages:
//
// - `msgId` (number): increases with every chat line or attention request of
//   the sender, so two identical lines in a row are both shown. Stock pages
//   dedup by text instead.
// - `attentionAck` (number): set by a proctor to the `msgId` of the student's
//   attention request it acknowledges; the student page shows it.
// - `quality` ("high" | "low"): a proctor asks for a bigger picture while it
//   has the student enlarged; the page applies constraints while any
//   proctor asks for "high".
// - `name` (string): display name of the sender, informational.
// ---------------------------------------------------------------------------

/// Extra field: per-sender sequence number of chat/attention messages.
pub const EXTRA_MSG_ID: &str = "msgId";
/// Extra field: the student's attention `msgId` a proctor acknowledges.
pub const EXTRA_ATTENTION_ACK: &str = "attentionAck";
/// Extra field: requested picture quality, "high" or "low".
pub const EXTRA_QUALITY: &str = "quality";
/// Extra field: display name of the sender.
pub const EXTRA_NAME: &str = "name";

// ---------------------------------------------------------------------------
// Listing live rooms (how a monitor finds students who are not on its roster).
//
// The event is the stock server's `get-public-rooms`: the client emits it with
// one argument, a non-empty `identifier` string, and an ack. The answer is
// `[rooms]`, each room `{maxParticipantsAllowed, owner, participants, extra,
// session, sessionid, isRoomFull, isPasswordProtected}`, or `[null, reason]`.
//
// - Our server answers only sockets that connected with the proctor key (or
//   any socket when it runs with `--open-viewing`); everyone else gets
//   `[null, LISTING_NEEDS_PROCTOR_KEY]`, so a student never learns another
//   student's code. For a proctor it lists every live room (its owner is
//   connected), whatever identifier the room was opened with: a proctor may
//   view every room anyway, and RTCProctor's student page opens rooms with
//   an empty identifier. The answer is bounded: at most
//   `Limits::max_listed_rooms` rooms and about `Limits::max_payload` bytes,
//   in code order; the rest is left out.
// - The stock RTCMultiConnection-Server 1.3.3 answers anyone, and lists only
//   rooms opened with that very identifier (`open-room {identifier}`, from
//   the library's `connection.publicRoomIdentifier`). RTCProctor's student
//   page leaves it empty (the library default), so its rooms are never
//   listed there: against the stock server a monitor discovers only students
//   whose page sets `connection.publicRoomIdentifier =
//   PUBLIC_ROOM_IDENTIFIER` (at the cost that anyone connected to that server
//   can list their codes; the stock server has no access control).
// - The monitor asks with [`PUBLIC_ROOM_IDENTIFIER`] on one control socket,
//   as often as it asks for off-air students' rooms.
// ---------------------------------------------------------------------------

/// The identifier a monitor lists with (and a page must open with for the
/// stock server to list its room).
pub const PUBLIC_ROOM_IDENTIFIER: &str = "rtcproctor";
/// The stock server's answer to `get-public-rooms` without an identifier.
pub const PUBLIC_IDENTIFIER_MISSING: &str = "publicRoomIdentifier is required";
/// `get-public-rooms` from a socket that may not view.
pub const LISTING_NEEDS_PROCTOR_KEY: &str = "Listing rooms needs the proctor key (printed by `rtcproctor serve`; pass it with --proctor-key)";

/// The stream codes of a `get-public-rooms` answer (the rooms' `sessionid`s),
/// or the server's reason when it refused.
pub fn listed_codes(ack: &[Value]) -> Result<Vec<String>, String> {
    match ack.first() {
        Some(Value::Array(rooms)) => Ok(rooms
            .iter()
            .filter_map(|r| r.get("sessionid").and_then(Value::as_str))
            .map(str::to_string)
            .collect()),
        _ => Err(ack
            .get(1)
            .and_then(Value::as_str)
            .unwrap_or("the server did not list its rooms")
            .to_string()),
    }
}

// ---------------------------------------------------------------------------
// Further wire names and payloads (server and client side).
// ---------------------------------------------------------------------------

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Sent by the stock server to the new owner when a room's owner leaves a
/// room that is not closed with it (not used by one-way rooms).
pub const SET_IS_INITIATOR_TRUE: &str = "set-isInitiator-true";
/// Engine-level disconnect, as seen by socket.io handlers.
pub const DISCONNECT: &str = "disconnect";

/// Handshake query parameter: the caller's userid.
pub const QUERY_USERID: &str = "userid";
/// Handshake query parameter: the room opened or joined at connect time.
pub const QUERY_SESSIONID: &str = "sessionid";
/// Handshake query parameter: the relay event name of this socket.
pub const QUERY_MSG_EVENT: &str = "msgEvent";
/// Handshake query parameter: the caller's initial extra (JSON).
pub const QUERY_EXTRA: &str = "extra";
/// Handshake query parameter: room capacity when this socket opens a room.
pub const QUERY_MAX_PARTICIPANTS: &str = "maxParticipantsAllowed";
/// Handshake query parameter: close the room when its owner leaves.
pub const QUERY_AUTO_CLOSE: &str = "autoCloseEntireSession";

/// Room capacity when the handshake does not name one (the stock default).
pub const DEFAULT_MAX_PARTICIPANTS: usize = 1000;

/// The handshake query of one socket, as RTCMultiConnection sends it
/// (protocol notes §6.2). Unknown parameters are ignored, as the stock
/// server does.
#[derive(Debug, Clone, PartialEq)]
pub struct HandshakeQuery {
    /// `None` when the client sent no userid (the server then invents one).
    pub userid: Option<String>,
    pub sessionid: Option<String>,
    /// The relay event name; [`DEFAULT_MSG_EVENT`] when absent or empty.
    pub msg_event: String,
    /// Parsed `extra`; `{}` when absent or not JSON (as the stock server).
    pub extra: Value,
    pub max_participants: usize,
    pub auto_close: bool,
    /// The proctor key ([`PROCTOR_KEY_PARAM`]), when given.
    pub proctor_key: Option<String>,
}

impl HandshakeQuery {
    /// Parse a URL query string (`a=b&c=d`, percent-encoded).
    pub fn parse(query: &str) -> HandshakeQuery {
        let mut q = HandshakeQuery {
            userid: None,
            sessionid: None,
            msg_event: DEFAULT_MSG_EVENT.to_string(),
            extra: Value::Object(Default::default()),
            max_participants: DEFAULT_MAX_PARTICIPANTS,
            auto_close: false,
            proctor_key: None,
        };
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let non_empty = || (!v.is_empty()).then(|| v.to_string());
            match k.as_ref() {
                QUERY_USERID => q.userid = non_empty(),
                QUERY_SESSIONID => q.sessionid = non_empty(),
                QUERY_MSG_EVENT => {
                    if let Some(e) = non_empty() {
                        q.msg_event = e;
                    }
                }
                QUERY_EXTRA => {
                    q.extra = serde_json::from_str(&v).unwrap_or(Value::Object(Default::default()))
                }
                QUERY_MAX_PARTICIPANTS => {
                    q.max_participants = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .unwrap_or(DEFAULT_MAX_PARTICIPANTS)
                }
                QUERY_AUTO_CLOSE => q.auto_close = v == "true",
                PROCTOR_KEY_PARAM => q.proctor_key = non_empty(),
                _ => {}
            }
        }
        q
    }
}

/// The argument of `open-room` and `join-room` (the fields the server uses;
/// the rest, such as media constraints, is informational).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct RoomRequest {
    pub sessionid: String,
    #[serde(default)]
    pub session: Value,
    #[serde(default)]
    pub extra: Value,
    #[serde(default)]
    pub password: Option<Value>,
    #[serde(default)]
    pub identifier: Option<Value>,
}

impl RoomRequest {
    /// The password as the stock server compares it: absent, null or empty
    /// means none.
    pub fn password(&self) -> Option<String> {
        match &self.password {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    /// One-way or broadcast sessions close with their owner.
    pub fn is_one_way(&self) -> bool {
        let flag = |k: &str| self.session.get(k).and_then(Value::as_bool) == Some(true);
        flag("oneway") || flag("broadcast")
    }
}

/// The relay envelope `{remoteUserId, message, sender}` (protocol notes
/// §6.5.1). The server adds `extra` (the sender's current extra) when it
/// relays; other fields are kept as they are.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Envelope {
    #[serde(rename = "remoteUserId")]
    pub remote_user_id: String,
    pub message: Value,
    pub sender: String,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

impl Envelope {
    /// A join request (`message.newParticipationRequest`).
    pub fn is_join_request(&self) -> bool {
        self.message
            .get("newParticipationRequest")
            .and_then(Value::as_bool)
            == Some(true)
    }

    /// A leave notice (`message.userLeft`), which does not connect peers.
    pub fn is_user_left(&self) -> bool {
        self.message
            .get("userLeft")
            .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
    }
}

/// One ICE server in the form the browser's RTCPeerConnection takes it
/// (also what `/config.json` hands to the student page).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServer {
    /// ICE servers from `--ice URL` (repeatable) and `--turn-user/--turn-pass`:
    /// one entry per URL; `turn:`/`turns:` URLs carry the credentials.
    pub fn from_cli(
        urls: &[String],
        user: Option<&str>,
        pass: Option<&str>,
    ) -> Result<Vec<IceServer>, String> {
        let mut out = Vec::new();
        for url in urls {
            let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
            let turn = match scheme.as_str() {
                "stun" | "stuns" => false,
                "turn" | "turns" => true,
                _ => {
                    return Err(format!(
                        "--ice {url:?}: expected a stun:, stuns:, turn: or turns: URL, e.g. stun:stun.example.org:3478"
                    ));
                }
            };
            if url.len() <= scheme.len() + 1 {
                return Err(format!("--ice {url:?}: the URL has no host"));
            }
            if turn && (user.is_none() || pass.is_none()) {
                return Err(format!(
                    "--ice {url:?}: TURN servers need credentials, add --turn-user USER --turn-pass PASS"
                ));
            }
            out.push(IceServer {
                urls: vec![url.clone()],
                username: turn.then(|| user.unwrap_or_default().to_string()),
                credential: turn.then(|| pass.unwrap_or_default().to_string()),
            });
        }
        Ok(out)
    }
}

/// The body of `/config.json`, read by the student page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct PageConfig {
    #[serde(rename = "iceServers")]
    pub ice_servers: Vec<IceServer>,
}

// Ack reasons of rtcproctor's own rules (the stock server has none of these;
// stock pages show the text as it is).

/// `join-room` from a socket without the proctor key.
pub const NEEDS_PROCTOR_KEY: &str =
    "Viewing needs the proctor key (printed by `rtcproctor serve`; pass it with --proctor-key)";
/// `join-room` from a socket whose proctor key is wrong.
pub const WRONG_PROCTOR_KEY: &str =
    "Wrong proctor key: check the key printed by `rtcproctor serve`";
/// Too many failed attempts from one client address.
pub const TOO_MANY_FAILURES: &str =
    "Too many failed attempts from your address: wait a minute and try again";
/// `open-room` for a code that is not on the server's roster.
pub const NOT_ON_ROSTER: &str =
    "This stream code is not on the exam roster: check the code you were given";
/// `open-room` from a device a proctor released the code from.
pub const RELEASED_BY_PROCTOR: &str =
    "A proctor took this code away from this device: ask your proctor what to do";
/// `rtcproctor-release-code` from a socket without the proctor key.
pub const RELEASE_NEEDS_KEY: &str = "Releasing a code needs the proctor key";
/// A request whose payload is not what the event needs.
pub const MALFORMED_REQUEST: &str = "Malformed request";
/// Too many events from one socket in a short time.
pub const TOO_MANY_MESSAGES: &str = "Too many messages: slow down";

/// The ICE candidate of a trickled candidate message
/// `{candidate, sdpMid, sdpMLineIndex}` (None for an empty end-of-candidates).
pub fn candidate_init(
    message: &Value,
) -> Option<rtc::peer_connection::transport::RTCIceCandidateInit> {
    let candidate = message.get("candidate")?.as_str()?.to_string();
    if candidate.is_empty() {
        return None;
    }
    Some(rtc::peer_connection::transport::RTCIceCandidateInit {
        candidate,
        sdp_mid: message
            .get("sdpMid")
            .and_then(Value::as_str)
            .map(str::to_string),
        sdp_mline_index: message
            .get("sdpMLineIndex")
            .and_then(Value::as_u64)
            .map(|i| i as u16),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_query_as_rtcmulticonnection_sends_it() {
        let q = HandshakeQuery::parse(
            "userid=stuUser1&sessionid=room1&msgEvent=rtc-video-proctoring&socketCustomEvent=x\
             &autoCloseEntireSession=false&maxParticipantsAllowed=1000&extra=%7B%22a%22%3A1%7D\
             &EIO=4&transport=polling&t=abc&proctorKey=k%20y",
        );
        assert_eq!(q.userid.as_deref(), Some("stuUser1"));
        assert_eq!(q.sessionid.as_deref(), Some("room1"));
        assert_eq!(q.msg_event, RTCPROCTOR_MSG_EVENT);
        assert_eq!(q.extra, serde_json::json!({"a": 1}));
        assert_eq!(q.max_participants, 1000);
        assert!(!q.auto_close);
        assert_eq!(q.proctor_key.as_deref(), Some("k y"));
    }

    #[test]
    fn handshake_query_defaults() {
        let q = HandshakeQuery::parse("extra=not-json&maxParticipantsAllowed=zero&msgEvent=");
        assert_eq!(q.userid, None);
        assert_eq!(q.msg_event, DEFAULT_MSG_EVENT);
        assert_eq!(q.extra, serde_json::json!({}));
        assert_eq!(q.max_participants, DEFAULT_MAX_PARTICIPANTS);
    }

    #[test]
    fn room_request_and_envelope() {
        let r: RoomRequest = serde_json::from_value(serde_json::json!({
            "sessionid": "room1", "session": {"audio": true, "video": true, "oneway": true},
            "extra": {}, "password": "", "streams": []
        }))
        .unwrap();
        assert!(r.is_one_way());
        assert_eq!(r.password(), None);
        let e: Envelope = serde_json::from_value(serde_json::json!({
            "remoteUserId": "room1", "sender": "m",
            "message": {"newParticipationRequest": true, "isOneWay": true}
        }))
        .unwrap();
        assert!(e.is_join_request());
        assert!(!e.is_user_left());
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!(back["remoteUserId"], "room1");
    }

    #[test]
    fn listed_codes_read_the_stock_answer() {
        let ack = vec![serde_json::json!([
            {"sessionid": "a", "owner": "u1", "participants": ["u1"]},
            {"sessionid": "b", "owner": "u2", "participants": ["u2"]},
            {"owner": "broken"}
        ])];
        assert_eq!(listed_codes(&ack), Ok(vec!["a".into(), "b".into()]));
        let refused = vec![Value::Null, serde_json::json!(PUBLIC_IDENTIFIER_MISSING)];
        assert_eq!(
            listed_codes(&refused),
            Err(PUBLIC_IDENTIFIER_MISSING.into())
        );
        assert!(listed_codes(&[]).is_err());
    }

    #[test]
    fn ice_servers_from_cli() {
        let urls = vec![
            "stun:s.example:3478".to_string(),
            "turn:t.example:3478".to_string(),
        ];
        assert!(IceServer::from_cli(&urls, None, None).is_err());
        let ice = IceServer::from_cli(&urls, Some("u"), Some("p")).unwrap();
        assert_eq!(ice[0].username, None);
        assert_eq!(ice[1].credential.as_deref(), Some("p"));
        assert!(IceServer::from_cli(&["http://x".into()], None, None).is_err());
        let json = serde_json::to_string(&PageConfig { ice_servers: ice }).unwrap();
        assert!(json.starts_with("{\"iceServers\":[{\"urls\":[\"stun:s.example:3478\"]}"));
    }
}
