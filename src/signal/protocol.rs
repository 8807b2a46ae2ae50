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
