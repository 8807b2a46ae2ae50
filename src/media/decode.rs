//! Video decoding on a small pool of plain threads, off the async runtime.
//!
//! Each media session has a stream id; a stream always goes to the same
//! worker (`id % workers`), so its decoder sees the access units in order and
//! lives on one thread. Queues are bounded: when a worker falls behind, the
//! newest access unit is dropped and the session is told to wait for the
//! next keyframe (and to ask for one with a PLI) — a slow decoder never
//! builds memory or latency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use super::scale::{self, Planes};
use crate::proctor::{EngineEvent, Frame, FrameSlots, StudentId};

/// Access units a worker may hold (all its streams together) before it
/// drops. A dropped access unit costs a keyframe (the stream waits for one
/// and asks with a PLI), which costs more to send and decode than the
/// frames it replaces, so the queue must ride out a worker being preempted
/// for a while: at 100+ students a worker takes ~500 thumbnails a second,
/// and 32 (70 ms of them) made drops cascade on a loaded machine
/// (BENCHMARKS.md, students per monitor). Thumbnails are 0.5–2 KB each.
const QUEUE_DEPTH: usize = 1024;

/// Video codecs the engine can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Vp8,
}

impl Codec {
    /// From an RTP mime type such as "video/H264".
    pub fn from_mime(mime: &str) -> Option<Codec> {
        let m = mime.to_ascii_lowercase();
        if m.ends_with("/h264") {
            Some(Codec::H264)
        } else if m.ends_with("/vp8") {
            Some(Codec::Vp8)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "H264",
            Codec::Vp8 => "VP8",
        }
    }

    /// Whether this access unit can start decoding: an H.264 IDR (or SPS)
    /// NAL, or a VP8 key frame.
    pub fn is_keyframe(self, au: &[u8]) -> bool {
        match self {
            Codec::H264 => annexb_nal_types(au).any(|t| t == 5 || t == 7),
            // RFC 6386 §9.1: bit 0 of the frame tag is 0 for key frames.
            Codec::Vp8 => au.first().is_some_and(|b| b & 1 == 0),
        }
    }
}

/// NAL unit types of an Annex-B access unit.
fn annexb_nal_types(au: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 3 < au.len() {
            if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
                i += 3;
                return au.get(i).map(|b| b & 0x1f);
            }
            i += 1;
        }
        None
    })
}

/// Where one stream's decoded pictures go, shared by its session and the
/// worker that decodes it.
#[derive(Debug)]
pub struct FrameSink {
    pub student: StudentId,
    frames: FrameSlots,
    events: mpsc::Sender<EngineEvent>,
    seq: AtomicU64,
    /// Pictures decoded since the session started.
    pub decoded: AtomicU64,
    /// Nanoseconds spent decoding, scaling and converting, in total.
    pub work_ns: AtomicU64,
    /// Source size of the newest decoded picture (width << 32 | height).
    pub size: AtomicU64,
    /// When the newest picture was published.
    pub last_published: Mutex<Option<Instant>>,
    /// Signalled by the worker when the decoder needs a keyframe (decode
    /// error, dropped access unit).
    pub keyframe_wanted: Notify,
}

impl FrameSink {
    pub fn new(student: StudentId, frames: FrameSlots, events: mpsc::Sender<EngineEvent>) -> Self {
        FrameSink {
            student,
            frames,
            events,
            seq: AtomicU64::new(0),
            decoded: AtomicU64::new(0),
            work_ns: AtomicU64::new(0),
            size: AtomicU64::new(0),
            last_published: Mutex::new(None),
            keyframe_wanted: Notify::new(),
        }
    }

    /// Decoded source size (0, 0 before the first picture).
    pub fn source_size(&self) -> (u32, u32) {
        let s = self.size.load(Ordering::Relaxed);
        ((s >> 32) as u32, s as u32)
    }

    fn publish(&self, p: &Planes<'_>, max: Option<(u32, u32)>) {
        let (w, h) = (p.width as u32, p.height as u32);
        self.size
            .store(((w as u64) << 32) | h as u64, Ordering::Relaxed);
        let (ow, oh) = match max {
            Some(max) => scale::fit(w, h, max),
            None => (w, h),
        };
        let rgb = scale::to_rgb(p, ow as usize, oh as usize);
        let now = Instant::now();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.frames.publish(
            &self.student,
            Frame {
                width: ow,
                height: oh,
                rgb,
                seq,
                decoded_at: now,
            },
        );
        if let Ok(mut t) = self.last_published.lock() {
            *t = Some(now);
        }
        // Latest value wins: when the front end is behind, one pending
        // FrameReady is as good as many.
        let _ = self.events.try_send(EngineEvent::FrameReady {
            student: self.student.clone(),
        });
    }
}

