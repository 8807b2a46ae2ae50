//! Reassembles video frames from RTP packets and releases each frame the
//! moment it is complete.
//!
//! Why not webrtc-rs's `SampleBuilder`: it releases a frame only when the
//! first packet of the *next* frame arrives (it wants the next timestamp to
//! give the sample a duration), which adds one frame interval of latency
//! (200 ms at 5 fps), and each instance allocates two 65,536-entry tables
//! (about 12 MiB per video track, most of the engine's memory per student).
//!
//! Here a frame is released on the RTP marker bit (the depacketizer's
//! partition tail) as soon as every packet since the previous frame's end is
//! present, so sequence numbers are contiguous; only packets in flight are
//! kept. Payloads are parsed by the crate's depacketizers (`H264Packet`,
//! `Vp8Packet`), a fresh one per frame so a broken frame's fragments never
//! leak into the next.
//!
//! Loss: a gap holds later frames back (frames decode in order) until the
//! missing packet arrives (a NACK retransmission) or it is too late: more
//! than `max_late` packets behind the newest, or the oldest waiting packet
//! arrived `max_wait` ago. Then the incomplete frame is dropped and the next
//! released frame carries the number of packets dropped before it, so the
//! session waits for a keyframe and asks for one with a PLI.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp::packet::Packet;
use rtc::rtp::packetizer::Depacketizer;

/// Packets a gap may fall behind the newest packet before it is given up.
pub const DEFAULT_MAX_LATE: u16 = 512;

/// How long a gap may hold frames back before it is given up (room for a
/// NACK and its retransmission on a slow path).
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(500);

/// One reassembled frame (an access unit, Annex-B for H.264).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledFrame {
    pub data: Bytes,
    pub rtp_timestamp: u32,
    /// Packets lost or discarded since the previous released frame; when
    /// non-zero the decoder must restart at a keyframe.
    pub dropped_packets: u32,
}

struct Arrived {
    packet: Packet,
    at: Instant,
}

/// Frame reassembly for one video stream, codec given by its depacketizer.
pub struct FrameAssembler<D> {
    /// Packets not yet released, by extended sequence number.
    packets: BTreeMap<u64, Arrived>,
    /// Extended sequence number of the first packet not yet consumed (the
    /// previous frame's end + 1).
    next: Option<u64>,
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    /// Whether anything was released or dropped: until then an earlier
    /// packet (reordered at the very start) may still move `next` back.
    started: bool,
    dropped: u32,
    max_late: u64,
    max_wait: Duration,
    codec: PhantomData<fn() -> D>,
}

impl<D: Depacketizer + Default> Default for FrameAssembler<D> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LATE, DEFAULT_MAX_WAIT)
    }
}

impl<D: Depacketizer + Default> FrameAssembler<D> {
    pub fn new(max_late: u16, max_wait: Duration) -> Self {
        FrameAssembler {
            packets: BTreeMap::new(),
            next: None,
            highest: None,
            started: false,
            dropped: 0,
            max_late: u64::from(max_late.max(1)),
            max_wait,
            codec: PhantomData,
        }
    }

    /// Packets held (waiting for the rest of their frame or for a gap).
    pub fn pending(&self) -> usize {
        self.packets.len()
    }

    /// Add one packet. Duplicates and packets older than what was already
    /// released are ignored.
    pub fn push(&mut self, now: Instant, packet: Packet) {
        let seq = packet.header.sequence_number;
        let ext = match self.highest {
            // Start far from zero so sequence numbers may go backwards.
            None => (1u64 << 32) + u64::from(seq),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                h.saturating_add_signed(delta)
            }
        };
        match self.next {
            None => self.next = Some(ext),
            Some(n) if ext < n => {
                if self.started {
                    return; // late: its frame was released or given up
                }
                self.next = Some(ext);
            }
            Some(_) => {}
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.packets
            .entry(ext)
            .or_insert(Arrived { packet, at: now });
    }

    /// The next complete frame, if any. Call until `None` after each push.
    pub fn pop(&mut self, now: Instant) -> Option<AssembledFrame> {
        loop {
            let next = self.next?;
            match self.complete_frame_from(next) {
                Ok(end) => {
                    if let Some(frame) = self.release(next, end) {
                        return Some(frame);
                    }
                }
                Err(gap) => {
                    if !self.give_up_gap(now, next, gap) {
                        return None;
                    }
                }
            }
        }
    }

