//! Media: WebRTC peers, RTP depacketizing, decoding, scaling and the
//! audio level meter.
//!
//! - [`assemble`]: RTP packets to whole frames, released on the marker bit.
//! - [`session`]: one receive-only peer connection per student (answers the
//!   student's offer, trickles candidates, reads RTP, sends PLIs).
//! - [`decode`]: the decode worker pool (openh264; libvpx for VP8 in
//!   [`vp8`]), off the async runtime,
//!   publishing into [`crate::proctor::FrameSlots`].
//! - [`scale`]: I420 → RGB thumbnails, scaled in YUV first (pure).
//! - [`audio`]: audio level from the RFC 6464 header extension (pure).
//! - [`sdp`]: the codec-preference edit of the offer and extmap look-ups (pure).
//! - [`camera_check`]: frozen or black camera detection from pictures (pure).

pub mod assemble;
pub mod audio;
pub mod camera_check;
pub mod decode;
pub mod scale;
pub mod sdp;
pub mod session;
pub mod vp8;

pub use decode::{Codec, DecodePool, FrameSink};
pub use session::{MediaConfig, MediaSession, SessionEvent, THUMBNAIL_MAX};
