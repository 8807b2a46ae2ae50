//! `rtcproctor codes ...` and rosters, through the real binary: every roster
//! format, errors naming file and line, exit codes, Moodle known answers, and
//! QR codes decoded back to the exact link.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rtcproctor::codes::generate::ALPHABET;
use rtcproctor::roster::Roster;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rtcproctor"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run rtcproctor")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 0, and the stdout.
fn ok(args: &[&str]) -> (String, String) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(0), "{args:?} failed:\n{}", stderr(&o));
    (stdout(&o), stderr(&o))
}

/// Exit 1 with one "rtcproctor: ..." line, which is returned.
fn fails(args: &[&str]) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.starts_with("rtcproctor: "), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn decode_qr(img: image::GrayImage) -> String {
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the picture");
    grids[0].decode().expect("QR decodes").1
}

#[test]
fn every_roster_format_loads() {
    for (file, count) in [
        ("roster-moodle-paste.tsv", 3),
        ("roster-stock-sample.tsv", 2),
        ("roster-names.csv", 3),
    ] {
        let path = fixture(file);
        let (out, _) = ok(&["codes", "check", path.to_str().unwrap()]);
        assert!(out.contains(&format!("{count} students")), "{file}: {out}");
        assert_eq!(Roster::load(&path).unwrap().len(), count);
    }
    let names = Roster::load(&fixture("roster-names.csv")).unwrap();
    assert_eq!(names.students[0].label(), "Lee, Ann");
    assert_eq!(names.students[2].label(), "Chloé Dupont");
    assert_eq!(names.students[2].email, None);
    let stock = Roster::load(&fixture("roster-stock-sample.tsv")).unwrap();
    assert_eq!(stock.by_code("room1").unwrap().id, "00000001");
}

#[test]
fn roster_errors_name_file_and_line() {
    let dup = fixture("roster-duplicate-code.csv");
    let err = fails(&["codes", "check", dup.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}:5: duplicate stream code", dup.display())),
        "{err}"
    );
    let missing = fixture("roster-missing-code.tsv");
    let err = fails(&[
        "codes",
        "links",
        "--url",
        "https://h.example/",
        missing.to_str().unwrap(),
    ]);
    assert!(err.contains(&format!("{}:3: ", missing.display())), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let latin1 = dir.path().join("latin1.csv");
    std::fs::write(&latin1, b"id,code,name\ns1,abc,Chlo\xE9\n").unwrap();
    let err = fails(&["codes", "check", latin1.to_str().unwrap()]);
    assert!(err.contains("latin1.csv:2: not UTF-8"), "{err}");
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "id,code\n\n").unwrap();
    let err = fails(&["codes", "check", empty.to_str().unwrap()]);
    assert!(err.contains("no students found"), "{err}");
    let err = fails(&["codes", "check", "/nonexistent/roster.csv"]);
    assert!(err.contains("/nonexistent/roster.csv"), "{err}");
}