    /// The last sequence number of the frame starting at `next` if all its
    /// packets are here, else the first missing sequence number.
    fn complete_frame_from(&self, next: u64) -> Result<u64, u64> {
        let head_ts = self.packets.get(&next).map(|a| a.packet.header.timestamp);
        let mut i = next;
        while let Some(a) = self.packets.get(&i) {
            let p = &a.packet;
            if i > next && Some(p.header.timestamp) != head_ts {
                // The previous packet ended a frame without a marker bit.
                return Ok(i - 1);
            }
            // A fresh depacketizer: the partition tail only looks at the
            // marker and the payload.
            if D::default().is_partition_tail(p.header.marker, &p.payload) {
                return Ok(i);
            }
            i += 1;
        }
        Err(i)
    }

    /// Consume the packets `next..=end`: a frame, or nothing when they were
    /// padding or not a whole frame (then they count as dropped).
    fn release(&mut self, next: u64, end: u64) -> Option<AssembledFrame> {
        self.next = Some(end + 1);
        self.started = true;
        let packets: Vec<Packet> = (next..=end)
            .filter_map(|k| self.packets.remove(&k))
            .map(|a| a.packet)
            .collect();
        let rtp_timestamp = packets.first().map_or(0, |p| p.header.timestamp);
        // Padding-only packets carry no media and are no loss.
        let media: Vec<&Packet> = packets.iter().filter(|p| !p.payload.is_empty()).collect();
        let first = media.first()?;
        let mut depacketizer = D::default();
        if !depacketizer.is_partition_head(&first.payload) {
            // The frame's first packet was lost earlier (we joined or gave up
            // mid-frame).
            self.dropped = self.dropped.saturating_add(media.len() as u32);
            return None;
        }
        let mut data = Vec::new();
        for p in &media {
            match depacketizer.depacketize(&p.payload) {
                Ok(part) => data.extend_from_slice(&part),
                Err(e) => {
                    tracing::debug!("undecodable RTP payload, frame dropped: {e}");
                    self.dropped = self.dropped.saturating_add(media.len() as u32);
                    return None;
                }
            }
        }
        Some(AssembledFrame {
            data: Bytes::from(data),
            rtp_timestamp,
            dropped_packets: std::mem::take(&mut self.dropped),
        })
    }

