//! One function per socket.io event. Each one checks the socket's event
//! rate, parses the payload (malformed payloads get a clear ack or a log
//! line, never a panic), asks the [`Registry`] what to do, and carries out
//! the resulting [`Effect`]s. The registry lock is never held while sending.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::ConnectInfo;
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::socket::DisconnectReason;
use socketioxide::{SendError, SocketError, SocketIo};

use super::protocol::{self as p, Envelope, HandshakeQuery, RoomRequest};
use super::rooms::{Connect, ConnectOutcome, Effect, KeyStatus, Registry, Sid, Verdict};

/// State shared by all sockets of one server.
pub struct Shared {
    pub registry: Mutex<Registry>,
    /// The key viewers must present in the handshake.
    pub proctor_key: String,
}

impl Shared {
    /// The registry; a panic in another handler does not take the server down.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key_status(&self, given: Option<&str>) -> KeyStatus {
        match given {
            None => KeyStatus::Missing,
            Some(k) if constant_time_eq(k.as_bytes(), self.proctor_key.as_bytes()) => {
                KeyStatus::Valid
            }
            Some(_) => KeyStatus::Wrong,
        }
    }
}

/// Compare without an early exit, so response time does not leak how much
/// of a guessed key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Random decimal userid for clients that send none (the stock server does
/// the same with Math.random).
fn random_userid() -> String {
    let mut b = [0u8; 8];
    rand::fill(&mut b);
    (u64::from_le_bytes(b) % 10_000_000_000_000_000).to_string()
}

/// Send `args` as the arguments of an ack (`43<id>[args...]`).
fn send_ack(ack: AckSender, args: &[Value]) {
    let r = match args {
        [] => ack.send(&[0u8; 0]),
        [a] => ack.send(a),
        [a, b] => ack.send(&(a, b)),
        [a, b, c, ..] => ack.send(&(a, b, c)),
    };
    if let Err(e) = r {
        tracing::debug!("ack not sent: {e}");
    }
}

/// A connected socket of the default namespace. None also while the server
/// shuts down: `SocketIo::get_socket` panics once the namespace is gone, and
/// the disconnect handlers that run during `close` come here.
fn live_socket(io: &SocketIo, sid: socketioxide::socket::Sid) -> Option<SocketRef> {
    io.of("/")?.get_socket(sid)
}

/// Carry out effects: emits and disconnects.
pub fn apply(io: &SocketIo, effects: Vec<Effect>) {
    for effect in effects {
        match effect {
            Effect::Emit { to, event, args } => {
                let Some(s) = live_socket(io, to) else {
                    continue;
                };
                let r = match args.as_slice() {
                    [] => s.emit(&event, &[0u8; 0]),
                    [a] => s.emit(&event, a),
                    [a, b] => s.emit(&event, &(a, b)),
                    [a, b, c, ..] => s.emit(&event, &(a, b, c)),
                };
                match r {
                    Ok(()) => {}
                    Err(SendError::Socket(SocketError::InternalChannelFull)) => tracing::warn!(
                        sid = %to, %event,
                        "dropped a message: the client reads too slowly (its send queue is full)"
                    ),
                    Err(e) => tracing::debug!(sid = %to, %event, "emit failed: {e}"),
                }
            }
            Effect::Disconnect(sid) => {
                if let Some(s) = live_socket(io, sid) {
                    s.disconnect().ok();
                }
            }
        }
    }
}

/// Count the event against the socket's rate; false = drop it.
fn admitted(shared: &Shared, s: &SocketRef, event: &str) -> bool {
    match shared.registry().admit(s.id, Instant::now()) {
        Verdict::Allow => true,
        Verdict::Drop { warn } => {
            if warn {
                tracing::warn!(sid = %s.id, %event, "dropping events: this socket sends faster than the limit");
            }
            false
        }
        Verdict::Unknown => false,
    }
}

