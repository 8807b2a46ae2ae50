//! Audio level meter from the RFC 6464 `ssrc-audio-level` RTP header
//! extension.
//!
//! Chromium puts the level of every Opus packet into this one-byte header
//! extension when the answer accepts it. Reading it costs nothing, whereas
//! decoding Opus for a meter costs a decoder per student and about 1–2 % of a
//! core each. The meter shows "is this student's microphone picking up
//! sound", which the sender's own measurement answers as well as ours would.
//! A sender that does not send the extension shows level 0.

/// Loudness 0.0 (silence, -60 dBov or below) ..= 1.0 (0 dBov) from the
/// extension payload: one byte, `V | level`, level in -dBov (0..=127).
pub fn level_from_extension(payload: &[u8]) -> Option<f32> {
    let byte = *payload.first()?;
    let dbov = (byte & 0x7f) as f32;
    Some(((60.0 - dbov.min(60.0)) / 60.0).clamp(0.0, 1.0))
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
