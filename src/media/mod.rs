//! Media: WebRTC peers, RTP depacketizing, decoding, scaling and the
//! latest-frame slots the dashboard pulls from.
pub mod camera_check;
