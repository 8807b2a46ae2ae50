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
