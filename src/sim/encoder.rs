//! H.264 encoding of the test pattern with openh264, set up like Chromium's
//! software path: Constrained Baseline (profile-level-id 42e01f), real-time
//! camera mode, one thread per encoder (many students share the cores), a
//! periodic keyframe and keyframes on request.
//!
//! Frame skipping is off: a skipped frame would look like network loss to a
//! receiver counting the pattern's frames. For the default flat pattern rate
//! control is buffer-based: it needs far less than any target (320x240@5
//! about 23 kbit/s, 640x480@20 about 120 kbit/s). The textured pattern
//! (`--texture`) needs real rate control to stay near the target, so it uses
//! bitrate mode, which stays within the target without skipping in practice
//! (measured: 87 of 100 kbit/s, 970 of 1228 kbit/s), though openh264 warns on
//! stderr once per encoder that it cannot promise that without skipping.

use bytes::Bytes;
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level, Profile,
    RateControlMode, UsageType,
};

use super::pattern::Yuv420;
use crate::{Error, Result};

/// One encoded picture: an Annex-B access unit (start codes; SPS/PPS before
/// each IDR), ready for the RTP packetizer.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub data: Bytes,
    /// An IDR: a viewer can start decoding here.
    pub keyframe: bool,
}

/// A keyframe at least this often even without requests, so a viewer that
/// lost packets without sending PLI still recovers.
const KEYFRAME_EVERY_SECS: u32 = 5;

pub struct VideoEncoder {
    encoder: Encoder,
    frame_ms: u64,
    frames: u64,
}

impl VideoEncoder {
    /// An encoder for the flat pattern at `width` x `height`, `fps`.
    pub fn new(width: usize, height: usize, fps: u32) -> Result<VideoEncoder> {
        Self::build(width, height, fps, RateControlMode::Bufferbased)
    }

    /// An encoder that holds the target bitrate, for the textured pattern.
    /// The target is 0.2 bits per pixel per frame, at least 100 kbit/s
    /// (320x240@5: 100 kbit/s, 640x480@20: 1.2 Mbit/s), in the range
    /// Chromium uses for such sizes.
    pub fn rate_controlled(width: usize, height: usize, fps: u32) -> Result<VideoEncoder> {
        Self::build(width, height, fps, RateControlMode::Bitrate)
    }

    fn build(width: usize, height: usize, fps: u32, mode: RateControlMode) -> Result<VideoEncoder> {
        let fps = fps.clamp(1, 60);
        let bps = ((width * height) as u64 * fps as u64 / 5).max(100_000) as u32;
        let level = if width * height <= 352 * 288 {
            Level::Level_2_1
        } else {
            Level::Level_3_1
        };
        let config = EncoderConfig::new()
            .profile(Profile::Baseline)
            .level(level)
            .usage_type(UsageType::CameraVideoRealTime)
            .rate_control_mode(mode)
            .bitrate(BitRate::from_bps(bps))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .skip_frames(false)
            .intra_frame_period(IntraFramePeriod::from_num_frames(fps * KEYFRAME_EVERY_SECS))
            .num_threads(1);
        let encoder = Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| Error::Other(anyhow::anyhow!("cannot start the H.264 encoder: {e}")))?;
        Ok(VideoEncoder {
            encoder,
            frame_ms: 1000 / fps as u64,
            frames: 0,
        })
    }

    /// Make the next frame a keyframe (a viewer joined or sent PLI/FIR).
    pub fn request_keyframe(&mut self) {
        self.encoder.force_intra_frame();
    }

    /// Encode one picture; `None` when the encoder produced nothing for it.
    pub fn encode(&mut self, picture: &Yuv420) -> Result<Option<EncodedFrame>> {
        let ts = openh264::Timestamp::from_millis(self.frames * self.frame_ms);
        self.frames += 1;
        let stream = self
            .encoder
            .encode_at(picture, ts)
            .map_err(|e| Error::Other(anyhow::anyhow!("H.264 encoding failed: {e}")))?;
        let keyframe = match stream.frame_type() {
            FrameType::Skip | FrameType::Invalid => return Ok(None),
            FrameType::IDR => true,
            _ => false,
        };
        let data = stream.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data: Bytes::from(data),
            keyframe,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::pattern::{Marks, Pattern};
    use super::*;

    #[test]
    fn first_frame_and_requested_frames_are_keyframes() {
        let mut p = Pattern::new(160, 120, "K").expect("pattern");
        let mut e = VideoEncoder::new(160, 120, 5).expect("encoder");
        let mut kinds = Vec::new();
        for i in 0..6u32 {
            if i == 3 {
                e.request_keyframe();
            }
            let f = e
                .encode(p.draw(Marks {
                    counter: i,
                    sent_unix_ms: i as u64 * 200,
                }))
                .expect("encode")
                .expect("a frame each time");
            assert!(f.data.starts_with(&[0, 0, 0, 1]) || f.data.starts_with(&[0, 0, 1]));
            kinds.push(f.keyframe);
        }
        assert_eq!(kinds, [true, false, false, true, false, false]);
    }

    #[test]
    fn sps_says_constrained_baseline() {
        let mut p = Pattern::new(160, 120, "K").expect("pattern");
        let mut e = VideoEncoder::new(160, 120, 5).expect("encoder");
        let f = e
            .encode(p.draw(Marks {
                counter: 0,
                sent_unix_ms: 0,
            }))
            .expect("encode")
            .expect("frame");
        let sps = openh264::nal_units(&f.data)
            .map(|nal| {
                nal.iter()
                    .skip_while(|b| **b == 0)
                    .skip(1)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .find(|nal| nal.first().map(|h| h & 0x1F) == Some(7))
            .expect("an SPS before the IDR");
        assert_eq!(sps[1], 66, "profile_idc baseline");
        assert!(sps[2] & 0x40 != 0, "constraint_set1 (constrained baseline)");
    }
}
