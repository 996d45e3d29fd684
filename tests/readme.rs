//! The README's redis-cli transcript, replayed with the real `redis-cli` against a real server,
//! so the documentation and the behaviour cannot drift apart.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

const PROMPT: &str = "127.0.0.1:6379> ";

/// (command, expected output lines) pairs from the transcript block of README.md.
fn transcript() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md is readable");
    let start = readme
        .find("<!-- transcript")
        .expect("README.md has a <!-- transcript --> marker");
    let rest = &readme[start..];
    let open = rest
        .find("```text\n")
        .expect("a ```text block follows the marker")
        + 8;
    let body = &rest[open..];
    let close = body.find("```").expect("the transcript block is closed");
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in body[..close].lines() {
        if let Some(cmd) = line.strip_prefix(PROMPT) {
            steps.push((cmd.to_string(), Vec::new()));
        } else if let Some(last) = steps.last_mut() {
            last.1.push(line.to_string());
        } else {
            panic!("transcript output before the first command: {line:?}");
        }
    }
    assert!(steps.len() >= 10, "the transcript is suspiciously short");
    steps
}

/// A transaction id in the README (`"<ms>-<seq>"`) stands for any id.
fn is_id(line: &str) -> bool {
    let Some(inner) = line.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return false;
    };
    let mut parts = inner.split('-');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn lines_match(expected: &str, actual: &str) -> bool {
    expected == actual || (is_id(expected) && is_id(actual))
}

#[test]
fn readme_transcript_replays_exactly() {
    let steps = transcript();
    let server = common::Server::start();
    let input: String = steps.iter().map(|(c, _)| format!("{c}\n")).collect();
    let mut child = Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "--no-raw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli runs (it comes with the redis-server package)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("commands are written to redis-cli");
    let out = child.wait_with_output().expect("redis-cli finishes");
    assert!(out.status.success(), "redis-cli failed: {out:?}");
    let actual: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<(String, String)> = steps
        .iter()
        .flat_map(|(c, lines)| lines.iter().map(move |l| (c.clone(), l.clone())))
        .collect();
    for (i, (cmd, want)) in expected.iter().enumerate() {
        let got = actual
            .get(i)
            .map(String::as_str)
            .unwrap_or("<no more output>");
        assert!(
            lines_match(want, got),
            "README transcript line {} (after `{cmd}`): expected {want:?}, got {got:?}\nfull output:\n{}",
            i + 1,
            actual.join("\n")
        );
    }
    assert_eq!(
        actual.len(),
        expected.len(),
        "redis-cli printed extra lines: {actual:#?}"
    );
}

#[test]
fn id_pattern_is_strict() {
    assert!(is_id("\"1763800000000-0\""));
    assert!(!is_id("\"1763800000000-\""));
    assert!(!is_id("\"abc-1\""));
    assert!(!is_id("1-2"));
}
