//! Glob patterns as Redis matches them (`KEYS`, `SCAN MATCH`, `PSUBSCRIBE`): `*` any run of
//! bytes, `?` one byte, `[abc]` / `[^abc]` / `[a-z]` a class, `\` escapes the next byte.
//! Byte for byte, case-sensitive; linear backtracking on the last `*`, so no pattern can make
//! a match take more than pattern × text steps.

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where to resume after the last `*`: the pattern after it, and the text it has eaten up to.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = text.get(ti) {
        match pattern.get(pi) {
            Some(b'*') => {
                pi += 1;
                star = Some((pi, ti));
                continue;
            }
            Some(_) => {
                if let Some(next) = one(pattern, pi, c) {
                    pi = next;
                    ti += 1;
                    continue;
                }
            }
            None => {}
        }
        // Mismatch: let the last `*` eat one more byte, or fail.
        match star {
            Some((after, eaten)) => {
                pi = after;
                ti = eaten + 1;
                star = Some((after, eaten + 1));
            }
            None => return false,
        }
    }
    while pattern.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi >= pattern.len()
}

/// If the one-byte element of `pattern` at `pi` (not `*`) matches `c`: the index after it.
fn one(pattern: &[u8], pi: usize, c: u8) -> Option<usize> {
    match pattern.get(pi)? {
        b'?' => Some(pi + 1),
        b'\\' => match pattern.get(pi + 1) {
            Some(&e) => (e == c).then_some(pi + 2),
            // A trailing backslash is itself.
            None => (c == b'\\').then_some(pi + 1),
        },
        b'[' => class(pattern, pi + 1, c),
        &p => (p == c).then_some(pi + 1),
    }
}

/// A `[...]` class starting after its `[` at `start`: the index after its `]` (or the
/// pattern's end, when it has none) if `c` is in it.
fn class(pattern: &[u8], start: usize, c: u8) -> Option<usize> {
    let mut i = start;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut hit = false;
    loop {
        match pattern.get(i) {
            None => break,
            Some(b']') => {
                i += 1;
                break;
            }
            Some(b'\\') => {
                if pattern.get(i + 1) == Some(&c) {
                    hit = true;
                }
                i += 2;
            }
            Some(&lo) => {
                if let (Some(b'-'), Some(&hi)) = (pattern.get(i + 1), pattern.get(i + 2)) {
                    if hi != b']' {
                        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                        if (a..=b).contains(&c) {
                            hit = true;
                        }
                        i += 3;
                        continue;
                    }
                }
                if lo == c {
                    hit = true;
                }
                i += 1;
            }
        }
    }
    (hit != negate).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_as_redis_does() {
        let m = |p: &str, t: &str| matches(p.as_bytes(), t.as_bytes());
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m(
            "NOREPLICAS*",
            "NOREPLICAS Not enough good replicas to write."
        ));
        assert!(!m("NOREPLICAS*", "OOM command not allowed"));
        assert!(m(
            "*replicas*",
            "NOREPLICAS Not enough good replicas to write."
        ));
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && m("h[b-a]llo", "hallo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx") && !m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(!m("", "x") && m("", ""));
        assert!(m("abc\\", "abc\\"));
        // An unclosed class ends at the pattern's end.
        assert!(m("[ab", "a") && !m("[ab", "c"));
    }

    #[test]
    fn many_stars_stay_linear() {
        let pattern = "*a".repeat(50) + "b";
        let text = "a".repeat(5000);
        // Would take ages with naive recursion; here it is a quick "no".
        assert!(!matches(pattern.as_bytes(), text.as_bytes()));
    }
}
