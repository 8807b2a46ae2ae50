//! The binary's command-line contract: help, usage errors, exit codes.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rtcproctor"))
}

#[test]
fn help_lists_every_subcommand() {
    let out = bin().arg("--help").output().expect("run rtcproctor --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "monitor", "codes", "student", "demo"] {
        assert!(text.contains(sub), "--help does not mention {sub}:\n{text}");
    }
}

#[test]
fn usage_error_exits_2_with_a_cause() {
    let out = bin()
        .args(["serve", "--bind", "nonsense"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bind"));
}
