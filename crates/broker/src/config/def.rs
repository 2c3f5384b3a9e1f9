//! Kafka's `ConfigDef` in miniature: a key's type, default, validator and documentation, and the
//! parsing, validation and rendering rules Kafka applies to every string value.
//!
//! Parsing follows `ConfigDef.parseType`: the value is trimmed (Java `trim`: every character up to
//! U+0020), booleans are `true`/`false` in any case, numbers are Java integers (an optional sign
//! and decimal digits), lists are split on commas with surrounding blanks removed (an empty string
//! is the empty list). Rendering follows `ConfigDef.convertToString`, which is what
//! DescribeConfigs shows: lists joined with `,`, doubles as Java prints them (`0.5`, `1.0`).

use super::describe::ConfigType;
use super::InvalidValue;

/// A validator, Kafka's `ConfigDef.Validator` implementations that the supported keys use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// Anything the type parses.
    None,
    /// `Range.atLeast(min)`.
    AtLeast(i64),
    /// `Range.between(min, max)`.
    Between(i64, i64),
    /// `Range.between(min, max)` on a double.
    DoubleBetween(f64, f64),
    /// `ValidString.in(...)`: one of these exact (case-sensitive) strings.
    OneOf(&'static [&'static str]),
    /// `ValidList`: no duplicates, no empty entries, every entry one of `allowed` (any value when
    /// `allowed` is empty), the whole list empty only when `allow_empty`.
    List {
        allowed: &'static [&'static str],
        allow_empty: bool,
    },
    /// `GzipCompression.LevelValidator`: 1 to 9, or -1 for the library default.
    GzipLevel,
}

/// The definition of one configuration key.
#[derive(Debug)]
pub(crate) struct KeyDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// The default as Kafka would write it in a properties file; `None` is Kafka's `null`.
    pub default: Option<&'static str>,
    pub check: Check,
    pub doc: &'static str,
}

/// A parsed and validated value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    Str(String),
    Int(i32),
    Short(i16),
    Long(i64),
    Double(f64),
    List(Vec<String>),
}

/// A typed value was asked of a key defined with another type, or of a key without a value.
/// Only a programming error in this module tree produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WrongType(pub &'static str);

/// Java's `String.trim`: strips every leading and trailing character up to U+0020.
pub(crate) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Splits a list value as Kafka does (`\s*,\s*` after trimming, trailing empty entries kept;
/// an empty string is the empty list).
pub(crate) fn split_list(raw: &str) -> Vec<String> {
    let trimmed = java_trim(raw);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(',')
        .map(|item| {
            item.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r'))
                .to_string()
        })
        .collect()
}

/// Java's decimal integer syntax: optional sign, then ASCII digits only.
fn java_integer(s: &str) -> Option<i128> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i128>().ok()
}

impl KeyDef {
    /// Parses and validates a raw value the way Kafka does for this key.
    pub fn parse(&self, raw: &str) -> Result<Value, InvalidValue> {
        let trimmed = java_trim(raw);
        let invalid = |reason: String| InvalidValue::new(self.name, raw, reason);
        let not_a_number = || invalid(format!("Not a number of type {}", self.ty.kafka_name()));
        let value = match self.ty {
            ConfigType::Boolean => {
                if trimmed.eq_ignore_ascii_case("true") {
                    Value::Bool(true)
                } else if trimmed.eq_ignore_ascii_case("false") {
                    Value::Bool(false)
                } else {
                    return Err(invalid("Expected value to be either true or false".into()));
                }
            }
            ConfigType::Int => Value::Int(
                java_integer(trimmed)
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(not_a_number)?,
            ),
            ConfigType::Short => Value::Short(
                java_integer(trimmed)
                    .and_then(|v| i16::try_from(v).ok())
                    .ok_or_else(not_a_number)?,
            ),
            ConfigType::Long => Value::Long(
                java_integer(trimmed)
                    .and_then(|v| i64::try_from(v).ok())
                    .ok_or_else(not_a_number)?,
            ),
            ConfigType::Double => {
                let v: f64 = trimmed.parse().map_err(|_| not_a_number())?;
                if v.is_nan() {
                    return Err(not_a_number());
                }
                Value::Double(v)
            }
            ConfigType::List => Value::List(split_list(raw)),
            ConfigType::String | ConfigType::Class | ConfigType::Password | ConfigType::Unknown => {
                Value::Str(trimmed.to_string())
            }
        };
        self.validate(&value).map_err(invalid)?;
        Ok(value)
    }

