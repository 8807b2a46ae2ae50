//! One student's video: a thread that draws and encodes the test pattern at
//! the frame rate and hands each encoded frame to every viewer.
//!
//! One encoder per student feeds all its viewers (a browser would encode
//! once per peer connection; one encoder is cheaper and a keyframe request
//! from any viewer is harmless to the others). Frames go out on a
//! `broadcast` channel, so a slow viewer lags and skips to the next keyframe
//! instead of queueing. Nothing is encoded while nobody watches.
//!
//! Frames are never shared between students: each picture carries its own
//! name, counter and timestamp, so sharing would not be honest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use super::encoder::{EncodedFrame, VideoEncoder};
use super::pattern::{Marks, Pattern};
use crate::Result;

/// Frames in flight per viewer before it counts as lagging.
const FRAME_QUEUE: usize = 8;

/// Handle to a running video source; the thread stops when it is dropped.
pub struct VideoSource {
    frames: broadcast::Sender<EncodedFrame>,
    keyframe: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    frame_interval: Duration,
}

impl VideoSource {
    /// Start drawing `name` at `width` x `height`, `fps` frames per second,
    /// with camera-like texture when `texture` is set.
    pub fn start(
        width: usize,
        height: usize,
        fps: u32,
        name: &str,
        texture: bool,
    ) -> Result<VideoSource> {
        let fps = fps.clamp(1, 60);
        let mut pattern = Pattern::new(width, height, name)?;
        if texture {
            pattern = pattern.with_texture();
        }
        let mut encoder = if texture {
            VideoEncoder::rate_controlled(width, height, fps)?
        } else {
            VideoEncoder::new(width, height, fps)?
        };
        let (frames, _) = broadcast::channel(FRAME_QUEUE);
        let keyframe = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let frame_interval = Duration::from_secs(1) / fps;
        let name = name.to_string();
        let source = VideoSource {
            frames: frames.clone(),
            keyframe: keyframe.clone(),
            stop: stop.clone(),
            frame_interval,
        };
        std::thread::Builder::new()
            .name(format!("student-video-{name}"))
            .spawn(move || {
                let mut counter: u32 = 0;
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    // Keep the rate; after a long stall start afresh rather
                    // than bursting to catch up.
                    next += frame_interval;
                    if Instant::now() > next + frame_interval {
                        next = Instant::now() + frame_interval;
                    }
                    let marks = Marks {
                        counter,
                        sent_unix_ms: unix_ms(),
                    };
                    counter = counter.wrapping_add(1);
                    if frames.receiver_count() == 0 {
                        continue;
                    }
                    if keyframe.swap(false, Ordering::Relaxed) {
                        encoder.request_keyframe();
                    }
                    match encoder.encode(pattern.draw(marks)) {
                        Ok(Some(frame)) => {
                            let _ = frames.send(frame);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!("student {name}: {e}");
                            break;
                        }
                    }
                }
            })
            .map_err(|e| {
                crate::Error::Other(anyhow::anyhow!("cannot start a video thread: {e}"))
            })?;
        Ok(source)
    }

    /// Frames from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EncodedFrame> {
        self.frames.subscribe()
    }

    /// Make the next frame a keyframe.
    pub fn request_keyframe(&self) {
        self.keyframe.store(true, Ordering::Relaxed);
    }

    /// A handle that can request keyframes (for RTCP tasks).
    pub fn keyframe_requester(&self) -> Arc<AtomicBool> {
        self.keyframe.clone()
    }

    /// Time between frames.
    pub fn frame_interval(&self) -> Duration {
        self.frame_interval
    }
}

impl Drop for VideoSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Milliseconds since the UNIX epoch (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
