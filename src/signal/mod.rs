//! Signalling: socket.io (Engine.IO v4 / Socket.IO v5) in the dialect of
//! RTCMultiConnection 3.7, as RTCProctor pages speak it.
//!
//! - [`protocol`]: event names and payload types shared by server and client.
//! - [`server`]: the signalling server (`rtcproctor serve`, and embedded in
//!   `monitor` and `demo`): lifecycle, HTTP routes, [`server::start`].
//! - [`handlers`]: one function per socket.io event.
//! - [`rooms`]: users and rooms, the rules of who may reach whom (pure state).
//! - [`tls`]: HTTPS with a self-signed certificate or PEM files.
//! - [`client`]: our socket.io client (monitor engine, synthetic students).
//! - [`packet`]: Engine.IO v4 / Socket.IO v5 text framing (pure).

pub mod client;
pub mod handlers;
pub mod packet;
pub mod protocol;
pub mod rooms;
pub mod server;
pub mod tls;
