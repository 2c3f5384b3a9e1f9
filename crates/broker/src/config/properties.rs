//! The Java `.properties` format, read the way `java.util.Properties.load` reads it, so that a
//! Kafka `server.properties` means the same thing here.
//!
//! ```text
//! # comment            ! also a comment (only where a logical line starts)
//! key=value            key: value            key value      (first unescaped '=', ':' or blank)
//!    leading blanks are ignored; trailing blanks belong to the value
//! long.value = a,\
//!              b       a line ending in an odd number of '\' continues on the next one,
//!                      whose leading blanks are dropped: "a,b"
//! k\ e\=y = caf\u00e9  escapes: \t \n \r \f \uXXXX (exactly four hex digits), any other \c is c
//! ```
//!
//! Blanks are space, tab and form feed; lines end with `\n`, `\r` or `\r\n`. A key may be
//! empty, a value usually is when nothing follows the key. Later duplicates win when the pairs are
//! collected into a map. The only syntax error is a malformed `\u` escape (Java throws
//! `IllegalArgumentException` there), reported with the line the logical line starts on.
//!
//! Pure functions over text: no I/O, no allocation beyond the output.

use std::borrow::Cow;

/// A syntax error in a properties text: the only one is a malformed `\uXXXX` escape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PropertiesError {
    /// 1-based number of the natural line where the offending logical line starts.
    pub line: usize,
    /// What is wrong, in Java's words where Java has some.
    pub message: String,
}

/// Decodes a properties file's bytes: UTF-8 (a leading byte-order mark is dropped) when they are
/// valid UTF-8, otherwise ISO-8859-1, which is what `Properties.load(InputStream)`, and so Kafka,
/// always uses.
pub fn decode_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text.strip_prefix('\u{feff}').unwrap_or(text)),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// Parses properties text into `(key, value)` pairs in the order they appear, duplicates
/// included (the last one wins when collected into a map, as in `java.util.Properties`).
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, PropertiesError> {
    let chars: Vec<char> = text.chars().collect();
    let mut reader = LineReader {
        chars: &chars,
        pos: 0,
    };
    let mut pairs = Vec::new();
    while let Some((line, start)) = reader.read_line() {
        let (key, value) = split_key_value(&line);
        let error = |message: String| PropertiesError {
            line: line_number(&chars, start),
            message,
        };
        pairs.push((
            unescape(key).map_err(error)?,
            unescape(value).map_err(error)?,
        ));
    }
    Ok(pairs)
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// 1-based natural line number of the character at `pos`.
fn line_number(chars: &[char], pos: usize) -> usize {
    let mut line = 1;
    let mut previous = '\0';
    for &c in &chars[..pos.min(chars.len())] {
        if c == '\r' || (c == '\n' && previous != '\r') {
            line += 1;
        }
        previous = c;
    }
    line
}

/// Java's `Properties.LineReader`: yields logical lines, with comments and blank lines skipped,
/// leading blanks dropped and continuations joined (escapes are left for [`unescape`]).
struct LineReader<'a> {
    chars: &'a [char],
    pos: usize,
}

impl LineReader<'_> {
    /// The next logical line and the position of its first character, `None` at the end.
    fn read_line(&mut self) -> Option<(Vec<char>, usize)> {
        let mut line: Vec<char> = Vec::new();
        let mut start = self.pos;
        let mut skip_blanks = true;
        let mut appended_line_begin = false;
        let mut preceding_backslash = false;
        loop {
            let Some(&c) = self.chars.get(self.pos) else {
                // End of input: a trailing lone backslash is dropped, as Java does.
                if line.is_empty() {
                    return None;
                }
                if preceding_backslash {
                    line.pop();
                }
                return Some((line, start));
            };
            self.pos += 1;
            if skip_blanks {
                if is_blank(c) {
                    continue;
                }
                if !appended_line_begin && (c == '\r' || c == '\n') {
                    continue;
                }
                skip_blanks = false;
                appended_line_begin = false;
            }
            if line.is_empty() {
                // Still at the start of a logical line: a comment marker makes it a comment.
                start = self.pos - 1;
                if c == '#' || c == '!' {
                    loop {
                        match self.chars.get(self.pos) {
                            None => return None,
                            Some(&t) => {
                                self.pos += 1;
                                if t == '\r' || t == '\n' {
                                    break;
                                }
                            }
                        }
                    }
                    skip_blanks = true;
                    continue;
                }
            }
            if c != '\n' && c != '\r' {
                line.push(c);
                preceding_backslash = c == '\\' && !preceding_backslash;
                continue;
            }
            // End of a natural line.
            if line.is_empty() {
                skip_blanks = true;
                continue;
            }
            if self.pos >= self.chars.len() {
                if preceding_backslash {
                    line.pop();
                }
                return Some((line, start));
            }
            if !preceding_backslash {
                return Some((line, start));
            }
            // Continuation: drop the backslash, skip the next line's leading blanks.
            line.pop();
            skip_blanks = true;
            appended_line_begin = true;
            preceding_backslash = false;
            if c == '\r' && self.chars.get(self.pos) == Some(&'\n') {
                self.pos += 1;
            }
        }
    }
}

