//! `TXU.CHECK <k> <op> [<value>]`: a guard inside a transaction. It reads and writes nothing;
//! it looks at the reply an earlier command of the same transaction produced, and a false
//! check rolls the whole transaction back. Parsing and comparing are pure.

use crate::error::TxuError;

/// The name a check has in a transaction (and as a command).
pub const NAME: &[u8] = b"txu.check";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Nil,
    NotNil,
}

impl Op {
    fn parse(b: &[u8]) -> Option<Op> {
        let ops = [
            (&b"EQ"[..], Op::Eq),
            (b"NE", Op::Ne),
            (b"LT", Op::Lt),
            (b"LE", Op::Le),
            (b"GT", Op::Gt),
            (b"GE", Op::Ge),
            (b"NIL", Op::Nil),
            (b"NOTNIL", Op::NotNil),
        ];
        ops.iter()
            .find(|(name, _)| b.eq_ignore_ascii_case(name))
            .map(|&(_, op)| op)
    }

    fn name(self) -> &'static str {
        match self {
            Op::Eq => "EQ",
            Op::Ne => "NE",
            Op::Lt => "LT",
            Op::Le => "LE",
            Op::Gt => "GT",
            Op::Ge => "GE",
            Op::Nil => "NIL",
            Op::NotNil => "NOTNIL",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

/// A parsed check: which earlier command (0-based), how, against what.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub target: usize,
    pub op: Op,
    pub value: Option<Vec<u8>>,
}

/// A reply as a check sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen<'a> {
    /// A bulk, simple or verbatim string.
    Text(&'a [u8]),
    Int(i64),
    Double(f64),
    Nil,
    /// Anything else (arrays, maps, sets, booleans...).
    Other,
}

fn number(b: &[u8]) -> Option<f64> {
    std::str::from_utf8(b)
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|f| !f.is_nan())
}

/// Parses `TXU.CHECK <k> <op> [<value>]` (`args` after the name) as command `position`
/// (0-based) of a transaction whose earlier commands are checks where `earlier_checks` says.
pub fn parse(args: &[&[u8]], position: usize, earlier_checks: &[bool]) -> Result<Check, TxuError> {
    let bad = |why: String| TxuError::BadCheck(why);
    let (k, op, value) =
        match args {
            [k, op] => (k, op, None),
            [k, op, v] => (k, op, Some(v.to_vec())),
            _ => return Err(bad(
                "takes <k> <op> [<value>]: TXU.CHECK <k> EQ|NE|LT|LE|GT|GE <value> | NIL | NOTNIL"
                    .into(),
            )),
        };
    let k = std::str::from_utf8(k)
        .ok()
        .and_then(|k| k.parse::<i64>().ok())
        .ok_or_else(|| {
            bad("<k> must be a command position (1, 2, ... or -1 for the one before)".into())
        })?;
    let position = i64::try_from(position).unwrap_or(i64::MAX);
    let target = if k > 0 { k - 1 } else { position + k };
    if k == 0 || target < 0 || target >= position {
        return Err(bad(format!(
            "<k> {k} does not name an earlier command of this transaction"
        )));
    }
    let target = usize::try_from(target).unwrap_or(usize::MAX);
    if earlier_checks.get(target).copied().unwrap_or(true) {
        return Err(bad(format!(
            "command {} is a check, not a command",
            target + 1
        )));
    }
    let op = Op::parse(op)
        .ok_or_else(|| bad("<op> must be EQ, NE, LT, LE, GT, GE, NIL or NOTNIL".into()))?;
    match (&value, op) {
        (Some(_), Op::Nil | Op::NotNil) => {
            return Err(bad(format!("{} takes no value", op.name())))
        }
        (None, Op::Nil | Op::NotNil) => {}
        (None, _) => return Err(bad(format!("{} needs a value", op.name()))),
        (Some(v), o) if o.numeric() && number(v).is_none() => {
            return Err(bad(format!("{} needs a number", o.name())))
        }
        (Some(_), _) => {}
    }
    Ok(Check { target, op, value })
}

/// The text of a reply in a failed check's message: numbers in decimal, strings as they
/// are, `nil`, `(array)` for anything else.
fn text(seen: &Seen<'_>) -> String {
    match seen {
        Seen::Text(b) => String::from_utf8_lossy(b).into_owned(),
        Seen::Int(i) => i.to_string(),
        Seen::Double(d) => d.to_string(),
        Seen::Nil => "nil".into(),
        Seen::Other => "(array)".into(),
    }
}

impl Check {
    /// Whether the reply `seen` satisfies the check.
    pub fn holds(&self, seen: &Seen<'_>) -> bool {
        let value = self.value.as_deref().unwrap_or_default();
        match self.op {
            Op::Nil => *seen == Seen::Nil,
            Op::NotNil => *seen != Seen::Nil,
            Op::Eq | Op::Ne => {
                let bytes = match seen {
                    Seen::Text(b) => Some(b.to_vec()),
                    Seen::Int(i) => Some(i.to_string().into_bytes()),
                    Seen::Double(d) => Some(d.to_string().into_bytes()),
                    Seen::Nil => None,
                    Seen::Other => return false,
                };
                let equal = bytes.as_deref() == Some(value);
                (self.op == Op::Eq) == equal
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let (Some(want), Some(got)) = (number(value), seen_number(seen)) else {
                    return false;
                };
                match self.op {
                    Op::Lt => got < want,
                    Op::Le => got <= want,
                    Op::Gt => got > want,
                    _ => got >= want,
                }
            }
        }
    }