    /// Runs the validator on an already typed value.
    pub fn validate(&self, value: &Value) -> Result<(), String> {
        let number = match value {
            Value::Int(v) => Some(i64::from(*v)),
            Value::Short(v) => Some(i64::from(*v)),
            Value::Long(v) => Some(*v),
            _ => None,
        };
        match (self.check, value) {
            (Check::None, _) => Ok(()),
            (Check::AtLeast(min), _) => match number {
                Some(n) if n < min => Err(format!("Value must be at least {min}")),
                _ => Ok(()),
            },
            (Check::Between(min, max), _) => match number {
                Some(n) if n < min => Err(format!("Value must be at least {min}")),
                Some(n) if n > max => Err(format!("Value must be no more than {max}")),
                _ => Ok(()),
            },
            (Check::DoubleBetween(min, max), Value::Double(d)) => {
                if *d < min {
                    Err(format!("Value must be at least {}", java_double(min)))
                } else if *d > max {
                    Err(format!("Value must be no more than {}", java_double(max)))
                } else {
                    Ok(())
                }
            }
            (Check::OneOf(allowed), Value::Str(s)) => {
                if allowed.contains(&s.as_str()) {
                    Ok(())
                } else {
                    Err(format!("String must be one of: {}", allowed.join(", ")))
                }
            }
            (
                Check::List {
                    allowed,
                    allow_empty,
                },
                Value::List(items),
            ) => {
                if items.is_empty() && !allow_empty {
                    let valid = if allowed.is_empty() {
                        "any non-empty value".to_string()
                    } else {
                        format!("[{}]", allowed.join(", "))
                    };
                    return Err(format!("must not be empty. Valid values include: {valid}"));
                }
                for (i, item) in items.iter().enumerate() {
                    if items[..i].contains(item) {
                        return Err("values must not be duplicated".to_string());
                    }
                    if item.is_empty() {
                        return Err("values must not be empty".to_string());
                    }
                    if !allowed.is_empty() && !allowed.contains(&item.as_str()) {
                        return Err(format!("String must be one of: {}", allowed.join(", ")));
                    }
                }
                Ok(())
            }
            (Check::GzipLevel, _) => match number {
                Some(n) if n != -1 && !(1..=9).contains(&n) => {
                    Err("Value must be between 1 and 9, or -1".to_string())
                }
                _ => Ok(()),
            },
            // A validator that does not apply to the value's type: never defined that way.
            _ => Ok(()),
        }
    }

    /// The parsed default, `None` for Kafka's `null` default.
    pub fn default_value(&self) -> Option<Value> {
        self.default.and_then(|d| self.parse(d).ok())
    }
}

impl Value {
    /// The value as DescribeConfigs shows it (`ConfigDef.convertToString`).
    pub fn render(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => s.clone(),
            Value::Int(v) => v.to_string(),
            Value::Short(v) => v.to_string(),
            Value::Long(v) => v.to_string(),
            Value::Double(v) => java_double(*v),
            Value::List(items) => items.join(","),
        }
    }
}

/// Java's `Double.toString`: decimal with at least one fraction digit between 10^-3 and 10^7,
/// computerized scientific notation (`1.0E-4`) outside.
pub(crate) fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let magnitude = v.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let s = v.to_string();
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((mantissa, exponent)) if mantissa.contains('.') => {
                format!("{mantissa}E{exponent}")
            }
            Some((mantissa, exponent)) => format!("{mantissa}.0E{exponent}"),
            None => s,
        }
    }
}

/// Parsed values of a key table, keyed by name, with typed accessors.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Values {
    values: std::collections::BTreeMap<&'static str, Option<Value>>,
}

