//! Signalling state: users (one per socket) and rooms, as
//! RTCMultiConnection-Server keeps them (protocol notes §6.3), with the rules
//! rtcproctor adds. Pure: no sockets and no clock (time is passed in); every
//! operation returns the [`Effect`]s the caller must carry out, in order.
//!
//! Differences from the stock server, each deliberate:
//!
//! - **Join requests are routed by `remoteUserId`** (the room named in the
//!   request), not by the socket's last `join-room`, and only for sockets that
//!   joined that room. A socket may be a participant of several rooms at once,
//!   so one proctor socket can watch many students.
//! - **Viewing needs the proctor key** (unless the server runs with open
//!   viewing): `join-room` from a socket without it fails with a clear reason.
//! - **Who may reach whom.** A socket may relay only to peers it was
//!   introduced to: the members of rooms it joined, the viewers that sent it
//!   a join request, and peers it is already connected with. A student (who
//!   only opens a room) can therefore never reach another student.
//! - **The `sender` of a relay must be the socket's own userid** (the stock
//!   server lets anyone speak for anyone).
//! - **Reclaim instead of half-registration.** A new socket with a userid that
//!   is already registered takes over at once: the old socket is cleaned up
//!   as on a normal disconnect and then disconnected. The stock server answers
//!   `userid-already-taken` and leaves the new socket without handlers, so a
//!   reconnecting student waits up to 45 s (the ping timeout) for its code.
//!   Trade-off: whoever knows a userid can push its socket off; userids are
//!   random and only the peers a socket talks to learn them, and a socket
//!   without the proctor key may not take over one that has it (it gets the
//!   stock `userid-already-taken` and is disconnected instead).
//! - **Duplicates are not reproduced:** `user-disconnected` is sent once per
//!   peer (the stock server sends it twice). `extra-data-updated` still goes to
//!   the connected peers and then to the room participants, like the stock
//!   server, so a peer that is both gets it twice (clients dedup).
//! - **Bounds:** ids, `extra` size and its strings are capped; events are
//!   rate-limited per socket; failed joins and roster refusals are
//!   rate-limited per client address for sockets without the proctor key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
pub use socketioxide::socket::Sid;

use super::protocol::{self as p, Envelope, HandshakeQuery, RoomRequest};

/// Bounds on what clients may send. The defaults suit a class of a few
/// hundred students; tests use tighter ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest socket.io message in bytes (SDP offers are a few KiB).
    pub max_payload: u64,
    /// Largest `extra` object, serialized, in bytes; larger updates are dropped.
    pub max_extra_bytes: usize,
    /// Longest string inside `extra` (chat lines), in characters; longer ones
    /// are cut.
    pub max_extra_chars: usize,
    /// Longest userid, stream code or event name.
    pub max_id_len: usize,
    /// Sustained events per second per socket.
    pub events_per_sec: f64,
    /// Burst of events per socket above the sustained rate.
    pub event_burst: f64,
    /// Failed joins (or roster refusals) a client address may make at once...
    pub failure_burst: f64,
    /// ...and how many more it earns per minute.
    pub failures_per_min: f64,
    /// Most rooms in one `get-public-rooms` answer (the answer is also cut
    /// at about `max_payload` bytes).
    pub max_listed_rooms: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload: 256 * 1024,
            max_extra_bytes: 16 * 1024,
            max_extra_chars: 4000,
            max_id_len: 256,
            events_per_sec: 50.0,
            event_burst: 200.0,
            failure_burst: 20.0,
            failures_per_min: 20.0,
            max_listed_rooms: 1000,
        }
    }
}

/// A classic token bucket: `capacity` tokens, refilled at `per_sec`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    capacity: f64,
    per_sec: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(capacity: f64, per_sec: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: capacity,
            capacity,
            per_sec,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        self.last = now;
    }

    /// Take one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// No token left right now.
    pub fn is_empty(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens < 1.0
    }

    /// Back to full capacity (then it carries no information).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// Something the caller must do after a state change.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Emit `event` with these arguments to the socket `to`.
    Emit {
        to: Sid,
        event: String,
        args: Vec<Value>,
    },
    /// Disconnect this socket (its state is already cleaned up).
    Disconnect(Sid),
}

fn emit(to: Sid, event: &str, args: Vec<Value>) -> Effect {
    Effect::Emit {
        to,
        event: event.to_string(),
        args,
    }
}

/// How the proctor key of a socket compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// The socket sent the right key.
    Valid,
    /// No key was sent (every student page).
    Missing,
    /// A key was sent and it is wrong.
    Wrong,
}

/// A new socket, as the handshake describes it.
#[derive(Debug, Clone)]
pub struct Connect {
    pub sid: Sid,
    pub query: HandshakeQuery,
    pub key: KeyStatus,
    /// Client address, for the per-address failure limit.
    pub ip: IpAddr,
    /// The userid to use when the handshake has none (random, from the caller).
    pub fallback_userid: String,
}

/// What became of a new socket.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectOutcome {
    /// Registered under this userid; carry out the effects (a takeover
    /// disconnects the old socket).
    Registered {
        userid: String,
        msg_event: String,
        effects: Vec<Effect>,
    },
    /// Not registered; the effects disconnect it.
    Refused {
        reason: String,
        effects: Vec<Effect>,
    },
}

/// Whether an incoming event may be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Over the socket's rate: drop it. `warn` is true at most once a second
    /// per socket, so a flood makes one log line, not thousands.
    Drop {
        warn: bool,
    },
    /// The socket is not registered (already gone).
    Unknown,
}

#[derive(Debug)]
struct User {
    sid: Sid,
    msg_event: String,
    extra: Value,
    key: KeyStatus,
    ip: IpAddr,
    max_participants: usize,
    auto_close: bool,
    /// Peers a relay has connected this user with (stock `connectedWith`).
    connected_with: Vec<String>,
    /// Viewers that sent this user a join request: it may answer them.
    invited_by: Vec<String>,
    /// The reverse of `invited_by`, to clean up on disconnect.
    invited: Vec<String>,
    /// Rooms this user owns or joined.
    rooms: Vec<String>,
    events: TokenBucket,
    last_warn: Option<Instant>,
}

#[derive(Debug)]
struct Room {
    owner: String,
    participants: Vec<String>,
    max_participants: usize,
    session: Value,
    extra: Value,
    password: Option<String>,
    auto_close: bool,
}

/// All users and rooms of one server.
#[derive(Debug)]
pub struct Registry {
    users: HashMap<String, User>,
    sids: HashMap<Sid, String>,
    rooms: HashMap<String, Room>,
    /// Codes that may go live; `None` = any.
    roster: Option<std::collections::HashSet<String>>,
    open_viewing: bool,
    limits: Limits,
    failures: HashMap<IpAddr, TokenBucket>,
    /// (code, userid) a proctor released, and until when it stays out.
    released: HashMap<(String, String), Instant>,
}

