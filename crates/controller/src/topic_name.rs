//! Kafka's rules for topic names (`org.apache.kafka.common.internals.Topic`).

use crate::error::MetadataError;

/// Longest legal topic name.
pub const MAX_NAME_LENGTH: usize = 249;

/// Checks a topic name: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate(name: &str) -> Result<(), MetadataError> {
    if name.is_empty() {
        return Err(MetadataError::InvalidTopic(
            "Topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(MetadataError::InvalidTopic(
            "Topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(MetadataError::InvalidTopic(format!(
            "Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {name}"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(MetadataError::InvalidTopic(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// Kafka refuses names that differ only by `.` versus `_` from an existing topic, because
/// metric names cannot tell them apart.
pub fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_legal_names() {
        for n in ["orders", "a.b_c-d", "__consumer_offsets", &"x".repeat(249)] {
            validate(n).unwrap();
        }
    }

    #[test]
    fn refuses_illegal_names() {
        for n in [
            "",
            ".",
            "..",
            "has space",
            "slash/x",
            "ümlaut",
            &"x".repeat(250),
        ] {
            assert!(validate(n).is_err(), "{n:?}");
        }
    }

    #[test]
    fn dot_and_underscore_collide() {
        assert!(collides("a.b", "a_b"));
        assert!(!collides("a.b", "a.b"));
        assert!(!collides("a.b", "a-b"));
    }
}