/// Java's `Properties.load0` split: the key ends at the first unescaped `=`, `:` or blank; blanks
/// and at most one `=` or `:` after it are skipped.
fn split_key_value(line: &[char]) -> (&[char], &[char]) {
    let limit = line.len();
    let mut key_len = 0;
    let mut value_start = limit;
    let mut has_separator = false;
    let mut preceding_backslash = false;
    while key_len < limit {
        let c = line[key_len];
        if (c == '=' || c == ':') && !preceding_backslash {
            value_start = key_len + 1;
            has_separator = true;
            break;
        }
        if is_blank(c) && !preceding_backslash {
            value_start = key_len + 1;
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
        key_len += 1;
    }
    while value_start < limit {
        let c = line[value_start];
        if !is_blank(c) {
            if !has_separator && (c == '=' || c == ':') {
                has_separator = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    (&line[..key_len], &line[value_start..])
}

/// Java's `Properties.loadConvert`. Works in UTF-16 units so that `\uD83D\uDE00` pairs form one
/// character; a lone surrogate becomes U+FFFD (Java would keep it in its UTF-16 string).
fn unescape(chars: &[char]) -> Result<String, String> {
    let mut units: Vec<u16> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
            continue;
        }
        // A backslash cannot end a logical line, but be safe: a lone one is dropped.
        let Some(&escaped) = chars.get(i) else { break };
        i += 1;
        let decoded = match escaped {
            'u' => {
                let Some(hex) = chars.get(i..i + 4) else {
                    return Err("Malformed \\uxxxx encoding.".to_string());
                };
                let mut unit: u16 = 0;
                for &h in hex {
                    let digit = h
                        .to_digit(16)
                        .ok_or_else(|| "Malformed \\uxxxx encoding.".to_string())?;
                    // Four hex digits fit in 16 bits.
                    unit = (unit << 4) | digit as u16;
                }
                i += 4;
                units.push(unit);
                continue;
            }
            't' => '\t',
            'r' => '\r',
            'n' => '\n',
            'f' => '\x0c',
            other => other,
        };
        let mut buf = [0u16; 2];
        units.extend_from_slice(decoded.encode_utf16(&mut buf));
    }
    Ok(String::from_utf16_lossy(&units))
}

/// Writes a key or value so that [`parse_properties`] reads it back unchanged (Java's
/// `Properties.store` escaping, without the `\u` escapes it adds for non-Latin-1 text).
pub fn escape(text: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            ' ' if i == 0 || is_key => out.push_str("\\ "),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Vec<(String, String)> {
        match parse_properties(text) {
            Ok(pairs) => pairs,
            Err(e) => panic!("unexpected error {e} for {text:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn separators() {
        assert_eq!(
            parse("a=1\nb:2\nc 3\nd = 4\ne : 5\nf\t6\ng =\th\ni\n j :=k\n"),
            pairs(&[
                ("a", "1"),
                ("b", "2"),
                ("c", "3"),
                ("d", "4"),
                ("e", "5"),
                ("f", "6"),
                ("g", "h"),
                ("i", ""),
                ("j", "=k"),
            ])
        );
        // Only the first separator counts; the rest belongs to the value.
        assert_eq!(
            parse("url=a=b:c d\nx::y\n"),
            pairs(&[("url", "a=b:c d"), ("x", ":y")])
        );
        // Blank then '=' then blank: one separator.
        assert_eq!(parse("k  =  v"), pairs(&[("k", "v")]));
        // A key alone, or a separator alone.
        assert_eq!(parse("=v\n:w\n"), pairs(&[("", "v"), ("", "w")]));
    }

    #[test]
    fn whitespace() {
        assert_eq!(
            parse("   \t\x0ckey=value  \n"),
            pairs(&[("key", "value  ")])
        );
        assert_eq!(parse("k=  v"), pairs(&[("k", "v")]));
        assert_eq!(parse("\n\n   \n\t\n"), pairs(&[]));
        assert_eq!(parse(""), pairs(&[]));
    }

    #[test]
    fn comments() {
        let text = "# a comment\n! another\n  # indented comment\nk=v # not a comment\n#k2=v2\n";
        assert_eq!(parse(text), pairs(&[("k", "v # not a comment")]));
        // A comment line cannot be continued.
        assert_eq!(parse("# c \\\nk=v"), pairs(&[("k", "v")]));
        // A comment at the end of input without a newline.
        assert_eq!(parse("k=v\n# end"), pairs(&[("k", "v")]));
        // '#' inside a key is part of it; escaped at the start it is a key.
        assert_eq!(parse("a#b=1\n\\#c=2"), pairs(&[("a#b", "1"), ("#c", "2")]));
    }

    #[test]
    fn continuations() {
        assert_eq!(
            parse("list=a,\\\n     b,\\\n\t c\nnext=1"),
            pairs(&[("list", "a,b,c"), ("next", "1")])
        );
        // Continued key.
        assert_eq!(parse("ke\\\n  y=v"), pairs(&[("key", "v")]));
        // An even number of backslashes does not continue.
        assert_eq!(parse("a=x\\\\\nb=y"), pairs(&[("a", "x\\"), ("b", "y")]));
        // An empty line after a continuation ends the logical line.
        assert_eq!(parse("a=x\\\n\nb=y"), pairs(&[("a", "x"), ("b", "y")]));
        // A '#' at the start of a continuation line is content, not a comment.
        assert_eq!(parse("a=x\\\n#y"), pairs(&[("a", "x#y")]));
        // CR LF and lone CR line endings.
        assert_eq!(
            parse("a=1\\\r\n  2\r\nb=3\rc=4\\\r5"),
            pairs(&[("a", "12"), ("b", "3"), ("c", "45")])
        );
        // A trailing backslash at the end of input is dropped.
        assert_eq!(parse("a=x\\"), pairs(&[("a", "x")]));
        assert_eq!(parse("a=x\\\n"), pairs(&[("a", "x")]));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            parse("tab=a\\tb\nnl=a\\nb\ncr=\\r\nff=\\f\nother=\\q\\\\\\=\\:"),
            pairs(&[
                ("tab", "a\tb"),
                ("nl", "a\nb"),
                ("cr", "\r"),
                ("ff", "\x0c"),
                ("other", "q\\=:"),
            ])
        );
        // Escaped separators and blanks stay in the key.
        assert_eq!(parse("a\\=b\\:c\\ d = v"), pairs(&[("a=b:c d", "v")]));
        // An escaped leading blank is kept in the value.
        assert_eq!(parse("k=\\  v"), pairs(&[("k", "  v")]));
        // Unicode escapes, upper and lower case hex, and a surrogate pair.
        assert_eq!(
            parse("k=caf\\u00e9 \\u00E9\nsmile=\\uD83D\\uDE00"),
            pairs(&[("k", "café é"), ("smile", "😀")])
        );
        // A lone surrogate does not fail.
        assert_eq!(parse("k=\\uD800x"), pairs(&[("k", "\u{fffd}x")]));
    }

    #[test]
    fn malformed_unicode_escape() {
        let err = parse_properties("ok=1\n# c\nbad=\\u12G4\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("Malformed"), "{err}");
        let err = parse_properties("a=\\\n b\\u12").unwrap_err();
        assert_eq!(err.line, 1);
        let err = parse_properties("\r\n\r\nk\\uzzzz=v").unwrap_err();
        assert_eq!(err.line, 3);
    }

    #[test]
    fn non_ascii_text() {
        assert_eq!(parse("clé=valeur ü"), pairs(&[("clé", "valeur ü")]));
        assert_eq!(decode_text("\u{feff}a=b".as_bytes()), "a=b");
        // Not UTF-8: read as ISO-8859-1, like Java.
        assert_eq!(decode_text(b"k=caf\xe9"), "k=café");
    }

    #[test]
    fn duplicates_are_kept_in_order() {
        assert_eq!(parse("a=1\na=2"), pairs(&[("a", "1"), ("a", "2")]));
    }

    #[test]
    fn escape_round_trips_awkward_text() {
        for (k, v) in [
            (" lead", " lead"),
            ("a=b:c d", "x\\y"),
            ("#!", "\t\n\r\x0c"),
            ("", ""),
        ] {
            let text = format!("{}={}", escape(k, true), escape(v, false));
            assert_eq!(parse(&text), pairs(&[(k, v)]), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse_properties(&text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_properties(&decode_text(&bytes));
        }

        #[test]
        fn syntax_heavy_text_never_panics(
            text in proptest::collection::vec(
                prop_oneof![
                    Just("\\".to_string()), Just("\n".to_string()), Just("\r".to_string()),
                    Just("=".to_string()), Just(":".to_string()), Just(" ".to_string()),
                    Just("#".to_string()), Just("!".to_string()), Just("\\u".to_string()),
                    Just("\t".to_string()), "[0-9a-fA-Fxyz]{0,3}",
                ],
                0..64,
            )
        ) {
            let _ = parse_properties(&text.concat());
        }

        #[test]
        fn escaped_pairs_round_trip(key in "\\PC{0,12}", value in "\\PC{0,24}") {
            let text = format!("{}={}\n", escape(&key, true), escape(&value, false));
            let parsed = parse_properties(&text);
            prop_assert_eq!(parsed, Ok(vec![(key, value)]));
        }
    }
}
