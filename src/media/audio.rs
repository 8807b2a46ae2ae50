//! Audio level meter from the RFC 6464 `ssrc-audio-level` RTP header
//! extension.
//!
//! Chromium puts the level of every Opus packet into this one-byte header
//! extension when the answer accepts it. Reading it costs nothing, whereas
//! decoding Opus for a meter costs a decoder per student and about 1–2 % of a
//! core each. The meter shows "is this student's microphone picking up
//! sound", which the sender's own measurement answers as well as ours would.
//! A sender that does not send the extension gets [`OpusLevel`]: its packets
//! are decoded (libopus) and measured here instead.

/// Loudness 0.0 (silence, -60 dBov or below) ..= 1.0 (0 dBov) from the
/// extension payload: one byte, `V | level`, level in -dBov (0..=127).
pub fn level_from_extension(payload: &[u8]) -> Option<f32> {
    let byte = *payload.first()?;
    let dbov = (byte & 0x7f) as f32;
    Some(((60.0 - dbov.min(60.0)) / 60.0).clamp(0.0, 1.0))
}

/// The RFC 6464 level of a frame: its RMS relative to full scale in -dBov,
/// 0..=127 (127 for digital silence), as WebRTC's `RmsLevel` computes it.
pub fn level_dbov(pcm: &[i16]) -> u8 {
    if pcm.is_empty() {
        return 127;
    }
    let mean_square = pcm
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / pcm.len() as f64;
    let full = f64::from(i16::MAX) * f64::from(i16::MAX);
    if mean_square <= 0.0 {
        return 127;
    }
    let dbov = 10.0 * (mean_square / full).log10();
    (-dbov).round().clamp(0.0, 127.0) as u8
}

/// The level of Opus packets that carry no level extension: decode them and
/// measure the PCM as the extension would have said. Only used for such
/// senders (a decoder per student costs ~1–2 % of a core).
pub struct OpusLevel {
    decoder: opus::Decoder,
    pcm: Vec<i16>,
}

impl OpusLevel {
    /// A mono 48 kHz decoder (libopus downmixes stereo streams); `None` if
    /// libopus cannot make one.
    pub fn new() -> Option<OpusLevel> {
        let decoder = opus::Decoder::new(48_000, opus::Channels::Mono).ok()?;
        // 120 ms at 48 kHz: the longest Opus packet.
        Some(OpusLevel {
            decoder,
            pcm: vec![0; 5760],
        })
    }

    /// Loudness 0.0..=1.0 of one RTP payload (as [`level_from_extension`]);
    /// `None` for a payload libopus cannot decode.
    pub fn level(&mut self, payload: &[u8]) -> Option<f32> {
        let n = self.decoder.decode(payload, &mut self.pcm, false).ok()?;
        level_from_extension(&[level_dbov(&self.pcm[..n])])
    }
}

/// The loudest level seen since the last read (the meter shows peaks, so a
/// word spoken between two stats lines is not missed).
#[derive(Debug, Default)]
pub struct PeakMeter {
    peak: f32,
}

impl PeakMeter {
    pub fn push(&mut self, level: f32) {
        self.peak = self.peak.max(level);
    }

    /// The peak since the last call, then reset.
    pub fn take(&mut self) -> f32 {
        std::mem::take(&mut self.peak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_dbov_to_unit_range() {
        assert_eq!(level_from_extension(&[0]), Some(1.0));
        assert_eq!(level_from_extension(&[0x80 | 127]), Some(0.0));
        assert_eq!(level_from_extension(&[30]), Some(0.5));
        assert_eq!(level_from_extension(&[]), None);
    }

    /// A packet without the extension is decoded: a loud tone reads loud,
    /// silence reads 0, garbage is no reading.
    #[test]
    fn opus_packets_without_the_extension_are_measured() {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
        let mut meter = OpusLevel::new().unwrap();
        let mut packet = vec![0u8; 1500];
        let tone: Vec<i16> = (0..960)
            .map(|i| {
                ((i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 16_000.0) as i16
            })
            .collect();
        let mut loud = 0.0f32;
        for _ in 0..5 {
            // A few frames: the encoder's first frame is quieter.
            let n = enc.encode(&tone, &mut packet).unwrap();
            loud = meter.level(&packet[..n]).unwrap();
        }
        // 16000/32767 peak sine: -9 dBov RMS, 0.85 on the meter.
        assert!((0.8..=0.9).contains(&loud), "{loud}");
        // Silence (after the codec's overlap has rung out).
        let mut quiet = 1.0f32;
        for _ in 0..10 {
            let n = enc.encode(&[0i16; 960], &mut packet).unwrap();
            quiet = meter.level(&packet[..n]).unwrap();
        }
        assert!(quiet < 0.05, "{quiet}");
        assert_eq!(meter.level(&[0xff; 3]), None);
    }

    #[test]
    fn peak_meter_resets_on_take() {
        let mut m = PeakMeter::default();
        m.push(0.2);
        m.push(0.7);
        m.push(0.1);
        assert_eq!(m.take(), 0.7);
        assert_eq!(m.take(), 0.0);
    }
}