#[test]
fn utf16_roster_from_a_spreadsheet_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unicode.txt");
    let text = "Student ID\tPasscode\r\nÅsa\tq2w3e4r5t\r\n";
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&path, bytes).unwrap();
    let (out, _) = ok(&["codes", "check", path.to_str().unwrap()]);
    assert!(out.contains("1 students"), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["codes", "new"][..],
        &["codes", "new", "--count", "3", "--ids", "x"],
        &[
            "codes", "new", "--count", "3", "--bits", "40", "--length", "9",
        ],
        &["codes", "moodle", "file.csv"],
        &["codes", "moodle", "--cmid", "abc", "file.csv"],
        &["codes", "links", "file.csv"],
        &["codes", "nonsense"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn new_codes_are_strong_unique_and_round_trip() {
    let (out, _) = ok(&["codes", "new", "--count", "300"]);
    let roster = Roster::parse(&out).unwrap();
    assert_eq!(roster.len(), 300);
    assert!(out.starts_with("id,code\n"), "{out}");
    assert_eq!(roster.students[0].id, "s001");
    for s in &roster.students {
        assert_eq!(s.code.len(), 9, "{}", s.code);
        assert!(s.code.bytes().all(|b| ALPHABET.contains(&b)), "{}", s.code);
    }
    let (out, _) = ok(&["codes", "new", "--count", "2", "--bits", "64"]);
    assert_eq!(Roster::parse(&out).unwrap().students[0].code.len(), 13);
    let err = fails(&["codes", "new", "--count", "2", "--bits", "24"]);
    assert!(err.contains("at least --bits 30"), "{err}");
    let err = fails(&["codes", "new", "--count", "0"]);
    assert!(err.contains("from 1 to"), "{err}");
}

#[test]
fn new_codes_for_a_list_of_ids_keep_names_and_emails() {
    let (out, _) = ok(&[
        "codes",
        "new",
        "--ids",
        fixture("ids.csv").to_str().unwrap(),
    ]);
    assert!(out.starts_with("id,code,name,email\n"), "{out}");
    let roster = Roster::parse(&out).unwrap();
    assert_eq!(roster.len(), 3);
    assert_eq!(roster.students[0].id, "2026001");
    assert_eq!(roster.students[0].label(), "Lee, Ann");
    assert_eq!(
        roster.students[0].email.as_deref(),
        Some("ann.lee@example.org")
    );
    let (out, _) = ok(&[
        "codes",
        "new",
        "--ids",
        fixture("ids.txt").to_str().unwrap(),
    ]);
    let ids: Vec<String> = Roster::parse(&out)
        .unwrap()
        .students
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["2026001", "2026002", "2026003"]);
    // A roster that already has codes is not silently re-coded.
    let err = fails(&[
        "codes",
        "new",
        "--ids",
        fixture("roster-names.csv").to_str().unwrap(),
    ]);
    assert!(
        err.contains("roster-names.csv:2: this list already has a code column"),
        "{err}"
    );
}

#[test]
fn out_files_are_never_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("roster.csv");
    let out_s = out.to_str().unwrap();
    let (stdout, stderr) = ok(&["codes", "new", "--count", "5", "--out", out_s]);
    assert!(stdout.is_empty());
    assert!(stderr.contains("wrote 5 students"), "{stderr}");
    let first = std::fs::read_to_string(&out).unwrap();
    let err = fails(&["codes", "new", "--count", "5", "--out", out_s]);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), first);
    ok(&["codes", "new", "--count", "5", "--out", out_s, "--force"]);
    assert_ne!(std::fs::read_to_string(&out).unwrap(), first);
    assert_eq!(Roster::load(&out).unwrap().len(), 5);
}

#[test]
fn moodle_codes_match_the_plugin_and_warn() {
    let file = fixture("moodle-emails.csv");
    let (out, err) = ok(&["codes", "moodle", "--cmid", "42", file.to_str().unwrap()]);
    let roster = Roster::parse(&out).unwrap();
    assert_eq!(roster.by_id("6400001").unwrap().code, "6b5207d7");
    assert_eq!(roster.by_id("bob.brown").unwrap().code, "c783bacf");
    assert_eq!(roster.by_id("bob.brown").unwrap().label(), "Bob Brown");
    assert!(
        err.contains("warning") && err.contains("anyone who knows"),
        "{err}"
    );
    // The plugin's own table, pasted, is the same roster.
    let pasted = Roster::load(&fixture("roster-moodle-paste.tsv")).unwrap();
    assert_eq!(pasted.by_id("6400001").unwrap().code, "6b5207d7");

    let keyed = |secret: &str| {
        let o = bin()
            .args(["codes", "moodle", "--cmid", "42", file.to_str().unwrap()])
            .env("RTCPROCTOR_CODE_SECRET", secret)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
        Roster::parse(&stdout(&o)).unwrap()
    };
    let a = keyed("correct horse battery staple");
    assert_eq!(
        a,
        keyed("correct horse battery staple"),
        "keyed codes are reproducible"
    );
    assert_ne!(a, keyed("another secret of enough length"));
    let code = &a.by_id("6400001").unwrap().code;
    assert_eq!(code.len(), 9);
    assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
    let err = fails(&[
        "codes",
        "moodle",
        "--cmid",
        "42",
        "--secret",
        "short",
        file.to_str().unwrap(),
    ]);
    assert!(err.contains("at least 16"), "{err}");
}