    /// The cause a false check reports: `CHECK command <k> (<NAME>) replied <value>,
    /// expected <OP>[ <value>]`.
    pub fn failure(&self, target_name: &str, seen: &Seen<'_>) -> String {
        let expected = match &self.value {
            Some(v) => format!("{} {}", self.op.name(), String::from_utf8_lossy(v)),
            None => self.op.name().to_string(),
        };
        format!(
            "CHECK command {} ({target_name}) replied {}, expected {expected}",
            self.target + 1,
            text(seen)
        )
    }
}

fn seen_number(seen: &Seen<'_>) -> Option<f64> {
    match seen {
        Seen::Int(i) => Some(*i as f64),
        Seen::Double(d) => Some(*d),
        Seen::Text(b) => number(b),
        Seen::Nil | Seen::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str], position: usize, checks: &[bool]) -> Result<Check, TxuError> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse(&args, position, checks)
    }

    #[test]
    fn positions_resolve_forward_and_back() {
        let c = check(&["1", "GE", "0"], 2, &[false, false]).unwrap();
        assert_eq!((c.target, c.op), (0, Op::Ge));
        let c = check(&["-1", "nil"], 2, &[false, false]).unwrap();
        assert_eq!((c.target, c.op, c.value), (1, Op::Nil, None));
        for (args, pos) in [
            (&["0", "NIL"][..], 1),
            (&["2", "NIL"], 1),
            (&["-2", "NIL"], 1),
            (&["x", "NIL"], 1),
        ] {
            assert!(check(args, pos, &[false]).is_err(), "{args:?}");
        }
        assert!(check(&["1", "NIL"], 2, &[true, false]).is_err(), "a check");
    }

    #[test]
    fn operators_and_values_are_validated() {
        assert!(check(&["1", "ABOUT", "1"], 1, &[false]).is_err());
        assert!(check(&["1", "EQ"], 1, &[false]).is_err());
        assert!(check(&["1", "GT", "abc"], 1, &[false]).is_err());
        assert!(check(&["1", "NIL", "x"], 1, &[false]).is_err());
        assert!(check(&["1", "EQ", "abc"], 1, &[false]).is_ok());
        assert!(check(&["1", "le", "-1.5e3"], 1, &[false]).is_ok());
        assert!(check(&["1"], 1, &[false]).is_err());
    }

    #[test]
    fn every_operator_true_and_false() {
        let c = |args: &[&str]| check(args, 1, &[false]).unwrap();
        let cases: Vec<(Check, Seen<'_>, bool)> = vec![
            (c(&["1", "GE", "0"]), Seen::Int(0), true),
            (c(&["1", "GE", "0"]), Seen::Int(-1), false),
            (c(&["1", "GT", "0"]), Seen::Int(0), false),
            (c(&["1", "LT", "2.5"]), Seen::Double(2.4), true),
            (c(&["1", "LE", "2"]), Seen::Text(b"2"), true),
            (c(&["1", "LE", "2"]), Seen::Text(b"x"), false),
            (c(&["1", "GT", "1"]), Seen::Nil, false),
            (c(&["1", "GT", "1"]), Seen::Other, false),
            (c(&["1", "EQ", "OK"]), Seen::Text(b"OK"), true),
            (c(&["1", "EQ", "7"]), Seen::Int(7), true),
            (c(&["1", "EQ", "7"]), Seen::Nil, false),
            (c(&["1", "NE", "7"]), Seen::Nil, true),
            (c(&["1", "NE", "7"]), Seen::Int(7), false),
            (c(&["1", "EQ", "1"]), Seen::Other, false),
            (c(&["1", "NE", "1"]), Seen::Other, false),
            (c(&["1", "NIL"]), Seen::Nil, true),
            (c(&["1", "NIL"]), Seen::Other, false),
            (c(&["1", "NOTNIL"]), Seen::Other, true),
            (c(&["1", "NOTNIL"]), Seen::Nil, false),
        ];
        for (check, seen, want) in cases {
            assert_eq!(check.holds(&seen), want, "{check:?} on {seen:?}");
        }
    }

    #[test]
    fn failure_texts() {
        let c = check(&["1", "GE", "0"], 2, &[false, false]).unwrap();
        assert_eq!(
            c.failure("DECRBY", &Seen::Int(-30)),
            "CHECK command 1 (DECRBY) replied -30, expected GE 0"
        );
        let c = check(&["-1", "NOTNIL"], 2, &[false, false]).unwrap();
        assert_eq!(
            c.failure("GET", &Seen::Nil),
            "CHECK command 2 (GET) replied nil, expected NOTNIL"
        );
        assert_eq!(
            c.failure("LRANGE", &Seen::Other),
            "CHECK command 2 (LRANGE) replied (array), expected NOTNIL"
        );
    }
}
