//! The one rule for names and descriptions that must say something, and
//! the JSON Schema pattern that states it in the API's description.

/// A JSON Schema pattern matched by a text with something to read: one
/// character that is neither white space nor a control character. Spelled
/// out because `\S` means different things to different regex engines
/// (Python's counts U+001C to U+001F as space, ECMA-262's does not).
pub const VISIBLE: &str =
    r"[^\x00-\x20\x7f-\x9f\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// Whether a text has nothing to read: only white space and control
/// characters (the texts [`VISIBLE`] does not match).
pub(crate) fn blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_and_the_rule_agree() {
        let schema = serde_json::json!({"type": "string", "pattern": VISIBLE});
        let validator = jsonschema::validator_for(&schema).expect("a valid pattern");
        // Every character where the two could differ lies below U+3100.
        for c in (0..0x3100u32).filter_map(char::from_u32) {
            let text = c.to_string();
            assert_eq!(
                validator.is_valid(&serde_json::json!(text)),
                !blank(&text),
                "U+{:04X}",
                c as u32
            );
        }
        assert!(blank(" \u{1c}\t\u{3000}"));
        assert!(!blank(" a "));
    }
}