    /// The frame from `next` misses packet `gap`. When that is too late to
    /// wait for, drop what is held before the first packet after the gap
    /// and return true (try again from there).
    fn give_up_gap(&mut self, now: Instant, next: u64, gap: u64) -> bool {
        let Some(after) = self.packets.range(gap + 1..).next().map(|(k, _)| *k) else {
            return false; // nothing after it: the frame is still arriving
        };
        let behind = self.highest.unwrap_or(next).saturating_sub(next);
        let oldest = self.packets.values().map(|a| a.at).min();
        let waited = oldest.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        if behind < self.max_late && waited < self.max_wait {
            return false;
        }
        let lost = after - next;
        self.packets.retain(|k, _| *k >= after);
        self.dropped = self
            .dropped
            .saturating_add(lost.min(u64::from(u32::MAX)) as u32);
        self.next = Some(after);
        self.started = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::codec::h264::H264Packet;
    use rtc::rtp::codec::vp8::Vp8Packet;
    use rtc::rtp::header::Header;

    fn pkt(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Packet {
        Packet {
            header: Header {
                version: 2,
                marker,
                payload_type: 96,
                sequence_number: seq,
                timestamp: ts,
                ssrc: 1,
                ..Header::default()
            },
            payload: Bytes::copy_from_slice(payload),
        }
    }

    /// A VP8 packet: 1-byte payload descriptor (S bit on the first packet
    /// of a frame) then `body`.
    fn vp8(seq: u16, ts: u32, start: bool, marker: bool, body: &[u8]) -> Packet {
        let mut payload = vec![if start { 0x10 } else { 0x00 }];
        payload.extend_from_slice(body);
        pkt(seq, ts, marker, &payload)
    }

    /// Frame `n` of a VP8 stream in `parts` packets starting at `seq`.
    fn vp8_frame(seq: u16, ts: u32, n: u8, parts: u16) -> Vec<Packet> {
        (0..parts)
            .map(|i| {
                vp8(
                    seq.wrapping_add(i),
                    ts,
                    i == 0,
                    i + 1 == parts,
                    &[n, i as u8, 0xaa, 0xbb],
                )
            })
            .collect()
    }

    fn frame_body(n: u8, parts: u16) -> Vec<u8> {
        (0..parts).flat_map(|i| [n, i as u8, 0xaa, 0xbb]).collect()
    }

    fn feed(
        a: &mut FrameAssembler<Vp8Packet>,
        now: Instant,
        packets: impl IntoIterator<Item = Packet>,
    ) -> Vec<AssembledFrame> {
        let mut out = Vec::new();
        for p in packets {
            a.push(now, p);
            while let Some(f) = a.pop(now) {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn in_order_frames_are_released_on_their_marker() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        let f1 = vp8_frame(100, 3000, 1, 3);
        // The first two packets alone release nothing.
        assert!(feed(&mut a, now, f1[..2].to_vec()).is_empty());
        // The marker packet releases the frame at once, before any packet
        // of the next frame.
        let out = feed(&mut a, now, f1[2..].to_vec());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.as_ref(), frame_body(1, 3).as_slice());
        assert_eq!(out[0].rtp_timestamp, 3000);
        assert_eq!(out[0].dropped_packets, 0);
        let out = feed(&mut a, now, vp8_frame(103, 6000, 2, 2));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.as_ref(), frame_body(2, 2).as_slice());
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn single_packet_frames_each_come_out_immediately() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        for n in 0..5u8 {
            let out = feed(&mut a, now, vp8_frame(10 + n as u16, 90 * n as u32, n, 1));
            assert_eq!(out.len(), 1, "frame {n}");
            assert_eq!(out[0].data.as_ref(), frame_body(n, 1).as_slice());
        }
    }

    #[test]
    fn reordered_packets_are_put_back_in_order() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        let f1 = vp8_frame(200, 1000, 1, 3);
        let f2 = vp8_frame(203, 4000, 2, 2);
        // Marker first, middle last; the second frame complete before the
        // first.
        let order = vec![
            f1[0].clone(),
            f1[2].clone(),
            f2[1].clone(),
            f2[0].clone(),
            f1[1].clone(),
        ];
        let out = feed(&mut a, now, order);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data.as_ref(), frame_body(1, 3).as_slice());
        assert_eq!(out[1].data.as_ref(), frame_body(2, 2).as_slice());
        assert!(out.iter().all(|f| f.dropped_packets == 0));
    }