/// Event names a socket may not pick as its relay event.
const RESERVED_EVENTS: &[&str] = &[
    p::OPEN_ROOM,
    p::JOIN_ROOM,
    p::EXTRA_DATA_UPDATED,
    p::DISCONNECT_WITH,
    p::CHECK_PRESENCE,
    p::GET_PUBLIC_ROOMS,
    p::USER_CONNECTED,
    p::USER_DISCONNECTED,
    p::USERID_ALREADY_TAKEN,
    p::CODE_CONFLICT,
    p::RELEASE_CODE,
    p::SET_IS_INITIATOR_TRUE,
    p::DISCONNECT,
    "connect",
    "connect_error",
    "disconnecting",
    "newListener",
    "removeListener",
];

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

fn remove(v: &mut Vec<String>, s: &str) -> bool {
    let before = v.len();
    v.retain(|x| x != s);
    v.len() != before
}

/// The not-present answer of `check-presence`.
fn absent(roomid: &str) -> Vec<Value> {
    vec![
        json!(false),
        json!(roomid),
        json!({"_room": {"isFull": false, "isPasswordProtected": false}}),
    ]
}

/// Cut every string in `v` to `max_chars` characters; returns how many were cut.
pub fn cap_strings(v: &mut Value, max_chars: usize) -> usize {
    match v {
        Value::String(s) => match s.char_indices().nth(max_chars) {
            Some((i, _)) => {
                s.truncate(i);
                1
            }
            None => 0,
        },
        Value::Array(a) => a.iter_mut().map(|x| cap_strings(x, max_chars)).sum(),
        Value::Object(o) => o.values_mut().map(|x| cap_strings(x, max_chars)).sum(),
        _ => 0,
    }
}