fn client_ip(s: &SocketRef) -> IpAddr {
    s.req_parts()
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Effects for a socket that is still connecting; applied by [`on_connected`]
/// once socket.io has sent the CONNECT packet (emits need a connected socket).
#[derive(Clone)]
struct Pending(Vec<Effect>);

/// Connect middleware: register the socket (or take over its userid, or
/// refuse it) and install its handlers, including the relay under its own
/// `msgEvent` name. It runs before socket.io answers the client's CONNECT:
/// socketioxide runs the connect handler on a task spawned after that
/// answer, and a client that emits at once (RTCMultiConnection sends
/// `open-room` right after connecting) would otherwise race it and have its
/// first events dropped for want of a handler.
pub fn on_connecting(shared: &Arc<Shared>, io: &SocketIo, s: &SocketRef) {
    let query = HandshakeQuery::parse(s.req_parts().uri.query().unwrap_or(""));
    let key = shared.key_status(query.proctor_key.as_deref());
    let ip = client_ip(s);
    let outcome = shared.registry().connect(
        Connect {
            sid: s.id,
            query,
            key,
            ip,
            fallback_userid: random_userid(),
        },
        Instant::now(),
    );
    let effects = match outcome {
        ConnectOutcome::Refused { reason, effects } => {
            tracing::warn!(sid = %s.id, %ip, "refusing socket: {reason}");
            effects
        }
        ConnectOutcome::Registered {
            userid,
            msg_event,
            effects,
        } => {
            if effects.iter().any(|e| matches!(e, Effect::Disconnect(_))) {
                tracing::info!(%userid, "userid reconnected: the new socket takes over from the old one");
            }
            tracing::info!(sid = %s.id, %userid, %ip, ?key, "socket connected");
            install_handlers(shared, s, msg_event);
            effects
        }
    };
    // Effects on other sockets now; effects on this one once it is connected.
    let (mine, others): (Vec<_>, Vec<_>) = effects.into_iter().partition(|e| match e {
        Effect::Emit { to, .. } | Effect::Disconnect(to) => *to == s.id,
    });
    apply(io, others);
    s.extensions.insert(Pending(mine));
}

/// Connect handler: carry out what [`on_connecting`] left for this socket.
pub fn on_connected(io: &SocketIo, s: &SocketRef) {
    if let Some(Pending(effects)) = s.extensions.remove::<Pending>() {
        apply(io, effects);
    }
}

fn install_handlers(shared: &Arc<Shared>, s: &SocketRef, msg_event: String) {
    let sh = shared.clone();
    s.on(
        p::OPEN_ROOM,
        move |s: SocketRef, io: SocketIo, ack: AckSender, TryData(d): TryData<Value>| {
            let sh = sh.clone();
            async move { open_room(&sh, &io, &s, ack, d.ok()) }
        },
    );
    let sh = shared.clone();
    s.on(
        p::JOIN_ROOM,
        move |s: SocketRef, io: SocketIo, ack: AckSender, TryData(d): TryData<Value>| {
            let sh = sh.clone();
            async move { join_room(&sh, &io, &s, ack, d.ok()) }
        },
    );
    let sh = shared.clone();
    s.on(
        msg_event,
        move |s: SocketRef, io: SocketIo, TryData(d): TryData<Value>| {
            let sh = sh.clone();
            async move { relay(&sh, &io, &s, d.ok()) }
        },
    );
    let sh = shared.clone();
    s.on(
        p::EXTRA_DATA_UPDATED,
        move |s: SocketRef, io: SocketIo, TryData(d): TryData<Value>| {
            let sh = sh.clone();
            async move { extra_updated(&sh, &io, &s, d.ok()) }
        },
    );
    let sh = shared.clone();
    s.on(
        p::DISCONNECT_WITH,
        move |s: SocketRef, io: SocketIo, ack: AckSender, TryData(d): TryData<Value>| {
            let sh = sh.clone();
            async move { disconnect_with(&sh, &io, &s, ack, d.ok()) }
        },
    );
    let sh = shared.clone();
    s.on(
        p::RELEASE_CODE,
        move |s: SocketRef, io: SocketIo, ack: AckSender, TryData(d): TryData<Value>| {
            let sh = sh.clone();
            async move { release_code(&sh, &io, &s, ack, d.ok()) }
        },
    );
    let sh = shared.clone();
    s.on(
        p::CHECK_PRESENCE,
        move |s: SocketRef, ack: AckSender, TryData(d): TryData<Value>| {
            let sh = sh.clone();
            async move { check_presence(&sh, &s, ack, d.ok()) }
        },
    );
    let sh = shared.clone();
    s.on(
        p::GET_PUBLIC_ROOMS,
        move |s: SocketRef, ack: AckSender, TryData(d): TryData<Value>| {
            let sh = sh.clone();
            async move { public_rooms(&sh, &s, ack, d.ok()) }
        },
    );
    s.on_fallback(async |s: SocketRef, ev: socketioxide::extract::Event| {
        tracing::debug!(sid = %s.id, event = %ev.0, "ignoring an event this server does not handle");
    });
    let sh = shared.clone();
    s.on_disconnect(
        move |s: SocketRef, io: SocketIo, reason: DisconnectReason| {
            let sh = sh.clone();
            async move { on_disconnect(&sh, &io, &s, reason) }
        },
    );
}

/// Forget registered sockets that socket.io no longer knows (a client that
/// vanished while connecting never gets a disconnect callback). A socket is
/// reaped when it was missing at two sweeps in a row, so one that is just
/// connecting is left alone. Returns the sockets missing at this sweep.
pub fn reap(
    shared: &Shared,
    io: &SocketIo,
    missing_before: &[socketioxide::socket::Sid],
) -> Vec<socketioxide::socket::Sid> {
    let sids = shared.registry().sids();
    let missing: Vec<_> = sids
        .into_iter()
        .filter(|sid| live_socket(io, *sid).is_none())
        .collect();
    for sid in missing.iter().filter(|sid| missing_before.contains(sid)) {
        let effects = shared.registry().disconnect(*sid);
        tracing::info!(%sid, "reaped a socket that went away while connecting");
        apply(io, effects);
    }
    missing
}

fn open_room(sh: &Shared, io: &SocketIo, s: &SocketRef, ack: AckSender, data: Option<Value>) {
    room_request(sh, io, s, ack, data, p::OPEN_ROOM, Registry::open_room);
}

fn join_room(sh: &Shared, io: &SocketIo, s: &SocketRef, ack: AckSender, data: Option<Value>) {
    room_request(sh, io, s, ack, data, p::JOIN_ROOM, Registry::join_room);
}

/// A registry operation on a room request: ack arguments and effects.
type RoomOp = fn(&mut Registry, Sid, RoomRequest, Instant) -> (Vec<Value>, Vec<Effect>);

/// What `open-room` and `join-room` share: rate check, request parsing,
/// the registry's verdict, its effects, then the ack.
fn room_request(
    sh: &Shared,
    io: &SocketIo,
    s: &SocketRef,
    ack: AckSender,
    data: Option<Value>,
    event: &str,
    op: RoomOp,
) {
    if !admitted(sh, s, event) {
        send_ack(ack, &[json!(false), json!(p::TOO_MANY_MESSAGES)]);
        return;
    }
    let Some(req) = data.and_then(|v| serde_json::from_value::<RoomRequest>(v).ok()) else {
        tracing::warn!(sid = %s.id, "{event}: malformed request (needs an object with a sessionid string)");
        send_ack(ack, &[json!(false), json!(p::MALFORMED_REQUEST)]);
        return;
    };
    let code = req.sessionid.clone();
    let (args, effects) = op(&mut sh.registry(), s.id, req, Instant::now());
    log_ack(s, event, &code, &args);
    apply(io, effects);
    send_ack(ack, &args);
}

fn log_ack(s: &SocketRef, event: &str, code: &str, args: &[Value]) {
    match args.get(1).and_then(Value::as_str) {
        None => tracing::info!(sid = %s.id, %code, "{event}: ok"),
        Some(reason @ (p::ROOM_NOT_AVAILABLE | p::ROOM_FULL)) => {
            tracing::info!(sid = %s.id, %code, "{event}: {reason}")
        }
        Some(reason) => {
            tracing::warn!(sid = %s.id, %code, ip = %client_ip(s), "{event} refused: {reason}")
        }
    }
}

fn relay(sh: &Shared, io: &SocketIo, s: &SocketRef, data: Option<Value>) {
    if !admitted(sh, s, "relay") {
        return;
    }
    let Some(env) = data.and_then(|v| serde_json::from_value::<Envelope>(v).ok()) else {
        tracing::warn!(sid = %s.id, "relay dropped: not a {{remoteUserId, message, sender}} envelope");
        return;
    };
    let result = sh.registry().relay(s.id, env);
    match result {
        Ok(effects) => apply(io, effects),
        Err(why) => tracing::warn!(sid = %s.id, "relay dropped: {why}"),
    }
}

fn extra_updated(sh: &Shared, io: &SocketIo, s: &SocketRef, data: Option<Value>) {
    if !admitted(sh, s, p::EXTRA_DATA_UPDATED) {
        return;
    }
    let Some(extra) = data else {
        tracing::warn!(sid = %s.id, "extra-data-updated dropped: no payload");
        return;
    };
    let result = sh.registry().extra_updated(s.id, extra);
    match result {
        Ok(effects) => apply(io, effects),
        Err(why) => tracing::warn!(sid = %s.id, "extra-data-updated dropped: {why}"),
    }
}

fn disconnect_with(sh: &Shared, io: &SocketIo, s: &SocketRef, ack: AckSender, data: Option<Value>) {
    if !admitted(sh, s, p::DISCONNECT_WITH) {
        return;
    }
    if let Some(remote) = data.as_ref().and_then(Value::as_str) {
        let effects = sh.registry().disconnect_with(s.id, remote);
        apply(io, effects);
    } else {
        tracing::warn!(sid = %s.id, "disconnect-with: expected a userid string");
    }
    send_ack(ack, &[]);
}

fn release_code(sh: &Shared, io: &SocketIo, s: &SocketRef, ack: AckSender, data: Option<Value>) {
    if !admitted(sh, s, p::RELEASE_CODE) {
        send_ack(ack, &[json!(false), json!(p::TOO_MANY_MESSAGES)]);
        return;
    }
    let code = data
        .as_ref()
        .and_then(|d| d.get("code"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let (args, effects) = sh.registry().release_code(s.id, &code, Instant::now());
    if args.first() == Some(&json!(true)) {
        tracing::warn!(sid = %s.id, %code, "a proctor released the code from the device publishing it");
    } else {
        log_ack(s, p::RELEASE_CODE, &code, &args);
    }
    apply(io, effects);
    send_ack(ack, &args);
}

fn check_presence(sh: &Shared, s: &SocketRef, ack: AckSender, data: Option<Value>) {
    if !admitted(sh, s, p::CHECK_PRESENCE) {
        return;
    }
    let roomid = data.as_ref().and_then(Value::as_str).unwrap_or_default();
    let args = sh.registry().check_presence(s.id, roomid);
    send_ack(ack, &args);
}

fn public_rooms(sh: &Shared, s: &SocketRef, ack: AckSender, data: Option<Value>) {
    if !admitted(sh, s, p::GET_PUBLIC_ROOMS) {
        send_ack(ack, &[Value::Null, json!(p::TOO_MANY_MESSAGES)]);
        return;
    }
    let args = sh
        .registry()
        .public_rooms(s.id, data.as_ref().and_then(Value::as_str));
    if args.first().is_some_and(Value::is_null) {
        tracing::info!(sid = %s.id, ip = %client_ip(s), "get-public-rooms refused: {}", args[1]);
    }
    send_ack(ack, &args);
}

fn on_disconnect(sh: &Shared, io: &SocketIo, s: &SocketRef, reason: DisconnectReason) {
    let (userid, effects) = {
        let mut reg = sh.registry();
        let userid = reg.userid(s.id).map(str::to_string);
        (userid, reg.disconnect(s.id))
    };
    match reason {
        DisconnectReason::PacketParsingError => tracing::warn!(
            sid = %s.id, ?userid,
            "socket closed: it sent a message that is malformed or larger than the size limit"
        ),
        _ => tracing::info!(sid = %s.id, ?userid, ?reason, "socket disconnected"),
    }
    apply(io, effects);
}
