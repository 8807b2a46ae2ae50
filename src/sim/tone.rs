//! The synthetic student's microphone for `student --tone`: a pulsing sine
//! tone, encoded as Opus (libopus) in 20 ms frames, each carrying its RFC
//! 6464 audio level computed from the PCM, as Chromium's sender does. The
//! monitor's meter reads that level ([`crate::media::audio`]), so a toned
//! student's meter moves and a silent one's stays at the floor.
//!
//! The tone beeps: [`BEEP`] on, the rest of each second off, and each beep
//! at the next of [`BEEP_AMPLITUDES`], so the meter visibly changes from
//! second to second rather than sitting at one value.
//!
//! The tone repeats every [`BEEP_AMPLITUDES`]`.len()` seconds, so each
//! student encodes one cycle when it starts ([`ToneLoop`], about 150 packets
//! and 6 KB) and its peers send those packets round and round: the cost per
//! student is one encoder run at start instead of a running encoder. The
//! cycle is taken from a second pass of the encoder, whose state at its
//! start is the state after a whole cycle, so the loop point is seamless.

use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::{Error, Result};

/// Opus's and WebRTC's audio clock.
pub const SAMPLE_RATE: u32 = 48_000;
/// One Opus frame (and one RTP packet).
pub const FRAME: Duration = Duration::from_millis(20);
/// Samples in one frame (mono).
pub const FRAME_SAMPLES: usize = 960;
/// How long each beep lasts; it repeats every second.
pub const BEEP: Duration = Duration::from_millis(400);
/// Peak amplitude of successive beeps, as fractions of full scale: about
/// -9, -18 and -27 dBov, i.e. 0.85, 0.70 and 0.55 on the monitor's meter.
pub const BEEP_AMPLITUDES: [f64; 3] = [0.5, 0.18, 0.06];
/// Fade in and out of each beep (no clicks).
const RAMP_SAMPLES: u64 = 480;
/// Audible frequencies the tone accepts.
pub const TONE_HZ: std::ops::RangeInclusive<f32> = 20.0..=20_000.0;
/// Opus bitrate of the tone (a voice call's).
const BITRATE: i32 = 32_000;
/// Frames in one cycle of the tone (one beep per second, each loudness once).
pub const CYCLE_FRAMES: usize = BEEP_AMPLITUDES.len() * 50;

/// One encoded 20 ms frame and its level.
#[derive(Debug, Clone)]
pub struct AudioPacket {
    pub data: Bytes,
    /// RFC 6464 level in -dBov: 0 loudest, 127 silence.
    pub level: u8,
    /// The tone is sounding in this frame (the extension's V bit).
    pub voice: bool,
}

/// The tone's samples, phase-continuous across frames.
#[derive(Debug, Clone)]
pub struct Tone {
    hz: f64,
    /// Samples produced so far.
    n: u64,
}

impl Tone {
    pub fn new(hz: f32) -> Tone {
        Tone {
            hz: f64::from(hz),
            n: 0,
        }
    }

    /// The next frame of mono PCM; true when the beep sounds in it.
    pub fn next_frame(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> bool {
        let rate = u64::from(SAMPLE_RATE);
        let beep = BEEP.as_millis() as u64 * rate / 1000;
        let mut sounding = false;
        for s in out.iter_mut() {
            let second = self.n / rate;
            let within = self.n % rate;
            let amp = if within < beep {
                let edge = within.min(beep - within).min(RAMP_SAMPLES) as f64;
                BEEP_AMPLITUDES[(second % BEEP_AMPLITUDES.len() as u64) as usize] * edge
                    / RAMP_SAMPLES as f64
            } else {
                0.0
            };
            sounding |= amp > 0.0;
            let t = self.n as f64 / rate as f64;
            *s = (amp * (TAU * self.hz * t).sin() * f64::from(i16::MAX)).round() as i16;
            self.n += 1;
        }
        sounding
    }
}

pub use crate::media::audio::level_dbov;

/// An Opus encoder for the tone: mono, 48 kHz, [`BITRATE`].
pub fn encoder() -> Result<opus::Encoder> {
    let opus_err = |e: opus::Error| Error::Other(anyhow::anyhow!("Opus encoder: {e}"));
    let mut enc = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Audio)
        .map_err(opus_err)?;
    enc.set_bitrate(opus::Bitrate::Bits(BITRATE))
        .map_err(opus_err)?;
    Ok(enc)
}

/// Encode one frame of the tone.
pub fn encode_frame(
    enc: &mut opus::Encoder,
    tone: &mut Tone,
    pcm: &mut [i16; FRAME_SAMPLES],
) -> Result<AudioPacket> {
    let voice = tone.next_frame(pcm);
    let level = level_dbov(pcm);
    let data = enc
        .encode_vec(pcm, 1500)
        .map_err(|e| Error::Other(anyhow::anyhow!("Opus encode: {e}")))?;
    Ok(AudioPacket {
        data: Bytes::from(data),
        level,
        voice,
    })
}