#[test]
fn moodle_local_part_clash_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emails.csv");
    std::fs::write(&path, "email\nann@a.example\n\nann@b.example\n").unwrap();
    let err = fails(&["codes", "moodle", "--cmid", "7", path.to_str().unwrap()]);
    assert!(
        err.contains("emails.csv:4: ") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn links_and_mail_merge() {
    let roster = fixture("roster-names.csv");
    let (out, _) = ok(&[
        "codes",
        "links",
        "--url",
        "https://proctor.example.org:8443",
        roster.to_str().unwrap(),
    ]);
    assert_eq!(
        out.lines().next().unwrap(),
        "s001\thttps://proctor.example.org:8443/#k7m9x2p4q"
    );
    assert_eq!(out.lines().count(), 3);
    let (out, err) = ok(&[
        "codes",
        "links",
        "--csv",
        "--url",
        "https://proctor.example.org/s.html",
        roster.to_str().unwrap(),
    ]);
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["email", "name", "link", "id", "code"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][0], "ann.lee@example.org");
    assert_eq!(&rows[0][1], "Lee, Ann");
    assert_eq!(&rows[0][2], "https://proctor.example.org/s.html#k7m9x2p4q");
    assert!(err.contains("1 of 3 students have no e-mail"), "{err}");
    let err = fails(&[
        "codes",
        "links",
        "--url",
        "ftp://h.example/",
        roster.to_str().unwrap(),
    ]);
    assert!(err.contains("https://"), "{err}");
}

#[test]
fn qr_files_decode_to_the_exact_links_and_the_sheet_lists_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let roster_path = dir.path().join("roster.csv");
    std::fs::write(
        &roster_path,
        "id,code,name\n2026/001,k7m9x2p4q,\"Lee, Ann\"\n2026_001,3ekvmzfcu,<b>Bob</b>\n",
    )
    .unwrap();
    let out = dir.path().join("qr");
    let url = "https://proctor.example.org:8443/";
    let args = [
        "codes",
        "qr",
        "--url",
        url,
        roster_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (_, err) = ok(&args);
    assert!(err.contains("sheet.html"), "{err}");
    // IDs become safe, distinct file names.
    for (stem, code) in [("2026_001", "k7m9x2p4q"), ("2026_001-2", "3ekvmzfcu")] {
        let png = image::open(out.join(format!("{stem}.png")))
            .unwrap()
            .to_luma8();
        assert_eq!(decode_qr(png), format!("{url}#{code}"));
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<path"), "{svg}");
    }
    let sheet = std::fs::read_to_string(out.join("sheet.html")).unwrap();
    for needle in [
        "Lee, Ann",
        "&lt;b&gt;Bob&lt;/b&gt;",
        "k7m9x2p4q",
        "3ekvmzfcu",
        "@page",
    ] {
        assert!(sheet.contains(needle), "sheet lacks {needle}");
    }
    assert_eq!(sheet.matches("<svg").count(), 2);
    // A second run does not overwrite without --force.
    let err = fails(&args);
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&forced);
}

#[test]
fn terminal_qr_scans_back_to_the_link() {
    let roster = fixture("roster-names.csv");
    let (out, _) = ok(&[
        "codes",
        "qr",
        "--url",
        "https://proctor.example.org:8443/",
        roster.to_str().unwrap(),
        "--id",
        "s002",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap(), "Bob Brown (ID s002)  code 3ekvmzfcu");
    // Stdout is a pipe: plain half-blocks, dark modules as ink.
    let art: Vec<Vec<char>> = lines
        .by_ref()
        .take_while(|l| !l.starts_with("https://"))
        .map(|l| l.chars().collect())
        .collect();
    let width = art[0].len();
    let scale = 4u32;
    let img = image::GrayImage::from_fn(
        width as u32 * scale,
        art.len() as u32 * 2 * scale,
        |x, y| {
            let ch = art[(y / scale / 2) as usize][(x / scale) as usize];
            let top = (y / scale).is_multiple_of(2);
            let dark = match ch {
                '\u{2588}' => true,
                '\u{2580}' => top,
                '\u{2584}' => !top,
                _ => false,
            };
            image::Luma([if dark { 0 } else { 255 }])
        },
    );
    assert_eq!(
        decode_qr(img),
        "https://proctor.example.org:8443/#3ekvmzfcu"
    );
    assert!(out.contains("https://proctor.example.org:8443/#3ekvmzfcu"));
    let err = fails(&[
        "codes",
        "qr",
        "--url",
        "https://h.example/",
        roster.to_str().unwrap(),
        "--id",
        "nobody",
    ]);
    assert!(err.contains("no student with ID \"nobody\""), "{err}");
}