impl Registry {
    pub fn new(
        limits: Limits,
        open_viewing: bool,
        roster: Option<std::collections::HashSet<String>>,
    ) -> Self {
        Registry {
            users: HashMap::new(),
            sids: HashMap::new(),
            rooms: HashMap::new(),
            roster,
            open_viewing,
            limits,
            failures: HashMap::new(),
            released: HashMap::new(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Number of registered sockets.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of open rooms.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Every registered socket.
    pub fn sids(&self) -> Vec<Sid> {
        self.sids.keys().copied().collect()
    }

    /// The userid of a registered socket.
    pub fn userid(&self, sid: Sid) -> Option<&str> {
        self.sids.get(&sid).map(String::as_str)
    }

    /// The owner and participants of a room (for tests and logs).
    pub fn room_members(&self, roomid: &str) -> Option<(String, Vec<String>)> {
        self.rooms
            .get(roomid)
            .map(|r| (r.owner.clone(), r.participants.clone()))
    }

    fn may_view(&self, key: KeyStatus) -> bool {
        self.open_viewing || key == KeyStatus::Valid
    }

    /// Make `extra` fit the limits: strings cut, oversize refused.
    fn bound_extra(&self, extra: &mut Value) -> Result<usize, String> {
        let cut = cap_strings(extra, self.limits.max_extra_chars);
        let size = serde_json::to_vec(extra)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > self.limits.max_extra_bytes {
            return Err(format!(
                "extra of {size} bytes is over the limit of {} bytes",
                self.limits.max_extra_bytes
            ));
        }
        Ok(cut)
    }

    /// Register a new socket (see the module docs for the takeover rule).
    pub fn connect(&mut self, c: Connect, now: Instant) -> ConnectOutcome {
        let userid = c
            .query
            .userid
            .clone()
            .unwrap_or_else(|| c.fallback_userid.clone());
        let refuse = |reason: String| ConnectOutcome::Refused {
            reason,
            effects: vec![Effect::Disconnect(c.sid)],
        };
        if userid.len() > self.limits.max_id_len {
            return refuse(format!(
                "userid of {} bytes is longer than {}",
                userid.len(),
                self.limits.max_id_len
            ));
        }
        let msg_event = c.query.msg_event.clone();
        if msg_event.len() > self.limits.max_id_len {
            return refuse(format!("msgEvent of {} bytes is too long", msg_event.len()));
        }
        if RESERVED_EVENTS.contains(&msg_event.as_str()) {
            return refuse(format!("msgEvent {msg_event:?} is a reserved event name"));
        }
        let mut extra = c.query.extra.clone();
        if let Err(e) = self.bound_extra(&mut extra) {
            return refuse(format!("handshake {e}"));
        }

        let mut effects = Vec::new();
        if let Some(old) = self.users.get(&userid) {
            let old_sid = old.sid;
            if self.may_view(old.key) && !self.may_view(c.key) {
                // Stock answer, but no half-registered socket is left behind.
                return ConnectOutcome::Refused {
                    reason: format!(
                        "userid {userid:?} is held by a viewer socket and this one has no proctor key"
                    ),
                    effects: vec![
                        emit(
                            c.sid,
                            p::USERID_ALREADY_TAKEN,
                            vec![json!(userid), json!(c.fallback_userid)],
                        ),
                        Effect::Disconnect(c.sid),
                    ],
                };
            }
            effects.extend(self.disconnect(old_sid));
            effects.push(Effect::Disconnect(old_sid));
        }

        self.sids.insert(c.sid, userid.clone());
        self.users.insert(
            userid.clone(),
            User {
                sid: c.sid,
                msg_event: msg_event.clone(),
                extra,
                key: c.key,
                ip: c.ip,
                max_participants: c.query.max_participants,
                auto_close: c.query.auto_close,
                connected_with: Vec::new(),
                invited_by: Vec::new(),
                invited: Vec::new(),
                rooms: Vec::new(),
                events: TokenBucket::new(self.limits.event_burst, self.limits.events_per_sec, now),
                last_warn: None,
            },
        );
        ConnectOutcome::Registered {
            userid,
            msg_event,
            effects,
        }
    }

    /// Count one incoming event against the socket's rate.
    pub fn admit(&mut self, sid: Sid, now: Instant) -> Verdict {
        let Some(user) = self.sids.get(&sid).and_then(|u| self.users.get_mut(u)) else {
            return Verdict::Unknown;
        };
        if user.events.try_take(now) {
            return Verdict::Allow;
        }
        let warn = user
            .last_warn
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if warn {
            user.last_warn = Some(now);
        }
        Verdict::Drop { warn }
    }

    fn failure_bucket(&mut self, ip: IpAddr, now: Instant) -> &mut TokenBucket {
        if self.failures.len() > 10_000 {
            // Forget addresses whose bucket is full again: they carry no state.
            self.failures.retain(|_, b| !b.is_full(now));
        }
        let (burst, per_sec) = (
            self.limits.failure_burst,
            self.limits.failures_per_min / 60.0,
        );
        self.failures
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(burst, per_sec, now))
    }

    /// True when this address has used up its failed attempts.
    fn blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.failure_bucket(ip, now).is_empty(now)
    }

    fn note_failure(&mut self, ip: IpAddr, now: Instant) {
        self.failure_bucket(ip, now).try_take(now);
    }

    /// Leave (or close) every room the user is in; the stock server's
    /// `closeOrShiftRoom`, for all rooms. `only_owned` keeps joined rooms.
    fn leave_rooms(&mut self, userid: &str, only_owned: bool) -> Vec<Effect> {
        let mut effects = Vec::new();
        let rooms = match self.users.get(userid) {
            Some(u) => u.rooms.clone(),
            None => return effects,
        };
        for roomid in rooms {
            let Some(room) = self.rooms.get_mut(&roomid) else {
                continue;
            };
            let owner = room.owner == userid;
            if only_owned && !owner {
                continue;
            }
            remove(&mut room.participants, userid);
            let close = if owner {
                if room.auto_close || room.participants.is_empty() {
                    true
                } else {
                    // Shift ownership to the first remaining participant.
                    let next = room.participants[0].clone();
                    room.owner = next.clone();
                    if let Some(u) = self.users.get(&next) {
                        effects.push(emit(u.sid, p::SET_IS_INITIATOR_TRUE, vec![json!(roomid)]));
                    }
                    false
                }
            } else {
                room.participants.is_empty()
            };
            if close && let Some(room) = self.rooms.remove(&roomid) {
                for pid in room.participants {
                    if let Some(u) = self.users.get_mut(&pid) {
                        remove(&mut u.rooms, &roomid);
                    }
                }
            }
            if let Some(u) = self.users.get_mut(userid) {
                remove(&mut u.rooms, &roomid);
            }
        }
        effects
    }

    /// The registered user behind a socket: userid, address, key status.
    fn caller(&self, sid: Sid) -> Option<(String, IpAddr, KeyStatus)> {
        let userid = self.sids.get(&sid)?.clone();
        let u = self.users.get(&userid)?;
        Some((userid, u.ip, u.key))
    }

    /// `open-room`: publish a stream under a code. Returns the ack arguments.
    pub fn open_room(
        &mut self,
        sid: Sid,
        mut req: RoomRequest,
        now: Instant,
    ) -> (Vec<Value>, Vec<Effect>) {
        let fail = |reason: &str| vec![json!(false), json!(reason)];
        let Some((userid, ip, key)) = self.caller(sid) else {
            return (fail(p::ROOM_NOT_AVAILABLE), vec![]);
        };
        if req.sessionid.is_empty() || req.sessionid.len() > self.limits.max_id_len {
            return (fail(p::MALFORMED_REQUEST), vec![]);
        }
        if self.bound_extra(&mut req.extra).is_err() {
            return (fail(p::MALFORMED_REQUEST), vec![]);
        }
        let keyless = key != KeyStatus::Valid;
        if let Some(roster) = &self.roster
            && !roster.contains(&req.sessionid)
        {
            if keyless && self.blocked(ip, now) {
                return (fail(p::TOO_MANY_FAILURES), vec![]);
            }
            if keyless {
                self.note_failure(ip, now);
            }
            return (fail(p::NOT_ON_ROSTER), vec![]);
        }
        self.released.retain(|_, until| *until > now);
        if self
            .released
            .contains_key(&(req.sessionid.clone(), userid.clone()))
        {
            return (fail(p::RELEASED_BY_PROCTOR), vec![]);
        }
        let mut effects = self.leave_rooms(&userid, false);
        if let Some(room) = self
            .rooms
            .get(&req.sessionid)
            .filter(|r| !r.participants.is_empty())
        {
            if room.owner != userid && self.users.contains_key(&room.owner) {
                effects.extend(self.conflict_notices(room, &req.sessionid));
            }
            return (fail(p::ROOM_NOT_AVAILABLE), effects);
        }
        let Some(user) = self.users.get_mut(&userid) else {
            return (fail(p::ROOM_NOT_AVAILABLE), effects);
        };
        user.extra = req.extra.clone();
        push_unique(&mut user.rooms, &req.sessionid);
        let room = Room {
            owner: userid.clone(),
            participants: vec![userid.clone()],
            max_participants: user.max_participants,
            auto_close: user.auto_close || req.is_one_way(),
            password: req.password(),
            session: req.session.clone(),
            extra: req.extra.clone(),
        };
        self.rooms.insert(req.sessionid.clone(), room);
        (vec![json!(true)], effects)
    }

    /// Tell the proctors watching `room` that another device tried to go
    /// live on its code: with a roster, a student who learned a classmate's
    /// code can still go live on it first, and this is how the proctor
    /// finds out (the real student's page keeps retrying).
    fn conflict_notices(&self, room: &Room, code: &str) -> Vec<Effect> {
        room.participants
            .iter()
            .filter(|v| **v != room.owner)
            .filter_map(|v| self.users.get(v))
            .filter(|u| u.key == KeyStatus::Valid)
            .map(|u| emit(u.sid, p::CODE_CONFLICT, vec![json!({ "code": code })]))
            .collect()
    }

    /// `rtcproctor-release-code`: a proctor takes a live code away from the
    /// device publishing it (see [`p::RELEASE_CODE`]). Returns the ack
    /// arguments and the effects (the publisher is forgotten, its viewers
    /// told, its socket closed).
    pub fn release_code(
        &mut self,
        sid: Sid,
        code: &str,
        now: Instant,
    ) -> (Vec<Value>, Vec<Effect>) {
        let fail = |reason: &str| vec![json!(false), json!(reason)];
        match self.caller(sid) {
            Some((_, _, KeyStatus::Valid)) => {}
            Some(_) => return (fail(p::RELEASE_NEEDS_KEY), vec![]),
            None => return (fail(p::ROOM_NOT_AVAILABLE), vec![]),
        }
        let Some(owner) = self.rooms.get(code).map(|r| r.owner.clone()) else {
            return (fail(p::ROOM_NOT_AVAILABLE), vec![]);
        };
        let Some(owner_sid) = self.users.get(&owner).map(|u| u.sid) else {
            return (fail(p::ROOM_NOT_AVAILABLE), vec![]);
        };
        self.released
            .insert((code.to_string(), owner), now + p::RELEASE_FOR);
        let mut effects = self.disconnect(owner_sid);
        effects.push(Effect::Disconnect(owner_sid));
        (vec![json!(true)], effects)
    }

    /// `join-room`: view a stream. Returns the ack arguments.
    pub fn join_room(
        &mut self,
        sid: Sid,
        mut req: RoomRequest,
        now: Instant,
    ) -> (Vec<Value>, Vec<Effect>) {
        let fail = |reason: &str| vec![json!(false), json!(reason)];
        let Some((userid, ip, key)) = self.caller(sid) else {
            return (fail(p::ROOM_NOT_AVAILABLE), vec![]);
        };
        if req.sessionid.len() > self.limits.max_id_len || self.bound_extra(&mut req.extra).is_err()
        {
            return (fail(p::MALFORMED_REQUEST), vec![]);
        }
        // A socket that joins elsewhere stops publishing (stock behaviour);
        // rooms it joined as a viewer stay joined.
        let effects = self.leave_rooms(&userid, true);
        if let Some(u) = self.users.get_mut(&userid) {
            u.extra = req.extra.clone();
        }
        let keyless = key != KeyStatus::Valid;
        if keyless && self.blocked(ip, now) {
            return (fail(p::TOO_MANY_FAILURES), effects);
        }
        let failure = if !self.may_view(key) {
            Some(if key == KeyStatus::Wrong {
                p::WRONG_PROCTOR_KEY
            } else {
                p::NEEDS_PROCTOR_KEY
            })
        } else {
            match self.rooms.get(&req.sessionid) {
                None => Some(p::ROOM_NOT_AVAILABLE),
                Some(r) if r.password.is_some() && r.password != req.password() => {
                    Some(p::INVALID_PASSWORD)
                }
                Some(r) if r.participants.contains(&userid) => None,
                Some(r) if r.participants.len() >= r.max_participants => {
                    return (fail(p::ROOM_FULL), effects);
                }
                Some(_) => None,
            }
        };
        if let Some(reason) = failure {
            if keyless {
                self.note_failure(ip, now);
            }
            return (fail(reason), effects);
        }
        if let Some(room) = self.rooms.get_mut(&req.sessionid) {
            push_unique(&mut room.participants, &userid);
        }
        if let Some(u) = self.users.get_mut(&userid) {
            push_unique(&mut u.rooms, &req.sessionid);
        }
        (vec![json!(true)], effects)
    }

    /// True when `from` may relay to `to` (see the module docs).
    fn may_reach(&self, from: &User, from_id: &str, to: &str) -> bool {
        from.connected_with.iter().any(|x| x == to)
            || from.invited_by.iter().any(|x| x == to)
            || from.rooms.iter().any(|r| {
                self.rooms.get(r).is_some_and(|room| {
                    room.participants.iter().any(|x| x == to)
                        && room.participants.iter().any(|x| x == from_id)
                })
            })
    }

    /// The relay event (`msgEvent`): join requests go to the room owner,
    /// everything else to the peer named by `remoteUserId`. `Err` is why the
    /// message was dropped (for the log).
    pub fn relay(&mut self, sid: Sid, mut env: Envelope) -> Result<Vec<Effect>, String> {
        let userid = self
            .sids
            .get(&sid)
            .cloned()
            .ok_or_else(|| "socket is not registered".to_string())?;
        if env.sender != userid {
            return Err(format!(
                "sender {:?} is not this socket's userid {userid:?}",
                env.sender
            ));
        }
        if env.remote_user_id == userid {
            return Ok(vec![]);
        }
        let target = env.remote_user_id.clone();
        if env.is_join_request()
            && let Some(room) = self.rooms.get(&target)
        {
            if !room.participants.contains(&userid) {
                return Err(format!(
                    "join request for room {target:?} which this socket has not joined"
                ));
            }
            let one_way = room.session.get("oneway").and_then(Value::as_bool) == Some(true)
                || room.session.get("broadcast").and_then(Value::as_bool) == Some(true);
            let recipients: Vec<String> = if one_way {
                vec![room.owner.clone()]
            } else {
                room.participants
                    .iter()
                    .filter(|x| **x != userid)
                    .cloned()
                    .collect()
            };
            let mut effects = Vec::new();
            for r in recipients {
                let Some(u) = self.users.get_mut(&r) else {
                    continue;
                };
                push_unique(&mut u.invited_by, &userid);
                env.remote_user_id = r.clone();
                let value = serde_json::to_value(&env).map_err(|e| e.to_string())?;
                effects.push(emit(u.sid, &u.msg_event.clone(), vec![value]));
                if let Some(me) = self.users.get_mut(&userid) {
                    push_unique(&mut me.invited, &r);
                }
            }
            return Ok(effects);
        }
        let me = self
            .users
            .get(&userid)
            .ok_or_else(|| "socket is not registered".to_string())?;
        let Some(peer) = self.users.get(&target) else {
            return Err(format!("no user {target:?} is connected"));
        };
        if !self.may_reach(me, &userid, &target) {
            return Err(format!(
                "{userid:?} may not reach {target:?} (not in a room it joined, not a viewer that asked for its stream)"
            ));
        }
        let (peer_sid, peer_event) = (peer.sid, peer.msg_event.clone());
        let mut effects = Vec::new();
        let connected = me.connected_with.contains(&target);
        if !env.is_user_left() && !connected {
            effects.push(emit(sid, p::USER_CONNECTED, vec![json!(target)]));
            effects.push(emit(peer_sid, p::USER_CONNECTED, vec![json!(userid)]));
            if let Some(u) = self.users.get_mut(&userid) {
                push_unique(&mut u.connected_with, &target);
            }
            if let Some(u) = self.users.get_mut(&target) {
                push_unique(&mut u.connected_with, &userid);
            }
        }
        let me = &self.users[&userid];
        if me.connected_with.contains(&target) {
            env.rest.insert("extra".into(), me.extra.clone());
            let value = serde_json::to_value(&env).map_err(|e| e.to_string())?;
            effects.push(emit(peer_sid, &peer_event, vec![value]));
        }
        Ok(effects)
    }

    /// `extra-data-updated`: store and fan out to the connected peers, then
    /// to the participants of the socket's rooms (itself included).
    pub fn extra_updated(&mut self, sid: Sid, mut extra: Value) -> Result<Vec<Effect>, String> {
        let userid = self
            .sids
            .get(&sid)
            .cloned()
            .ok_or_else(|| "socket is not registered".to_string())?;
        let cut = self.bound_extra(&mut extra)?;
        let user = self
            .users
            .get_mut(&userid)
            .ok_or_else(|| "socket is not registered".to_string())?;
        user.extra = extra.clone();
        let mut targets: Vec<String> = user.connected_with.clone();
        for roomid in user.rooms.clone() {
            if let Some(room) = self.rooms.get_mut(&roomid) {
                if room.owner == userid {
                    room.extra = extra.clone();
                }
                targets.extend(room.participants.iter().cloned());
            }
        }
        let effects = targets
            .iter()
            .filter_map(|t| self.users.get(t))
            .map(|u| {
                emit(
                    u.sid,
                    p::EXTRA_DATA_UPDATED,
                    vec![json!(userid), extra.clone()],
                )
            })
            .collect();
        if cut > 0 {
            tracing::info!(%userid, cut, "extra-data-updated: cut long strings");
        }
        Ok(effects)
    }

    /// `disconnect-with`: forget the pairing both ways and tell each side.
    pub fn disconnect_with(&mut self, sid: Sid, remote: &str) -> Vec<Effect> {
        let Some(userid) = self.sids.get(&sid).cloned() else {
            return vec![];
        };
        let mut effects = Vec::new();
        if let Some(me) = self.users.get_mut(&userid)
            && remove(&mut me.connected_with, remote)
        {
            effects.push(emit(sid, p::USER_DISCONNECTED, vec![json!(remote)]));
        }
        if let Some(peer) = self.users.get_mut(remote)
            && remove(&mut peer.connected_with, &userid)
        {
            effects.push(emit(peer.sid, p::USER_DISCONNECTED, vec![json!(userid)]));
        }
        effects
    }

    /// `check-presence`: the ack arguments. Sockets that may not view get
    /// "absent" for every room, so the event cannot probe codes.
    pub fn check_presence(&self, sid: Sid, roomid: &str) -> Vec<Value> {
        let may_view = self
            .sids
            .get(&sid)
            .and_then(|u| self.users.get(u))
            .is_some_and(|u| self.may_view(u.key));
        match self.rooms.get(roomid) {
            Some(room) if may_view && !room.participants.is_empty() => {
                let mut extra = match &room.extra {
                    Value::Object(o) => Value::Object(o.clone()),
                    other => json!({ "value": other }),
                };
                // The stock server leaves `isPasswordProtected` out (undefined)
                // when the room has no password; clients only test truthiness.
                let mut info =
                    json!({ "isFull": room.participants.len() >= room.max_participants });
                if room.password.is_some() {
                    info["isPasswordProtected"] = json!(true);
                }
                extra["_room"] = info;
                vec![json!(true), json!(roomid), extra]
            }
            _ => absent(roomid),
        }
    }

    /// `get-public-rooms`: the ack arguments. Proctors (sockets that may
    /// view) get every live room in the stock answer's shape, whatever its
    /// identifier, bounded by `max_listed_rooms` and about `max_payload`
    /// bytes; anyone else gets a refusal, so a student never learns another
    /// student's code (see the protocol notes, "Listing live rooms").
    pub fn public_rooms(&self, sid: Sid, identifier: Option<&str>) -> Vec<Value> {
        let refuse = |reason: &str| vec![Value::Null, json!(reason)];
        let may_view = self
            .sids
            .get(&sid)
            .and_then(|u| self.users.get(u))
            .is_some_and(|u| self.may_view(u.key));
        if !may_view {
            return refuse(p::LISTING_NEEDS_PROCTOR_KEY);
        }
        if identifier.is_none_or(|i| i.trim().is_empty()) {
            return refuse(p::PUBLIC_IDENTIFIER_MISSING);
        }
        let mut codes: Vec<&String> = self
            .rooms
            .iter()
            .filter(|(_, r)| self.users.contains_key(&r.owner))
            .map(|(code, _)| code)
            .collect();
        codes.sort();
        let budget = usize::try_from(self.limits.max_payload).unwrap_or(usize::MAX);
        let mut used = 0;
        let mut list = Vec::new();
        for code in codes.into_iter().take(self.limits.max_listed_rooms) {
            let room = &self.rooms[code];
            let entry = json!({
                "maxParticipantsAllowed": room.max_participants,
                "owner": room.owner,
                "participants": room.participants,
                "extra": room.extra,
                "session": room.session,
                "sessionid": code,
                "isRoomFull": room.participants.len() >= room.max_participants,
                "isPasswordProtected": room.password.is_some(),
            });
            used += serde_json::to_vec(&entry).map_or(budget, |v| v.len() + 1);
            if used > budget {
                tracing::warn!(
                    listed = list.len(),
                    rooms = self.rooms.len(),
                    "get-public-rooms: answer cut at {budget} bytes"
                );
                break;
            }
            list.push(entry);
        }
        vec![Value::Array(list)]
    }

    /// A socket went away: tell its peers, close or leave its rooms, forget it.
    pub fn disconnect(&mut self, sid: Sid) -> Vec<Effect> {
        let Some(userid) = self.sids.remove(&sid) else {
            return vec![];
        };
        let mut effects = Vec::new();
        let (connected, invited) = match self.users.get(&userid) {
            Some(u) => (u.connected_with.clone(), u.invited.clone()),
            None => return effects,
        };
        for peer in connected {
            if let Some(u) = self.users.get_mut(&peer) {
                remove(&mut u.connected_with, &userid);
                effects.push(emit(u.sid, p::USER_DISCONNECTED, vec![json!(userid)]));
            }
        }
        for peer in invited {
            if let Some(u) = self.users.get_mut(&peer) {
                remove(&mut u.invited_by, &userid);
            }
        }
        effects.extend(self.leave_rooms(&userid, false));
        self.users.remove(&userid);
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    struct World {
        reg: Registry,
        now: Instant,
    }

    fn query(userid: &str) -> HandshakeQuery {
        HandshakeQuery::parse(&format!("userid={userid}&msgEvent=rtc-video-proctoring"))
    }

    fn room(code: &str) -> RoomRequest {
        serde_json::from_value(json!({
            "sessionid": code,
            "session": {"audio": true, "video": true, "oneway": true},
            "extra": {}, "password": ""
        }))
        .unwrap()
    }

    fn env(from: &str, to: &str, message: Value) -> Envelope {
        serde_json::from_value(json!({"remoteUserId": to, "sender": from, "message": message}))
            .unwrap()
    }

    impl World {
        fn new(limits: Limits, open_viewing: bool) -> World {
            World {
                reg: Registry::new(limits, open_viewing, None),
                now: Instant::now(),
            }
        }

        fn connect(&mut self, userid: &str, key: KeyStatus) -> Sid {
            let sid = Sid::new();
            let out = self.reg.connect(
                Connect {
                    sid,
                    query: query(userid),
                    key,
                    ip: IP,
                    fallback_userid: "fallback".into(),
                },
                self.now,
            );
            assert!(matches!(out, ConnectOutcome::Registered { .. }), "{out:?}");
            sid
        }
    }

    fn emits_to(effects: &[Effect], to: Sid) -> Vec<(String, Vec<Value>)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Emit { to: t, event, args } if *t == to => {
                    Some((event.clone(), args.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Student opens, viewer joins, join request reaches the owner, the
    /// offer connects them, extra fans out, disconnect tells the peer.
    #[test]
    fn full_session() {
        let mut w = World::new(Limits::default(), false);
        let s = w.connect("stu", KeyStatus::Missing);
        let m = w.connect("mon", KeyStatus::Valid);
        assert_eq!(
            w.reg.open_room(s, room("room1"), w.now).0,
            vec![json!(true)]
        );
        assert_eq!(
            w.reg.join_room(m, room("room1"), w.now).0,
            vec![json!(true)]
        );

        let req = env(
            "mon",
            "room1",
            json!({"newParticipationRequest": true, "isOneWay": true}),
        );
        let fx = w.reg.relay(m, req).unwrap();
        let to_s = emits_to(&fx, s);
        assert_eq!(to_s.len(), 1);
        assert_eq!(to_s[0].0, "rtc-video-proctoring");
        assert_eq!(to_s[0].1[0]["remoteUserId"], "stu");
        assert!(to_s[0].1[0].get("extra").is_none());

        let fx = w
            .reg
            .relay(s, env("stu", "mon", json!({"type": "offer", "sdp": "v=0"})))
            .unwrap();
        assert_eq!(
            emits_to(&fx, s),
            vec![("user-connected".into(), vec![json!("mon")])]
        );
        let to_m = emits_to(&fx, m);
        assert_eq!(to_m[0], ("user-connected".into(), vec![json!("stu")]));
        assert_eq!(to_m[1].1[0]["extra"], json!({}));
        assert_eq!(to_m[1].1[0]["message"]["type"], "offer");

        let fx = w
            .reg
            .extra_updated(s, json!({"message": "hello", "attention": ""}))
            .unwrap();
        // connectedWith (mon), then room participants (stu, mon).
        assert_eq!(emits_to(&fx, m).len(), 2);
        assert_eq!(emits_to(&fx, s).len(), 1);
        assert_eq!(
            emits_to(&fx, m)[0].1,
            vec![json!("stu"), json!({"message": "hello", "attention": ""})]
        );

        let fx = w.reg.disconnect(s);
        assert_eq!(
            emits_to(&fx, m),
            vec![("user-disconnected".into(), vec![json!("stu")])]
        );
        assert_eq!(w.reg.room_count(), 0);
        assert_eq!(
            w.reg.join_room(m, room("room1"), w.now).0[1],
            json!(p::ROOM_NOT_AVAILABLE)
        );
    }

    /// A second device opening a live code is refused, and only the keyed
    /// viewers of that room hear about it (not the owner, not other rooms).
    #[test]
    fn a_second_device_on_a_live_code_alerts_its_proctors() {
        let mut w = World::new(Limits::default(), true);
        let s = w.connect("stu", KeyStatus::Missing);
        let other = w.connect("stu2", KeyStatus::Missing);
        let m = w.connect("mon", KeyStatus::Valid);
        let open = w.connect("openviewer", KeyStatus::Missing);
        let m2 = w.connect("mon2", KeyStatus::Valid);
        w.reg.open_room(s, room("c"), w.now);
        w.reg.open_room(other, room("d"), w.now);
        assert_eq!(w.reg.join_room(m, room("c"), w.now).0, vec![json!(true)]);
        assert_eq!(w.reg.join_room(open, room("c"), w.now).0, vec![json!(true)]);
        assert_eq!(w.reg.join_room(m2, room("d"), w.now).0, vec![json!(true)]);

        let intruder = w.connect("intruder", KeyStatus::Missing);
        let (ack, fx) = w.reg.open_room(intruder, room("c"), w.now);
        assert_eq!(ack, vec![json!(false), json!(p::ROOM_NOT_AVAILABLE)]);
        assert_eq!(
            emits_to(&fx, m),
            vec![(p::CODE_CONFLICT.to_string(), vec![json!({"code": "c"})])]
        );
        for quiet in [s, open, m2, intruder, other] {
            assert!(emits_to(&fx, quiet).is_empty(), "{fx:?}");
        }
        // The owner re-opening its own code is no conflict.
        let (_, fx) = w.reg.open_room(s, room("c"), w.now);
        assert!(emits_to(&fx, m).is_empty(), "{fx:?}");
    }

    /// A proctor takes a live code away from the device holding it: the
    /// viewers hear it left, that device stays off the code, another device
    /// gets it. Only a keyed socket may do this.
    #[test]
    fn a_proctor_releases_a_code_from_a_device() {
        let mut w = World::new(Limits::default(), true);
        let squatter = w.connect("squatter", KeyStatus::Missing);
        let m = w.connect("mon", KeyStatus::Valid);
        let open = w.connect("openviewer", KeyStatus::Missing);
        w.reg.open_room(squatter, room("c"), w.now);
        w.reg.join_room(m, room("c"), w.now);
        w.reg.join_room(open, room("c"), w.now);
        let needs_key = vec![json!(false), json!(p::RELEASE_NEEDS_KEY)];
        assert_eq!(w.reg.release_code(open, "c", w.now).0, needs_key);
        assert_eq!(w.reg.release_code(squatter, "c", w.now).0, needs_key);
        assert_eq!(
            w.reg.release_code(m, "nope", w.now).0[1],
            json!(p::ROOM_NOT_AVAILABLE)
        );

        let (ack, fx) = w.reg.release_code(m, "c", w.now);
        assert_eq!(ack, vec![json!(true)]);
        assert!(fx.contains(&Effect::Disconnect(squatter)), "{fx:?}");
        // The squatter's page reconnects with its stored userid: refused.
        let again = w.connect("squatter", KeyStatus::Missing);
        assert_eq!(
            w.reg.open_room(again, room("c"), w.now).0,
            vec![json!(false), json!(p::RELEASED_BY_PROCTOR)]
        );
        // The real student gets the code; the ban ends with RELEASE_FOR.
        let real = w.connect("real", KeyStatus::Missing);
        assert_eq!(w.reg.open_room(real, room("c"), w.now).0, vec![json!(true)]);
        w.reg.disconnect(real);
        let later = w.now + p::RELEASE_FOR + std::time::Duration::from_secs(1);
        assert_eq!(
            w.reg.open_room(again, room("c"), later).0,
            vec![json!(true)]
        );
    }

    #[test]
    fn viewing_needs_the_key_unless_open() {
        let mut w = World::new(Limits::default(), false);
        let s = w.connect("stu", KeyStatus::Missing);
        w.reg.open_room(s, room("c"), w.now);
        let x = w.connect("x", KeyStatus::Missing);
        let y = w.connect("y", KeyStatus::Wrong);
        assert_eq!(
            w.reg.join_room(x, room("c"), w.now).0[1],
            json!(p::NEEDS_PROCTOR_KEY)
        );
        assert_eq!(
            w.reg.join_room(y, room("c"), w.now).0[1],
            json!(p::WRONG_PROCTOR_KEY)
        );
        // A socket that has not joined cannot send a join request either.
        let req = env("x", "c", json!({"newParticipationRequest": true}));
        assert!(w.reg.relay(x, req).is_err());

        let mut w = World::new(Limits::default(), true);
        let s = w.connect("stu", KeyStatus::Missing);
        w.reg.open_room(s, room("c"), w.now);
        let x = w.connect("x", KeyStatus::Missing);
        assert_eq!(w.reg.join_room(x, room("c"), w.now).0, vec![json!(true)]);
    }

    #[test]
    fn only_proctors_list_live_rooms_and_the_list_is_bounded() {
        let limits = Limits {
            max_listed_rooms: 2,
            ..Limits::default()
        };
        let mut w = World::new(limits, false);
        let a = w.connect("a", KeyStatus::Missing);
        let b = w.connect("b", KeyStatus::Missing);
        let c = w.connect("c", KeyStatus::Missing);
        w.reg.open_room(b, room("rb"), w.now);
        w.reg.open_room(a, room("ra"), w.now);
        w.reg.open_room(c, room("rc"), w.now);
        let m = w.connect("m", KeyStatus::Valid);
        let wrong = w.connect("w", KeyStatus::Wrong);
        // Students (and wrong keys) learn nothing, not even that rooms exist.
        for s in [a, wrong] {
            assert_eq!(
                w.reg.public_rooms(s, Some(p::PUBLIC_ROOM_IDENTIFIER)),
                vec![Value::Null, json!(p::LISTING_NEEDS_PROCTOR_KEY)]
            );
        }
        assert_eq!(
            w.reg.public_rooms(m, Some(" ")),
            vec![Value::Null, json!(p::PUBLIC_IDENTIFIER_MISSING)]
        );
        // A proctor gets the stock shape, in code order, capped.
        let ack = w.reg.public_rooms(m, Some(p::PUBLIC_ROOM_IDENTIFIER));
        assert_eq!(p::listed_codes(&ack), Ok(vec!["ra".into(), "rb".into()]));
        let first = &ack[0][0];
        assert_eq!(first["owner"], json!("a"));
        assert_eq!(first["participants"], json!(["a"]));
        assert_eq!(first["isRoomFull"], json!(false));
        assert_eq!(first["isPasswordProtected"], json!(false));
        assert_eq!(first["session"]["oneway"], json!(true));
        // A room whose publisher left is not live.
        w.reg.disconnect(a);
        let ack = w.reg.public_rooms(m, Some("anything"));
        assert_eq!(p::listed_codes(&ack), Ok(vec!["rb".into(), "rc".into()]));

        // With open viewing anyone may list (like the stock server).
        let mut w = World::new(Limits::default(), true);
        let s = w.connect("s", KeyStatus::Missing);
        w.reg.open_room(s, room("x"), w.now);
        let ack = w.reg.public_rooms(s, Some("id"));
        assert_eq!(p::listed_codes(&ack), Ok(vec!["x".into()]));
    }

    #[test]
    fn students_cannot_reach_each_other() {
        let mut w = World::new(Limits::default(), false);
        let a = w.connect("a", KeyStatus::Missing);
        let b = w.connect("b", KeyStatus::Missing);
        w.reg.open_room(a, room("ra"), w.now);
        w.reg.open_room(b, room("rb"), w.now);
        assert!(
            w.reg
                .relay(a, env("a", "b", json!({"type": "offer"})))
                .is_err()
        );
        // A join request to another student's room is refused too.
        let req = env("a", "rb", json!({"newParticipationRequest": true}));
        assert!(w.reg.relay(a, req).is_err());
        // Spoofing the sender is refused.
        assert!(w.reg.relay(a, env("b", "a", json!({}))).is_err());
    }

    #[test]
    fn join_requests_route_by_room_not_by_last_join() {
        let mut w = World::new(Limits::default(), false);
        let a = w.connect("a", KeyStatus::Missing);
        let b = w.connect("b", KeyStatus::Missing);
        let m = w.connect("m", KeyStatus::Valid);
        w.reg.open_room(a, room("ra"), w.now);
        w.reg.open_room(b, room("rb"), w.now);
        w.reg.join_room(m, room("ra"), w.now);
        w.reg.join_room(m, room("rb"), w.now);
        let fx = w
            .reg
            .relay(m, env("m", "ra", json!({"newParticipationRequest": true})))
            .unwrap();
        assert_eq!(emits_to(&fx, a).len(), 1);
        assert!(emits_to(&fx, b).is_empty());
        // Both owners may answer m.
        assert!(
            w.reg
                .relay(a, env("a", "m", json!({"type": "offer"})))
                .is_ok()
        );
    }

    #[test]
    fn reclaim_takes_over_at_once() {
        let mut w = World::new(Limits::default(), false);
        let old = w.connect("stu", KeyStatus::Missing);
        let m = w.connect("m", KeyStatus::Valid);
        w.reg.open_room(old, room("c"), w.now);
        w.reg.join_room(m, room("c"), w.now);
        w.reg
            .relay(m, env("m", "c", json!({"newParticipationRequest": true})))
            .unwrap();
        w.reg
            .relay(old, env("stu", "m", json!({"type": "offer"})))
            .unwrap();

        let new = Sid::new();
        let out = w.reg.connect(
            Connect {
                sid: new,
                query: query("stu"),
                key: KeyStatus::Missing,
                ip: IP,
                fallback_userid: "f".into(),
            },
            w.now,
        );
        let ConnectOutcome::Registered { effects, .. } = out else {
            panic!("refused")
        };
        assert!(effects.contains(&Effect::Disconnect(old)));
        assert_eq!(
            emits_to(&effects, m),
            vec![("user-disconnected".into(), vec![json!("stu")])]
        );
        // The old socket's own disconnect is now a no-op.
        assert!(w.reg.disconnect(old).is_empty());
        assert_eq!(w.reg.open_room(new, room("c"), w.now).0, vec![json!(true)]);

        // A keyless socket may not take over a viewer's userid.
        let thief = Sid::new();
        let out = w.reg.connect(
            Connect {
                sid: thief,
                query: query("m"),
                key: KeyStatus::Missing,
                ip: IP,
                fallback_userid: "f2".into(),
            },
            w.now,
        );
        let ConnectOutcome::Refused { effects, .. } = out else {
            panic!("took over a viewer")
        };
        assert_eq!(
            emits_to(&effects, thief),
            vec![("userid-already-taken".into(), vec![json!("m"), json!("f2")])]
        );
        assert_eq!(w.reg.userid(m), Some("m"));
    }

    #[test]
    fn failed_joins_are_rate_limited_per_address_for_keyless_sockets() {
        let limits = Limits {
            failure_burst: 3.0,
            failures_per_min: 1.0,
            ..Limits::default()
        };
        let mut w = World::new(limits, true);
        let x = w.connect("x", KeyStatus::Missing);
        for _ in 0..3 {
            assert_eq!(
                w.reg.join_room(x, room("nope"), w.now).0[1],
                json!(p::ROOM_NOT_AVAILABLE)
            );
        }
        assert_eq!(
            w.reg.join_room(x, room("nope"), w.now).0[1],
            json!(p::TOO_MANY_FAILURES)
        );
        // A key holder on the same address (a school NAT) is not blocked.
        let m = w.connect("m", KeyStatus::Valid);
        assert_eq!(
            w.reg.join_room(m, room("nope"), w.now).0[1],
            json!(p::ROOM_NOT_AVAILABLE)
        );
        // A minute later one more attempt is allowed.
        w.now += Duration::from_secs(61);
        assert_eq!(
            w.reg.join_room(x, room("nope"), w.now).0[1],
            json!(p::ROOM_NOT_AVAILABLE)
        );
        assert_eq!(
            w.reg.join_room(x, room("nope"), w.now).0[1],
            json!(p::TOO_MANY_FAILURES)
        );
    }

    #[test]
    fn roster_restricts_publishing() {
        let roster = ["good".to_string()].into_iter().collect();
        let mut reg = Registry::new(Limits::default(), false, Some(roster));
        let now = Instant::now();
        let s = Sid::new();
        reg.connect(
            Connect {
                sid: s,
                query: query("s"),
                key: KeyStatus::Missing,
                ip: IP,
                fallback_userid: "f".into(),
            },
            now,
        );
        assert_eq!(
            reg.open_room(s, room("bad"), now).0[1],
            json!(p::NOT_ON_ROSTER)
        );
        assert_eq!(reg.open_room(s, room("good"), now).0, vec![json!(true)]);
    }

    #[test]
    fn second_open_of_a_live_code_fails_and_full_rooms_say_so() {
        let mut w = World::new(Limits::default(), false);
        let a = w.connect("a", KeyStatus::Missing);
        let b = w.connect("b", KeyStatus::Missing);
        w.reg.open_room(a, room("c"), w.now);
        assert_eq!(
            w.reg.open_room(b, room("c"), w.now).0[1],
            json!(p::ROOM_NOT_AVAILABLE)
        );

        let small = Sid::new();
        w.reg.connect(
            Connect {
                sid: small,
                query: HandshakeQuery::parse("userid=o&maxParticipantsAllowed=2"),
                key: KeyStatus::Missing,
                ip: IP,
                fallback_userid: "f".into(),
            },
            w.now,
        );
        let mut pw = room("p");
        pw.password = Some(json!("secret"));
        w.reg.open_room(small, pw, w.now);
        let m1 = w.connect("m1", KeyStatus::Valid);
        let m2 = w.connect("m2", KeyStatus::Valid);
        assert_eq!(
            w.reg.join_room(m1, room("p"), w.now).0[1],
            json!(p::INVALID_PASSWORD)
        );
        let mut ok = room("p");
        ok.password = Some(json!("secret"));
        assert_eq!(w.reg.join_room(m1, ok.clone(), w.now).0, vec![json!(true)]);
        assert_eq!(w.reg.join_room(m2, ok, w.now).0[1], json!(p::ROOM_FULL));
    }

    #[test]
    fn extra_is_bounded() {
        let limits = Limits {
            max_extra_chars: 5,
            max_extra_bytes: 100,
            ..Limits::default()
        };
        let mut w = World::new(limits, false);
        let s = w.connect("s", KeyStatus::Missing);
        w.reg.open_room(s, room("c"), w.now);
        let fx = w
            .reg
            .extra_updated(s, json!({"message": "héllo world"}))
            .unwrap();
        assert_eq!(emits_to(&fx, s)[0].1[1], json!({"message": "héllo"}));
        let big: Vec<Value> = (0..50).map(|i| json!(i)).collect();
        assert!(w.reg.extra_updated(s, json!({ "list": big })).is_err());
    }

    #[test]
    fn event_rate_is_limited_per_socket() {
        let limits = Limits {
            event_burst: 2.0,
            events_per_sec: 1.0,
            ..Limits::default()
        };
        let mut w = World::new(limits, false);
        let s = w.connect("s", KeyStatus::Missing);
        assert_eq!(w.reg.admit(s, w.now), Verdict::Allow);
        assert_eq!(w.reg.admit(s, w.now), Verdict::Allow);
        assert_eq!(w.reg.admit(s, w.now), Verdict::Drop { warn: true });
        assert_eq!(w.reg.admit(s, w.now), Verdict::Drop { warn: false });
        w.now += Duration::from_secs(1);
        assert_eq!(w.reg.admit(s, w.now), Verdict::Allow);
        assert_eq!(w.reg.admit(Sid::new(), w.now), Verdict::Unknown);
    }

    #[test]
    fn disconnect_with_and_owner_shift() {
        let mut w = World::new(Limits::default(), false);
        let a = w.connect("a", KeyStatus::Valid);
        let b = w.connect("b", KeyStatus::Valid);
        let mut conf = room("conf");
        conf.session = json!({"audio": true, "video": true});
        w.reg.open_room(a, conf.clone(), w.now);
        w.reg.join_room(b, conf, w.now);
        w.reg
            .relay(a, env("a", "b", json!({"type": "offer"})))
            .unwrap();
        let fx = w.reg.disconnect_with(a, "b");
        assert_eq!(
            emits_to(&fx, a),
            vec![("user-disconnected".into(), vec![json!("b")])]
        );
        assert_eq!(
            emits_to(&fx, b),
            vec![("user-disconnected".into(), vec![json!("a")])]
        );
        let fx = w.reg.disconnect(a);
        assert_eq!(
            emits_to(&fx, b),
            vec![("set-isInitiator-true".into(), vec![json!("conf")])]
        );
        assert_eq!(
            w.reg.room_members("conf"),
            Some(("b".into(), vec!["b".into()]))
        );
        assert_eq!(w.reg.check_presence(b, "conf")[0], json!(true));
    }
}