/// One picture decoder (a codec library instance for one stream).
trait VideoDecoder: Send {
    /// Decode one access unit; call `out` with the picture if one came out.
    fn decode(&mut self, au: &[u8], out: &mut dyn FnMut(Planes<'_>)) -> Result<(), String>;
}

struct H264Decoder(openh264::decoder::Decoder);

impl VideoDecoder for H264Decoder {
    fn decode(&mut self, au: &[u8], out: &mut dyn FnMut(Planes<'_>)) -> Result<(), String> {
        use openh264::formats::YUVSource;
        match self.0.decode(au) {
            Ok(Some(yuv)) => {
                let (width, height) = yuv.dimensions();
                let (ys, us, _) = yuv.strides();
                out(Planes {
                    width,
                    height,
                    y: yuv.y(),
                    u: yuv.u(),
                    v: yuv.v(),
                    y_stride: ys,
                    uv_stride: us,
                });
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn new_decoder(codec: Codec) -> Result<Box<dyn VideoDecoder>, String> {
    match codec {
        Codec::H264 => openh264::decoder::Decoder::new()
            .map(|d| Box::new(H264Decoder(d)) as Box<dyn VideoDecoder>)
            .map_err(|e| format!("cannot start the H.264 decoder: {e}")),
        Codec::Vp8 => super::vp8::Vp8Decoder::new().map(|d| Box::new(d) as Box<dyn VideoDecoder>),
    }
}

impl VideoDecoder for super::vp8::Vp8Decoder {
    fn decode(&mut self, au: &[u8], out: &mut dyn FnMut(Planes<'_>)) -> Result<(), String> {
        super::vp8::Vp8Decoder::decode(self, au, out)
    }
}

enum Job {
    Decode {
        stream: u64,
        codec: Codec,
        au: Bytes,
        /// Thumbnail bound, or None for full resolution.
        max: Option<(u32, u32)>,
        sink: Arc<FrameSink>,
    },
    Forget {
        stream: u64,
    },
}

/// Outcome of [`DecodePool::submit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    Queued,
    /// The worker is behind; the access unit was dropped. Wait for a
    /// keyframe before submitting again.
    Dropped,
    /// The pool is gone (shutdown).
    Closed,
}

/// The decode workers. Cheap to clone.
#[derive(Clone)]
pub struct DecodePool {
    workers: Arc<Vec<SyncSender<Job>>>,
}

impl std::fmt::Debug for DecodePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecodePool({} workers)", self.workers.len())
    }
}

static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

impl DecodePool {
    /// Start `workers` threads (at least one). They stop when the last
    /// clone of the pool is dropped.
    pub fn new(workers: usize) -> std::io::Result<DecodePool> {
        let mut senders = Vec::new();
        for i in 0..workers.max(1) {
            let (tx, rx) = sync_channel(QUEUE_DEPTH);
            std::thread::Builder::new()
                .name(format!("decode-{i}"))
                .spawn(move || worker(rx))?;
            senders.push(tx);
        }
        Ok(DecodePool {
            workers: Arc::new(senders),
        })
    }

    /// A pool sized for this machine: one worker per core, at most four.
    pub fn for_machine() -> std::io::Result<DecodePool> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        DecodePool::new(n.min(4))
    }

    /// A fresh stream id for a new session.
    pub fn new_stream(&self) -> u64 {
        NEXT_STREAM.fetch_add(1, Ordering::Relaxed)
    }

    fn worker_for(&self, stream: u64) -> &SyncSender<Job> {
        &self.workers[(stream % self.workers.len() as u64) as usize]
    }

    /// Queue one access unit of a stream for decoding.
    pub fn submit(
        &self,
        stream: u64,
        codec: Codec,
        au: Bytes,
        max: Option<(u32, u32)>,
        sink: &Arc<FrameSink>,
    ) -> Submit {
        let job = Job::Decode {
            stream,
            codec,
            au,
            max,
            sink: Arc::clone(sink),
        };
        match self.worker_for(stream).try_send(job) {
            Ok(()) => Submit::Queued,
            Err(TrySendError::Full(_)) => Submit::Dropped,
            Err(TrySendError::Disconnected(_)) => Submit::Closed,
        }
    }

    /// Free a stream's decoder (session closed, or decoding paused).
    /// Never blocks the caller (it runs on the async runtime): when the
    /// worker's queue is full, a short-lived thread waits for room.
    pub fn forget(&self, stream: u64) {
        let tx = self.worker_for(stream).clone();
        if let Err(TrySendError::Full(job)) = tx.try_send(Job::Forget { stream }) {
            let _ = std::thread::Builder::new()
                .name("decode-forget".into())
                .spawn(move || {
                    let _ = tx.send(job);
                });
        }
    }
}

fn worker(rx: Receiver<Job>) {
    let mut decoders: HashMap<u64, (Codec, Box<dyn VideoDecoder>)> = HashMap::new();
    while let Ok(job) = rx.recv() {
        match job {
            Job::Forget { stream } => {
                decoders.remove(&stream);
            }
            Job::Decode {
                stream,
                codec,
                au,
                max,
                sink,
            } => {
                let start = Instant::now();
                let entry = match decoders.get_mut(&stream) {
                    Some((c, _)) if *c == codec => decoders.get_mut(&stream),
                    _ => match new_decoder(codec) {
                        Ok(d) => {
                            decoders.insert(stream, (codec, d));
                            decoders.get_mut(&stream)
                        }
                        Err(e) => {
                            tracing::warn!(student = %sink.student, "{e}");
                            continue;
                        }
                    },
                };
                let Some((_, decoder)) = entry else { continue };
                let mut got = false;
                let result = decoder.decode(&au, &mut |p| {
                    got = true;
                    sink.publish(&p, max);
                });
                if got {
                    sink.decoded.fetch_add(1, Ordering::Relaxed);
                    let ns = start.elapsed().min(Duration::from_secs(1)).as_nanos() as u64;
                    sink.work_ns.fetch_add(ns, Ordering::Relaxed);
                }
                if let Err(e) = result {
                    tracing::debug!(student = %sink.student, "decode error, asking for a keyframe: {e}");
                    sink.keyframe_wanted.notify_one();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_detection() {
        let idr = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9];
        let p = [0, 0, 0, 1, 0x41, 9, 9];
        assert!(Codec::H264.is_keyframe(&idr));
        assert!(!Codec::H264.is_keyframe(&p));
        assert!(Codec::Vp8.is_keyframe(&[0x10, 0x02]));
        assert!(!Codec::Vp8.is_keyframe(&[0x11]));
        assert_eq!(Codec::from_mime("video/H264"), Some(Codec::H264));
        assert_eq!(Codec::from_mime("video/vp8"), Some(Codec::Vp8));
        assert_eq!(Codec::from_mime("video/AV1"), None);
    }

    /// Encode a few pictures with openh264 and decode them through the pool:
    /// the published thumbnail shows the picture (left dark, right bright).
    #[test]
    fn pool_decodes_h264_into_the_slot() {
        use openh264::encoder::Encoder;
        use openh264::formats::YUVBuffer;
        let (w, h) = (320usize, 240usize);
        let mut yuv = vec![128u8; w * h * 3 / 2];
        for r in 0..h {
            for c in 0..w {
                yuv[r * w + c] = if c < w / 2 { 30 } else { 220 };
            }
        }
        let buf = YUVBuffer::from_vec(yuv, w, h);
        let mut enc = Encoder::new().unwrap();
        let au = Bytes::from(enc.encode(&buf).unwrap().to_vec());
        assert!(Codec::H264.is_keyframe(&au));

        let slots = FrameSlots::default();
        let (tx, mut rx) = mpsc::channel(8);
        let student = StudentId("s1".into());
        let sink = Arc::new(FrameSink::new(student.clone(), slots.clone(), tx));
        let pool = DecodePool::new(1).unwrap();
        let stream = pool.new_stream();
        assert_eq!(
            pool.submit(stream, Codec::H264, au, Some((160, 120)), &sink),
            Submit::Queued
        );
        let ev = rx.blocking_recv().unwrap();
        assert_eq!(
            ev,
            EngineEvent::FrameReady {
                student: student.clone()
            }
        );
        let f = slots.latest(&student).unwrap();
        assert_eq!((f.width, f.height), (160, 120));
        assert_eq!(sink.source_size(), (320, 240));
        let px = |x: usize, y: usize| f.rgb[(y * 160 + x) * 3];
        assert!(
            px(20, 60) < 60 && px(140, 60) > 190,
            "{} {}",
            px(20, 60),
            px(140, 60)
        );
        pool.forget(stream);
    }
}