    #[test]
    fn reordering_at_the_very_start_is_tolerated() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        let f1 = vp8_frame(500, 1000, 1, 3);
        let out = feed(
            &mut a,
            now,
            vec![f1[1].clone(), f1[0].clone(), f1[2].clone()],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.as_ref(), frame_body(1, 3).as_slice());
        assert_eq!(out[0].dropped_packets, 0);
    }

    #[test]
    fn duplicates_and_late_copies_are_ignored() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        let f1 = vp8_frame(300, 1000, 1, 2);
        let f2 = vp8_frame(302, 4000, 2, 2);
        let order = vec![
            f1[0].clone(),
            f1[0].clone(),
            f1[1].clone(),
            f1[1].clone(), // after release: late
            f2[0].clone(),
            f1[0].clone(), // retransmission of a released packet
            f2[1].clone(),
        ];
        let out = feed(&mut a, now, order);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data.as_ref(), frame_body(1, 2).as_slice());
        assert_eq!(out[1].data.as_ref(), frame_body(2, 2).as_slice());
        assert!(out.iter().all(|f| f.dropped_packets == 0));
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn a_retransmission_within_the_wait_fills_the_gap() {
        let mut a = FrameAssembler::<Vp8Packet>::new(512, Duration::from_millis(500));
        let t0 = Instant::now();
        let f1 = vp8_frame(400, 1000, 1, 3);
        let f2 = vp8_frame(403, 4000, 2, 1);
        let out = feed(
            &mut a,
            t0,
            vec![f1[0].clone(), f1[2].clone(), f2[0].clone()],
        );
        assert!(out.is_empty(), "held back by the gap");
        let later = t0 + Duration::from_millis(100);
        let out = feed(&mut a, later, vec![f1[1].clone()]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data.as_ref(), frame_body(1, 3).as_slice());
        assert!(out.iter().all(|f| f.dropped_packets == 0));
    }

    #[test]
    fn loss_is_given_up_after_the_wait_and_reported() {
        let mut a = FrameAssembler::<Vp8Packet>::new(512, Duration::from_millis(500));
        let t0 = Instant::now();
        let f1 = vp8_frame(400, 1000, 1, 3); // 401 is lost
        let f2 = vp8_frame(403, 4000, 2, 2);
        let out = feed(
            &mut a,
            t0,
            vec![f1[0].clone(), f1[2].clone(), f2[0].clone()],
        );
        assert!(out.is_empty());
        // Still within the wait: nothing.
        assert!(a.pop(t0 + Duration::from_millis(100)).is_none());
        // The next packet after the wait gives the gap up: frame 1 is
        // dropped whole (3 packets), frame 2 comes out and says so.
        let out = feed(&mut a, t0 + Duration::from_millis(600), vec![f2[1].clone()]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.as_ref(), frame_body(2, 2).as_slice());
        assert_eq!(out[0].dropped_packets, 3);
        assert_eq!(a.pending(), 0);
        // The lost packet arriving now is too late and changes nothing.
        let later = t0 + Duration::from_millis(700);
        assert!(feed(&mut a, later, vec![f1[1].clone()]).is_empty());
        let out = feed(&mut a, later, vp8_frame(405, 7000, 3, 1));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dropped_packets, 0);
    }

    #[test]
    fn loss_is_given_up_when_too_many_packets_are_behind() {
        let mut a = FrameAssembler::<Vp8Packet>::new(4, Duration::from_secs(3600));
        let now = Instant::now();
        let mut packets = vp8_frame(10, 1000, 1, 1);
        // Frame 2 is 11..=12; 11 never arrives.
        packets.push(vp8_frame(11, 2000, 2, 2)[1].clone());
        for n in 0..3u16 {
            packets.extend(vp8_frame(13 + n, 3000 + 1000 * n as u32, n as u8 + 3, 1));
        }
        let out = feed(&mut a, now, packets);
        // Frame 1, then nothing until 15 puts the gap 4 packets behind:
        // 11 (lost) and 12 (a frame tail without its head) are dropped.
        assert_eq!(out.len(), 4, "{out:?}");
        assert_eq!(out[0].dropped_packets, 0);
        assert_eq!(out[1].data.as_ref(), frame_body(3, 1).as_slice());
        assert_eq!(out[1].dropped_packets, 2);
        assert_eq!(out[3].data.as_ref(), frame_body(5, 1).as_slice());
        assert_eq!(out[3].dropped_packets, 0);
    }

    #[test]
    fn held_packets_stay_bounded_while_a_gap_persists() {
        let mut a = FrameAssembler::<Vp8Packet>::new(64, Duration::from_secs(3600));
        let now = Instant::now();
        let mut released = 0;
        // A 3-packet frame every 3 sequence numbers; every 50th packet lost.
        for seq in 0u16..3000 {
            if seq % 50 == 7 {
                continue;
            }
            let frame = seq / 3;
            let p = vp8(
                seq,
                3000 * frame as u32,
                seq % 3 == 0,
                seq % 3 == 2,
                &[1, 2, 3, 4],
            );
            released += feed(&mut a, now, [p]).len();
            assert!(a.pending() <= 65, "{} packets held at {seq}", a.pending());
        }
        // Most frames still come out.
        assert!(released > 900, "{released} frames released");
    }

    #[test]
    fn a_stream_joined_mid_frame_starts_at_the_next_frame() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        let f1 = vp8_frame(50, 1000, 1, 3);
        let mut packets = f1[1..].to_vec();
        packets.extend(vp8_frame(53, 4000, 2, 2));
        let out = feed(&mut a, now, packets);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.as_ref(), frame_body(2, 2).as_slice());
        assert_eq!(out[0].dropped_packets, 2);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        let f1 = vp8_frame(65534, 1000, 1, 3); // 65534, 65535, 0
        let f2 = vp8_frame(1, 4000, 2, 2);
        // Reorder across the wrap too.
        let order = vec![
            f1[0].clone(),
            f1[2].clone(),
            f1[1].clone(),
            f2[1].clone(),
            f2[0].clone(),
        ];
        let out = feed(&mut a, now, order);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data.as_ref(), frame_body(1, 3).as_slice());
        assert_eq!(out[1].data.as_ref(), frame_body(2, 2).as_slice());
        assert!(out.iter().all(|f| f.dropped_packets == 0));
    }

    #[test]
    fn timestamps_wrap() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        let mut packets = vp8_frame(7, u32::MAX - 1000, 1, 2);
        packets.extend(vp8_frame(9, 2000, 2, 2)); // wrapped
        packets.extend(vp8_frame(11, 5000, 3, 1));
        let out = feed(&mut a, now, packets);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].rtp_timestamp, u32::MAX - 1000);
        assert_eq!(out[1].rtp_timestamp, 2000);
        assert_eq!(out[1].data.as_ref(), frame_body(2, 2).as_slice());
    }

    #[test]
    fn a_frame_without_marker_ends_at_the_next_timestamp() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        let packets = vec![
            vp8(1, 1000, true, false, &[1, 0, 0xaa, 0xbb]),
            vp8(2, 1000, false, false, &[1, 1, 0xaa, 0xbb]),
            vp8(3, 4000, true, true, &[2, 0, 0xaa, 0xbb]),
        ];
        let out = feed(&mut a, now, packets);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data.as_ref(), frame_body(1, 2).as_slice());
        assert_eq!(out[1].data.as_ref(), frame_body(2, 1).as_slice());
    }

    #[test]
    fn padding_packets_are_skipped_without_counting_as_loss() {
        let mut a = FrameAssembler::<Vp8Packet>::default();
        let now = Instant::now();
        let mut packets = vp8_frame(1, 1000, 1, 1);
        packets.push(pkt(2, 1000, false, &[])); // padding after a frame
        packets.push(pkt(3, 1000, false, &[]));
        packets.extend(vp8_frame(4, 4000, 2, 2));
        let out = feed(&mut a, now, packets);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].data.as_ref(), frame_body(2, 2).as_slice());
        assert!(out.iter().all(|f| f.dropped_packets == 0));
    }

    #[test]
    fn h264_fragments_and_aggregates_become_annex_b() {
        let mut a = FrameAssembler::<H264Packet>::default();
        let now = Instant::now();
        // STAP-A with SPS (7) and PPS (8), then an IDR (5) in two FU-A
        // fragments (FU indicator 0x7c = nri 3, type 28).
        let stap = [0x78, 0x00, 0x03, 0x67, 0x42, 0x1f, 0x00, 0x02, 0x68, 0xce];
        let fu_start = [0x7c, 0x85, 0x01, 0x02];
        let fu_end = [0x7c, 0x45, 0x03, 0x04];
        let packets = vec![
            pkt(1000, 9000, false, &stap),
            pkt(1002, 9000, true, &fu_end),
            pkt(1001, 9000, false, &fu_start),
        ];
        let mut out = Vec::new();
        for p in packets {
            a.push(now, p);
            out.extend(std::iter::from_fn(|| a.pop(now)));
        }
        assert_eq!(out.len(), 1);
        let expect: Vec<u8> = [
            &[0, 0, 0, 1, 0x67, 0x42, 0x1f][..],
            &[0, 0, 0, 1, 0x68, 0xce],
            &[0, 0, 0, 1, 0x65, 0x01, 0x02, 0x03, 0x04],
        ]
        .concat();
        assert_eq!(out[0].data.as_ref(), expect.as_slice());
        assert!(crate::media::Codec::H264.is_keyframe(&out[0].data));
    }

    #[test]
    fn h264_frame_missing_its_first_fragment_is_not_released() {
        let mut a = FrameAssembler::<H264Packet>::new(2, Duration::from_secs(3600));
        let now = Instant::now();
        let packets = vec![
            // 1 (FU-A start) lost
            pkt(2, 9000, true, &[0x7c, 0x45, 0x03, 0x04]),
            pkt(3, 12000, true, &[0x61, 0x9a, 0x01]),
            pkt(4, 15000, true, &[0x61, 0x9a, 0x02]),
        ];
        let mut out = Vec::new();
        for p in packets {
            a.push(now, p);
            out.extend(std::iter::from_fn(|| a.pop(now)));
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].dropped_packets, 1);
        assert_eq!(out[0].data.as_ref(), &[0, 0, 0, 1, 0x61, 0x9a, 0x01]);
    }
}