impl Values {
    /// Parses every key of `table` from `props` (or its default); the first invalid value fails.
    pub fn resolve(
        table: &'static [KeyDef],
        props: &std::collections::BTreeMap<String, String>,
    ) -> Result<Values, InvalidValue> {
        let mut values = std::collections::BTreeMap::new();
        for def in table {
            let value = match props.get(def.name) {
                Some(raw) => Some(def.parse(raw)?),
                None => def.default_value(),
            };
            values.insert(def.name, value);
        }
        Ok(Values { values })
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).and_then(Option::as_ref)
    }

    pub fn set(&mut self, name: &'static str, value: Option<Value>) {
        self.values.insert(name, value);
    }

    pub fn opt_int(&self, name: &'static str) -> Result<Option<i32>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Int(v)) => Ok(Some(*v)),
            Some(_) => Err(WrongType(name)),
        }
    }
    pub fn int(&self, name: &'static str) -> Result<i32, WrongType> {
        self.opt_int(name)?.ok_or(WrongType(name))
    }
    pub fn short(&self, name: &'static str) -> Result<i16, WrongType> {
        match self.get(name) {
            Some(Value::Short(v)) => Ok(*v),
            _ => Err(WrongType(name)),
        }
    }
    pub fn opt_long(&self, name: &'static str) -> Result<Option<i64>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Long(v)) => Ok(Some(*v)),
            Some(_) => Err(WrongType(name)),
        }
    }
    pub fn long(&self, name: &'static str) -> Result<i64, WrongType> {
        self.opt_long(name)?.ok_or(WrongType(name))
    }
    pub fn bool(&self, name: &'static str) -> Result<bool, WrongType> {
        match self.get(name) {
            Some(Value::Bool(v)) => Ok(*v),
            _ => Err(WrongType(name)),
        }
    }
    pub fn double(&self, name: &'static str) -> Result<f64, WrongType> {
        match self.get(name) {
            Some(Value::Double(v)) => Ok(*v),
            _ => Err(WrongType(name)),
        }
    }
    pub fn opt_str(&self, name: &'static str) -> Result<Option<&str>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Str(v)) => Ok(Some(v)),
            Some(_) => Err(WrongType(name)),
        }
    }
    pub fn str(&self, name: &'static str) -> Result<&str, WrongType> {
        self.opt_str(name)?.ok_or(WrongType(name))
    }
    pub fn opt_list(&self, name: &'static str) -> Result<Option<&[String]>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::List(v)) => Ok(Some(v)),
            Some(_) => Err(WrongType(name)),
        }
    }
    pub fn list(&self, name: &'static str) -> Result<&[String], WrongType> {
        self.opt_list(name)?.ok_or(WrongType(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(ty: ConfigType, check: Check) -> KeyDef {
        KeyDef {
            name: "k",
            ty,
            default: None,
            check,
            doc: "",
        }
    }

    #[test]
    fn numbers_follow_java() {
        let int = def(ConfigType::Int, Check::None);
        assert_eq!(int.parse(" 42 "), Ok(Value::Int(42)));
        assert_eq!(int.parse("+7"), Ok(Value::Int(7)));
        assert_eq!(int.parse("-7"), Ok(Value::Int(-7)));
        for bad in ["", "4 2", "0x10", "1e3", "2147483648", "+"] {
            let err = int.parse(bad).unwrap_err();
            assert_eq!(err.reason, "Not a number of type INT", "{bad:?}");
            assert_eq!(err.value, bad);
        }
        let short = def(ConfigType::Short, Check::None);
        assert_eq!(short.parse("32767"), Ok(Value::Short(32767)));
        assert!(short.parse("32768").is_err());
        let long = def(ConfigType::Long, Check::None);
        assert_eq!(long.parse("9223372036854775807"), Ok(Value::Long(i64::MAX)));
        assert!(long.parse("9223372036854775808").is_err());
        let double = def(ConfigType::Double, Check::DoubleBetween(0.0, 1.0));
        assert_eq!(double.parse("0.25"), Ok(Value::Double(0.25)));
        assert_eq!(double.parse("1"), Ok(Value::Double(1.0)));
        assert!(double.parse("NaN").is_err());
        assert!(double.parse("1.5").is_err());
    }

    #[test]
    fn booleans_ignore_case() {
        let b = def(ConfigType::Boolean, Check::None);
        assert_eq!(b.parse("TRUE"), Ok(Value::Bool(true)));
        assert_eq!(b.parse(" False\t"), Ok(Value::Bool(false)));
        assert_eq!(
            b.parse("yes").unwrap_err().reason,
            "Expected value to be either true or false"
        );
    }

    #[test]
    fn lists() {
        let l = def(
            ConfigType::List,
            Check::List {
                allowed: &["compact", "delete"],
                allow_empty: true,
            },
        );
        assert_eq!(
            l.parse(" compact ,\tdelete "),
            Ok(Value::List(vec!["compact".into(), "delete".into()]))
        );
        assert_eq!(l.parse(""), Ok(Value::List(vec![])));
        assert!(l.parse("compact,compact").is_err());
        assert!(l.parse("compact,").is_err());
        assert!(l.parse("Compact").is_err());
        let non_empty = def(
            ConfigType::List,
            Check::List {
                allowed: &[],
                allow_empty: false,
            },
        );
        assert!(non_empty.parse("  ").is_err());
        assert_eq!(
            non_empty.parse("a, b"),
            Ok(Value::List(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn ranges() {
        let at_least = def(ConfigType::Long, Check::AtLeast(-1));
        assert!(at_least.parse("-1").is_ok());
        assert_eq!(
            at_least.parse("-2").unwrap_err().to_string(),
            "Invalid value -2 for configuration k: Value must be at least -1"
        );
        let between = def(ConfigType::Int, Check::Between(1, 17));
        assert!(between.parse("17").is_ok());
        assert!(between.parse("0").is_err());
        assert!(between.parse("18").is_err());
        let gzip = def(ConfigType::Int, Check::GzipLevel);
        for ok in ["-1", "1", "9"] {
            assert!(gzip.parse(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "10", "-2"] {
            assert!(gzip.parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_like_java() {
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1e-4), "1.0E-4");
        assert_eq!(java_double(1.5e10), "1.5E10");
        assert_eq!(java_double(1234567.0), "1234567.0");
        assert_eq!(
            Value::List(vec!["a".into(), "b".into()]).render(),
            "a,b".to_string()
        );
        assert_eq!(Value::Long(-1).render(), "-1");
    }
}