/// One student's tone: a cycle of encoded packets its peers send in a loop.
#[derive(Debug, Clone)]
pub struct ToneLoop {
    packets: Arc<[AudioPacket]>,
}

impl ToneLoop {
    /// Encode the tone at `hz` (two cycles; the second is kept).
    pub fn new(hz: f32) -> Result<ToneLoop> {
        if !TONE_HZ.contains(&hz) {
            return Err(Error::Invalid(format!(
                "--tone {hz}: use a frequency from 20 to 20000 Hz, e.g. --tone 440"
            )));
        }
        let mut enc = encoder()?;
        let mut tone = Tone::new(hz);
        let mut pcm = [0i16; FRAME_SAMPLES];
        let mut packets = Vec::with_capacity(CYCLE_FRAMES);
        for i in 0..2 * CYCLE_FRAMES {
            let p = encode_frame(&mut enc, &mut tone, &mut pcm)?;
            if i >= CYCLE_FRAMES {
                packets.push(p);
            }
        }
        Ok(ToneLoop {
            packets: packets.into(),
        })
    }

    /// The packets of one cycle, in order; send one every [`FRAME`].
    pub fn packets(&self) -> &[AudioPacket] {
        &self.packets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_rms() {
        assert_eq!(level_dbov(&[0; 960]), 127);
        assert_eq!(level_dbov(&[]), 127);
        assert_eq!(level_dbov(&[i16::MAX; 960]), 0);
        // A full-scale sine has an RMS of 1/sqrt(2): -3 dBov.
        let sine: Vec<i16> = (0..960)
            .map(|i| ((TAU * i as f64 / 48.0).sin() * f64::from(i16::MAX)) as i16)
            .collect();
        assert_eq!(level_dbov(&sine), 3);
        let quiet: Vec<i16> = sine.iter().map(|s| s / 100).collect();
        assert!((42..=44).contains(&level_dbov(&quiet)));
    }

    #[test]
    fn the_tone_beeps_at_changing_loudness() {
        let mut tone = Tone::new(440.0);
        let mut pcm = [0i16; FRAME_SAMPLES];
        // One second = 50 frames: 20 sounding (400 ms), 30 silent.
        let mut levels = Vec::new();
        for _ in 0..150 {
            let voice = tone.next_frame(&mut pcm);
            levels.push((voice, level_dbov(&pcm)));
        }
        for second in 0..3 {
            let frames = &levels[second * 50..(second + 1) * 50];
            assert!(frames[..20].iter().all(|(v, _)| *v));
            assert!(frames[20..].iter().all(|(v, l)| !*v && *l == 127));
        }
        // The middle of each beep: -9, -18, -27 dBov (amplitude / sqrt 2).
        assert_eq!(levels[10].1, 9);
        assert_eq!(levels[60].1, 18);
        assert_eq!(levels[110].1, 27);
    }

    #[test]
    fn the_loop_is_one_cycle_that_decodes_seamlessly() {
        let tone = ToneLoop::new(440.0).unwrap();
        assert_eq!(tone.packets().len(), CYCLE_FRAMES);
        assert!(ToneLoop::new(30_000.0).is_err());
        // Twice round the loop, decoded: each beep is as loud as encoded,
        // the pauses are silent, also across the loop point.
        let mut dec = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).unwrap();
        let mut out = [0i16; FRAME_SAMPLES];
        for (i, p) in tone.packets().iter().chain(tone.packets()).enumerate() {
            let n = dec.decode(&p.data, &mut out, false).unwrap();
            assert_eq!(n, FRAME_SAMPLES);
            let heard = level_dbov(&out);
            match i % 50 {
                5..15 => assert!(
                    heard.abs_diff(p.level) <= 2,
                    "frame {i}: {heard} vs {}",
                    p.level
                ),
                30..50 => assert!(heard >= 80, "frame {i} should be quiet: {heard}"),
                _ => {}
            }
        }
    }

    #[test]
    fn encoded_frames_decode_back_to_the_tone() {
        let mut enc = encoder().unwrap();
        let mut dec = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono).unwrap();
        let mut tone = Tone::new(440.0);
        let mut pcm = [0i16; FRAME_SAMPLES];
        let mut out = [0i16; FRAME_SAMPLES];
        let started = std::time::Instant::now();
        let mut loud = Vec::new();
        for i in 0..50 {
            let p = encode_frame(&mut enc, &mut tone, &mut pcm).unwrap();
            assert!(!p.data.is_empty() && p.data.len() < 400, "{}", p.data.len());
            let n = dec.decode(&p.data, &mut out, false).unwrap();
            assert_eq!(n, FRAME_SAMPLES);
            if (5..15).contains(&i) {
                loud.push(level_dbov(&out));
                assert_eq!(p.level, 9);
            }
            if i > 30 {
                assert_eq!(p.level, 127);
            }
        }
        // The decoded beep is about as loud as the one encoded.
        assert!(loud.iter().all(|l| (7..=12).contains(l)), "{loud:?}");
        eprintln!(
            "tone: 50 frames (1 s of audio) encoded and decoded in {:?}",
            started.elapsed()
        );
    }
}
