//! The few SDP edits and look-ups the answerer needs (pure text functions).
//!
//! webrtc-rs answers with the codecs in the order of the *offer*, and the
//! browser sends the first codec of the answer. Chromium offers VP8 first, so
//! to get H.264 we move our preferred payload types to the front of the
//! offer's `m=video` line before applying it (measured in
//! shared/reference/rust-stack.md §6: registering H.264 first is not enough).

/// URI of the RFC 6464 client-to-mixer audio level header extension.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// One media section's payload types, as far as ranking needs them.
#[derive(Default)]
struct Section {
    /// (payload type, codec name upper-case, fmtp parameters)
    codecs: Vec<(String, String, String)>,
}

/// Rank of a video codec: lower is preferred.
fn rank(name: &str, fmtp: &str) -> u8 {
    let fmtp = fmtp.to_ascii_lowercase();
    match name {
        "H264" if fmtp.contains("packetization-mode=1") => {
            if fmtp.contains("profile-level-id=42e01f") {
                0
            } else if fmtp.contains("profile-level-id=42001f") {
                1
            } else {
                2
            }
        }
        "VP8" => 3,
        "H264" => 4,
        _ => 9,
    }
}

/// Reorder the payload types of every `m=video` line: H.264 with
/// packetization-mode 1 first (constrained baseline `42e01f` before others),
/// then VP8, then everything else in the offer's order.
pub fn prefer_video_codecs(sdp: &str) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.split(eol).collect();

    // Pass 1: codecs of each video section, keyed by the m= line index.
    let mut sections: Vec<(usize, Section)> = Vec::new();
    let mut in_video = false;
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("m=") {
            in_video = rest.starts_with("video ");
            if in_video {
                sections.push((i, Section::default()));
            }
            continue;
        }
        if !in_video {
            continue;
        }
        let Some((_, section)) = sections.last_mut() else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            if let Some((pt, enc)) = rest.split_once(' ') {
                let name = enc.split('/').next().unwrap_or("").to_ascii_uppercase();
                section.codecs.push((pt.to_string(), name, String::new()));
            }
        } else if let Some(rest) = line.strip_prefix("a=fmtp:")
            && let Some((pt, params)) = rest.split_once(' ')
            && let Some(c) = section.codecs.iter_mut().find(|c| c.0 == pt)
        {
            c.2 = params.to_string();
        }
    }

    // Pass 2: rewrite the m= lines.
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    for (i, section) in sections {
        let fields: Vec<&str> = lines[i].split(' ').collect();
        if fields.len() <= 3 {
            continue;
        }
        let mut pts: Vec<&str> = fields[3..].to_vec();
        let rank_of = |pt: &str| {
            section
                .codecs
                .iter()
                .find(|c| c.0 == pt)
                .map(|c| rank(&c.1, &c.2))
                .unwrap_or(9)
        };
        pts.sort_by_key(|pt| rank_of(pt));
        let mut line = fields[..3].join(" ");
        for pt in pts {
            line.push(' ');
            line.push_str(pt);
        }
        out[i] = line;
    }
    out.join(eol)
}

/// The id the offer gives a header extension in its first section of
/// `media` ("audio" or "video"), e.g. `a=extmap:1 urn:...:ssrc-audio-level`.
pub fn extmap_id(sdp: &str, media: &str, uri: &str) -> Option<u8> {
    let mut in_media = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            in_media = rest.starts_with(media) && rest[media.len()..].starts_with(' ');
            continue;
        }
        if in_media
            && let Some(rest) = line.strip_prefix("a=extmap:")
            && let Some((id, rest)) = rest.split_once(' ')
            && rest.split_whitespace().next() == Some(uri)
        {
            // "1/sendonly" carries a direction after the id.
            return id.split('/').next()?.parse().ok();
        }
    }
    None
}

/// The codec names of the first `m=video` line of an SDP, in order (for logs
/// and for tests of [`prefer_video_codecs`]).
pub fn video_codec_order(sdp: &str) -> Vec<String> {
    let mut pts: Vec<String> = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    let mut in_video = false;
    let mut seen_video = false;
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            if seen_video {
                break;
            }
            in_video = rest.starts_with("video ");
            if in_video {
                seen_video = true;
                pts = rest.split(' ').skip(3).map(str::to_string).collect();
            }
            continue;
        }
        if in_video
            && let Some(rest) = line.strip_prefix("a=rtpmap:")
            && let Some((pt, enc)) = rest.split_once(' ')
        {
            names.push((
                pt.to_string(),
                enc.split('/').next().unwrap_or("").to_string(),
            ));
        }
    }
    pts.iter()
        .filter_map(|pt| names.iter().find(|n| &n.0 == pt).map(|n| n.1.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 108 109\r\n\
a=extmap:4/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
a=rtpmap:108 H264/90000\r\na=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:109 rtx/90000\r\na=fmtp:109 apt=108\r\n";

    #[test]
    fn h264_pm1_moves_before_vp8() {
        let out = prefer_video_codecs(OFFER);
        assert!(out.contains("m=video 9 UDP/TLS/RTP/SAVPF 108 102 96 97 103 109\r\n"));
        assert_eq!(video_codec_order(&out)[..3], ["H264", "H264", "VP8"]);
        // Everything else is untouched.
        assert_eq!(out.len(), OFFER.len());
        assert!(out.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n"));
    }

    #[test]
    fn vp8_only_offer_is_unchanged() {
        let sdp = "m=video 9 RTP/SAVPF 96 97\na=rtpmap:96 VP8/90000\na=rtpmap:97 rtx/90000\n";
        assert_eq!(prefer_video_codecs(sdp), sdp);
    }

    #[test]
    fn extmap_ids_by_section() {
        assert_eq!(extmap_id(OFFER, "audio", AUDIO_LEVEL_URI), Some(1));
        assert_eq!(extmap_id(OFFER, "video", AUDIO_LEVEL_URI), Some(4));
        assert_eq!(extmap_id(OFFER, "audio", "urn:x"), None);
    }
}
