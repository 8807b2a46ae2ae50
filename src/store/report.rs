//! `rtcproctor report`: a self-contained HTML report and CSV exports of a
//! session, readable without the tool (snapshots are inlined as data: URIs).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::replay::{SessionSummary, StudentSummary};
use super::{SessionDir, load_record};
use crate::cli::ReportArgs;
use crate::proctor::{Party, StreamState};
use crate::{Error, Result};

/// Entry point of `rtcproctor report`.
pub fn run(args: ReportArgs) -> Result<()> {
    let mut files = Vec::new();
    for s in &args.sessions {
        files.extend(SessionDir::locate(s)?);
    }
    let records = files
        .iter()
        .map(|f| load_record(f))
        .collect::<Result<Vec<_>>>()?;
    for r in &records {
        if !r.skipped.is_empty() {
            eprintln!(
                "rtcproctor: {}: skipped {} unreadable line(s), first at line {}",
                r.path.display(),
                r.skipped.len(),
                r.skipped[0].0
            );
        }
    }
    let summary = SessionSummary::from_records(&records);
    // Snapshots are stored relative to the directory of their record.
    let base = files
        .first()
        .and_then(|f| f.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();

    if args.html.is_none() && args.csv.is_none() {
        print!("{}", text_summary(&summary));
        return Ok(());
    }
    if let Some(path) = &args.html {
        let html = html_report(&summary, &base);
        std::fs::write(path, html).map_err(|e| Error::file(path, e))?;
        eprintln!("rtcproctor: wrote {}", path.display());
    }
    if let Some(dir) = &args.csv {
        write_csv(&summary, dir)?;
        eprintln!("rtcproctor: wrote CSV files to {}", dir.display());
    }
    Ok(())
}

/// A short plain-text overview (no --html/--csv).
pub fn text_summary(s: &SessionSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "session {}  {} .. {}  proctors: {}",
        s.name,
        fmt_time(s.start),
        fmt_time(s.end),
        s.proctors.join(", ")
    );
    let _ = writeln!(
        out,
        "{:<24} {:>10} {:>10} {:>9} {:>6}",
        "student", "live", "off-air", "attention", "chat"
    );
    for st in &s.students {
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>9} {:>6}",
            truncate(st.label(), 24),
            fmt_dur(st.live_ms()),
            fmt_dur(st.off_air_ms()),
            st.attention.len(),
            st.chat.len()
        );
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` from UNIX milliseconds.
pub fn fmt_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Only the clock part of [`fmt_time`].
fn fmt_clock(ms: u64) -> String {
    let rem = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", rem / 3600, (rem / 60) % 60, rem % 60)
}

/// `1h02m`, `3m05s`, `12s`.
pub fn fmt_dur(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

use crate::web::html_escape as esc;

fn state_class(s: Option<StreamState>) -> (&'static str, &'static str) {
    match s {
        Some(StreamState::Live) => ("live", "live"),
        Some(StreamState::Joining) => ("joining", "joining"),
        Some(StreamState::Stalled) => ("stalled", "stalled"),
        Some(StreamState::Reconnecting) => ("reconnecting", "reconnecting"),
        Some(StreamState::Left) => ("offair", "left"),
        Some(StreamState::OffAir) => ("offair", "off-air"),
        None => ("unwatched", "not watched"),
    }
}

fn timeline_svg(st: &StudentSummary, start: u64, end: u64) -> String {
    let span = (end.saturating_sub(start)).max(1) as f64;
    let w = 600.0;
    let mut svg = format!(
        r#"<svg class="tl" viewBox="0 0 {w} 14" width="100%" height="14" preserveAspectRatio="none" role="img" aria-label="timeline">"#
    );
    for s in &st.timeline {
        let x = (s.start.saturating_sub(start)) as f64 / span * w;
        let width = ((s.end - s.start) as f64 / span * w).max(0.5);
        let (class, label) = state_class(s.state);
        let _ = write!(
            svg,
            r#"<rect class="{class}" x="{x:.1}" y="0" width="{width:.1}" height="14"><title>{label} {} – {} ({})</title></rect>"#,
            fmt_clock(s.start),
            fmt_clock(s.end),
            fmt_dur(s.end - s.start)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole HTML report; `base` is where snapshot paths are relative to.
pub fn html_report(s: &SessionSummary, base: &Path) -> String {
    let mut h = String::new();
    let attention_total: usize = s.students.iter().map(|x| x.attention.len()).sum();
    let responses: Vec<u64> = s
        .students
        .iter()
        .flat_map(|x| x.attention.iter())
        .filter_map(|a| a.answered.map(|t| t - a.raised))
        .collect();
    let mean_response = if responses.is_empty() {
        "–".to_string()
    } else {
        fmt_dur(responses.iter().sum::<u64>() / responses.len() as u64)
    };
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rtcproctor report: {name}</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1b1f24;max-width:1100px}}
h1{{font-size:1.5rem;margin:0 0 .2rem}} h2{{font-size:1.15rem;margin:2rem 0 .5rem}}
.meta{{color:#57606a}} table{{border-collapse:collapse;width:100%;margin:.5rem 0}}
th,td{{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #d0d7de;vertical-align:top}}
th{{background:#f6f8fa}} td:last-child{{width:40%;min-width:200px}} td.n{{text-align:right;font-variant-numeric:tabular-nums}}
.tl rect.live{{fill:#0072b2}} .tl rect.joining{{fill:#56b4e9}} .tl rect.stalled{{fill:#e69f00}}
.tl rect.reconnecting{{fill:#cc79a7}} .tl rect.offair{{fill:#d55e00}} .tl rect.unwatched{{fill:#d0d7de}}
.legend span{{display:inline-block;margin-right:1rem}} .legend i{{display:inline-block;width:.9rem;height:.9rem;vertical-align:middle;margin-right:.3rem}}
.chat td:first-child,.att td:first-child{{white-space:nowrap;color:#57606a}}
.from-proctor{{color:#0550ae}} .snaps img{{max-width:240px;margin:.3rem;border:1px solid #d0d7de}}
.cards{{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}} .card{{border:1px solid #d0d7de;border-radius:6px;padding:.6rem 1rem}}
.card b{{display:block;font-size:1.3rem}} .warn{{color:#9a6700}}
@media print{{body{{margin:0}} .student{{break-inside:avoid}}}}
</style></head><body>
<h1>Exam session {name}</h1>
<div class="meta">{start} – {end} · proctors: {proctors}</div>
<div class="cards"><div class="card"><b>{n}</b>students</div><div class="card"><b>{att}</b>attention requests</div>
<div class="card"><b>{mean}</b>mean response</div><div class="card"><b>{dur}</b>duration</div></div>
"#,
        name = esc(&s.name),
        start = fmt_time(s.start),
        end = fmt_time(s.end),
        proctors = esc(&s.proctors.join(", ")),
        n = s.students.len(),
        att = attention_total,
        mean = mean_response,
        dur = fmt_dur(s.end.saturating_sub(s.start)),
    );
    if s.unclean > 0 {
        let _ = write!(
            h,
            r#"<p class="warn">{} record(s) did not end cleanly (the dashboard was killed or crashed); the gap until it resumed is shown as "not watched".</p>"#,
            s.unclean
        );
    }
    h.push_str(r#"<div class="legend">"#);
    for (class, label, colour) in [
        ("live", "live", "#0072b2"),
        ("joining", "joining", "#56b4e9"),
        ("stalled", "stalled", "#e69f00"),
        ("reconnecting", "reconnecting", "#cc79a7"),
        ("offair", "off-air", "#d55e00"),
        ("unwatched", "not watched", "#d0d7de"),
    ] {
        let _ = write!(
            h,
            r#"<span class="{class}"><i style="background:{colour}"></i>{label}</span>"#
        );
    }
    h.push_str("</div>\n<h2>Students</h2><table><tr><th>Student</th><th>ID</th><th>Code</th><th>Live</th><th>Off-air</th><th>Attention</th><th>Chat</th><th>Timeline</th></tr>\n");
    for st in &s.students {
        let _ = writeln!(
            h,
            r##"<tr><td><a href="#s-{anchor}">{label}</a>{unknown}</td><td>{id}</td><td><code>{code}</code></td><td class="n">{live}</td><td class="n">{off}</td><td class="n">{att}</td><td class="n">{chat}</td><td>{tl}</td></tr>"##,
            anchor = esc(&anchor(&st.id)),
            label = esc(st.label()),
            unknown = if st.unknown {
                " <em>(not on roster)</em>"
            } else {
                ""
            },
            id = esc(&st.id),
            code = esc(&st.code),
            live = fmt_dur(st.live_ms()),
            off = fmt_dur(st.off_air_ms()),
            att = st.attention.len(),
            chat = st.chat.len(),
            tl = timeline_svg(st, s.start, s.end),
        );
    }
    h.push_str("</table>\n");

    for st in &s.students {
        if st.chat.is_empty()
            && st.attention.is_empty()
            && st.snapshots.is_empty()
            && st.proctor_attention.is_empty()
            && st.camera.is_empty()
            && st.code_conflicts.is_empty()
        {
            continue;
        }
        let _ = write!(
            h,
            r#"<section class="student" id="s-{}"><h2>{} <small class="meta">{} · <code>{}</code></small></h2>"#,
            esc(&anchor(&st.id)),
            esc(st.label()),
            esc(&st.id),
            esc(&st.code)
        );
        if !st.attention.is_empty() || !st.proctor_attention.is_empty() {
            h.push_str(
                "<h3>Attention</h3><table class=\"att\"><tr><th>Raised</th><th>Answered</th><th>By</th><th>Response</th></tr>",
            );
            for a in &st.attention {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                    fmt_clock(a.raised),
                    a.answered.map(fmt_clock).unwrap_or_else(|| "never".into()),
                    esc(a.by.as_deref().unwrap_or("–")),
                    a.answered
                        .map(|t| fmt_dur(t - a.raised))
                        .unwrap_or_else(|| "–".into())
                );
            }
            for t in &st.proctor_attention {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td colspan=3>proctor raised attention to the student</td></tr>",
                    fmt_clock(*t)
                );
            }
            h.push_str("</table>");
        }
        if !st.camera.is_empty() || !st.code_conflicts.is_empty() {
            h.push_str(&warnings_table(st));
        }
        if !st.chat.is_empty() {
            h.push_str("<h3>Chat</h3><table class=\"chat\">");
            for c in &st.chat {
                let who = match c.from {
                    Party::Student => esc(st.label()),
                    Party::Proctor => format!("proctor {}", esc(&c.proctor)),
                };
                let class = match c.from {
                    Party::Student => "from-student",
                    Party::Proctor => "from-proctor",
                };
                let _ = write!(
                    h,
                    "<tr class=\"{class}\"><td>{}</td><td>{who}</td><td>{}</td></tr>",
                    fmt_clock(c.t),
                    esc(&c.text)
                );
            }
            h.push_str("</table>");
        }
        if !st.snapshots.is_empty() {
            h.push_str("<h3>Snapshots</h3><div class=\"snaps\">");
            for sn in &st.snapshots {
                let caption = format!(
                    "{}{}",
                    fmt_clock(sn.t),
                    if sn.reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", sn.reason)
                    }
                );
                match inline_png(&base.join(&sn.path)) {
                    Some(uri) => {
                        let _ = write!(
                            h,
                            r#"<figure style="display:inline-block"><img src="{uri}" alt="snapshot {cap}"><figcaption>{cap}</figcaption></figure>"#,
                            cap = esc(&caption)
                        );
                    }
                    None => {
                        let _ = write!(
                            h,
                            "<p class=\"warn\">{}: snapshot file {} is missing</p>",
                            esc(&caption),
                            esc(&sn.path)
                        );
                    }
                }
            }
            h.push_str("</div>");
        }
        h.push_str("</section>\n");
    }
    h.push_str("<p class=\"meta\">Made by rtcproctor report. Times are UTC.</p></body></html>\n");
    h
}

/// Camera problems and code conflicts of one student, in time order.
fn warnings_table(st: &StudentSummary) -> String {
    use crate::media::camera_check::CameraProblem;
    let mut rows: Vec<(u64, &str)> = st
        .camera
        .iter()
        .map(|(t, p)| {
            let what = match p {
                Some(CameraProblem::Black) => "camera turned black",
                Some(CameraProblem::Frozen) => "picture froze",
                None => "picture fine again",
            };
            (*t, what)
        })
        .chain(st.code_conflicts.iter().map(|t| {
            (
                *t,
                "another device tried to go live on this code (a second device, or someone who knows the code)",
            )
        }))
        .collect();
    rows.sort_by_key(|r| r.0);
    let mut h = String::from("<h3>Warnings</h3><table class=\"warn\">");
    for (t, what) in rows {
        let _ = write!(h, "<tr><td>{}</td><td>{what}</td></tr>", fmt_clock(t));
    }
    h.push_str("</table>");
    h
}

fn anchor(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}

fn inline_png(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// Quote a CSV field when needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut l = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    l.push('\n');
    l
}

/// students.csv, timeline.csv, attention.csv, chat.csv.
pub fn write_csv(s: &SessionSummary, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let write = |name: &str, body: String| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, body).map_err(|e| Error::file(&p, e))?;
        Ok(p)
    };
    let mut students = csv_line(
        &[
            "id",
            "name",
            "code",
            "on_roster",
            "live_s",
            "off_air_s",
            "attention_requests",
            "mean_response_s",
            "chat_lines",
        ]
        .map(String::from),
    );
    let mut timeline =
        csv_line(&["id", "start_utc", "end_utc", "seconds", "state"].map(String::from));
    let mut attention =
        csv_line(&["id", "raised_utc", "answered_utc", "by", "response_s"].map(String::from));
    let mut chat = csv_line(&["id", "time_utc", "from", "proctor", "text"].map(String::from));
    for st in &s.students {
        let answered: Vec<u64> = st
            .attention
            .iter()
            .filter_map(|a| a.answered.map(|t| t - a.raised))
            .collect();
        let mean = if answered.is_empty() {
            String::new()
        } else {
            format!(
                "{:.1}",
                answered.iter().sum::<u64>() as f64 / answered.len() as f64 / 1000.0
            )
        };
        students.push_str(&csv_line(&[
            st.id.clone(),
            st.name.clone().unwrap_or_default(),
            st.code.clone(),
            (!st.unknown).to_string(),
            format!("{:.1}", st.live_ms() as f64 / 1000.0),
            format!("{:.1}", st.off_air_ms() as f64 / 1000.0),
            st.attention.len().to_string(),
            mean,
            st.chat.len().to_string(),
        ]));
        for sp in &st.timeline {
            timeline.push_str(&csv_line(&[
                st.id.clone(),
                fmt_time(sp.start),
                fmt_time(sp.end),
                format!("{:.1}", (sp.end - sp.start) as f64 / 1000.0),
                state_class(sp.state).1.to_string(),
            ]));
        }
        for a in &st.attention {
            attention.push_str(&csv_line(&[
                st.id.clone(),
                fmt_time(a.raised),
                a.answered.map(fmt_time).unwrap_or_default(),
                a.by.clone().unwrap_or_default(),
                a.answered
                    .map(|t| format!("{:.1}", (t - a.raised) as f64 / 1000.0))
                    .unwrap_or_default(),
            ]));
        }
        for c in &st.chat {
            chat.push_str(&csv_line(&[
                st.id.clone(),
                fmt_time(c.t),
                match c.from {
                    Party::Student => "student",
                    Party::Proctor => "proctor",
                }
                .to_string(),
                c.proctor.clone(),
                c.text.clone(),
            ]));
        }
    }
    write("students.csv", students)?;
    write("timeline.csv", timeline)?;
    write("attention.csv", attention)?;
    write("chat.csv", chat)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entry::EntryKind;
    use crate::store::replay::tests::{at, record, session, st};

    #[test]
    fn dates_and_durations() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(fmt_time(1_795_660_805_000), "2026-11-26 02:40:05 UTC");
        assert_eq!(fmt_dur(3_725_000), "1h02m");
        assert_eq!(fmt_dur(185_000), "3m05s");
    }

    #[test]
    fn report_escapes_hostile_chat_and_contains_every_event() {
        let rec = record(vec![
            session(1_000, "p1", false),
            at(1_000, st("s1", StreamState::Live)),
            at(
                2_000,
                EntryKind::Chat {
                    student: "s1".into(),
                    from: Party::Student,
                    text: "<script>alert(1)</script>\u{1b}[2J".into(),
                },
            ),
            at(
                3_000,
                EntryKind::Attention {
                    student: "s1".into(),
                    from: Party::Student,
                    raised: true,
                },
            ),
            at(
                4_000,
                EntryKind::CodeConflict {
                    student: "s2".into(),
                },
            ),
            at(
                5_000,
                EntryKind::Camera {
                    student: "s1".into(),
                    problem: Some(crate::media::camera_check::CameraProblem::Black),
                },
            ),
            at(9_000, EntryKind::End),
        ]);
        let s = SessionSummary::from_records(&[rec]);
        let html = html_report(&s, Path::new("/nonexistent"));
        assert!(
            html.contains("another device tried to go live"),
            "conflict shown"
        );
        assert!(html.contains("camera turned black"), "camera problem shown");
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\u{1b}[2J"));
        assert!(html.contains("never"), "unanswered attention shown");
        assert!(html.contains("Ann"));
        let dir = crate::store::writer::tests::tempdir();
        write_csv(&s, &dir).unwrap();
        let chat = std::fs::read_to_string(dir.join("chat.csv")).unwrap();
        assert_eq!(chat.lines().count(), 2);
        let students = std::fs::read_to_string(dir.join("students.csv")).unwrap();
        assert!(
            students.contains("s1,Ann,AAAA,true,8.0,0.0,1,,1"),
            "{students}"
        );
        assert!(
            students.contains("s2,,BBBB,true,0.0,8.0,0,,0"),
            "{students}"
        );
    }
}
