//! The `[thresholds]` table: pass/fail criteria on named metrics.
//!
//! Each entry is `metric = NUMBER` (the metric must be ≤ NUMBER) or
//! `metric = "OP NUMBER"` with OP one of `<`, `<=`, `>`, `>=`, `==`, `!=`. Loadgen evaluates
//! the metrics of its own report ([`crate::Report::metric`]); others (e.g. `lost`) belong to
//! the conformance suite and are reported as not evaluated.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl CmpOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

/// One criterion: `actual OP value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// The comparison.
    pub op: CmpOp,
    /// The bound, in the metric's unit (ms, events/s, count or ratio).
    pub value: f64,
}

impl Threshold {
    /// True when `actual` satisfies the criterion (a NaN never does).
    pub fn check(&self, actual: f64) -> bool {
        match self.op {
            CmpOp::Lt => actual < self.value,
            CmpOp::Le => actual <= self.value,
            CmpOp::Gt => actual > self.value,
            CmpOp::Ge => actual >= self.value,
            CmpOp::Eq => actual == self.value,
            CmpOp::Ne => actual != self.value && !actual.is_nan(),
        }
    }

    /// Parses `"< 60000"`, `"<=0.01"`, `"== 0"` or a bare number (meaning `<=`).
    ///
    /// # Errors
    /// A message naming the accepted forms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let ops = [
            ("<=", CmpOp::Le),
            (">=", CmpOp::Ge),
            ("==", CmpOp::Eq),
            ("!=", CmpOp::Ne),
            ("<", CmpOp::Lt),
            (">", CmpOp::Gt),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(s, op)| t.strip_prefix(s).map(|r| (*op, r)))
            .unwrap_or((CmpOp::Le, t));
        let value: f64 = rest.trim().parse().map_err(|_| {
            format!("invalid threshold {text:?}: expected e.g. \"< 60000\" or a number")
        })?;
        if value.is_nan() {
            return Err(format!("invalid threshold {text:?}: NaN"));
        }
        Ok(Self { op, value })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.as_str(), self.value)
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Threshold;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string such as \"< 60000\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Threshold, E> {
                Threshold::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Threshold, E> {
                Ok(Threshold {
                    op: CmpOp::Le,
                    value: v as f64,
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Threshold, E> {
                Ok(Threshold {
                    op: CmpOp::Le,
                    value: v as f64,
                })
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Threshold, E> {
                Ok(Threshold {
                    op: CmpOp::Le,
                    value: v,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Metric name -> criterion, in name order.
pub type Thresholds = BTreeMap<String, Threshold>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let t = Threshold::parse("< 60000").unwrap();
        assert!(t.check(59_999.0) && !t.check(60_000.0));
        let t = Threshold::parse(">=0.99").unwrap();
        assert_eq!(t.op, CmpOp::Ge);
        assert!(t.check(0.99) && !t.check(0.5));
        let t = Threshold::parse("0").unwrap();
        assert!(t.check(0.0) && !t.check(1.0));
        assert!(!Threshold::parse("== 0").unwrap().check(f64::NAN));
        assert!(Threshold::parse("< soon").is_err());
        let m: Thresholds = toml::from_str(
            "lost = 0\np99_delivery_ms = \"< 60000\"\nachieved_rate_error = \"< 0.01\"",
        )
        .unwrap();
        assert_eq!(
            m["lost"],
            Threshold {
                op: CmpOp::Le,
                value: 0.0
            }
        );
        assert_eq!(m["p99_delivery_ms"].to_string(), "< 60000");
    }
}
