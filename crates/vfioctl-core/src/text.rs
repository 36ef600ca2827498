//! Text from outside (sysfs attributes, arguments) made safe to print: a terminal must never
//! receive a control sequence from a device name, and an argument is never echoed back whole.

/// How much of an argument an error message echoes back.
pub const ECHO_LIMIT: usize = 64;

/// `text` with control characters (other than newline and tab) written as `\x1b`-style escapes,
/// so an attribute holding an escape sequence cannot drive the terminal.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    // Most text has no byte a control character is made of (below 0x20, 0x7f, or 0xc2 that
    // starts U+0080..U+009F): a byte scan answers that several times faster than decoding.
    let suspect = |b: u8| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f || b == 0xc2;
    if !text.bytes().any(suspect) || !text.chars().any(is_escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn is_escaped(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// An argument as an error message echoes it: control characters escaped (newlines too), and cut
/// with an ellipsis after [`ECHO_LIMIT`] characters.
pub fn echoed(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(ECHO_LIMIT)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if text.chars().nth(ECHO_LIMIT).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_is_untouched() {
        assert_eq!(escape_controls("igb"), "igb");
        assert_eq!(escape_controls("a\x1b[2Jb\r\n"), "a\\u{1b}[2Jb\\r\n");
        // C1 controls (CSI is U+009B) and DEL, past the byte scan's quick answer.
        assert_eq!(escape_controls("a\u{9b}2J\u{7f}"), "a\\u{9b}2J\\u{7f}");
        // 0xc2 also starts printable characters, which stay.
        assert_eq!(escape_controls("25\u{b0}C \u{a9}"), "25\u{b0}C \u{a9}");
    }

    #[test]
    fn long_arguments_are_cut_with_an_ellipsis() {
        let long = "x".repeat(100_000);
        let shown = echoed(&long);
        assert_eq!(shown.chars().count(), ECHO_LIMIT + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(echoed("01:00.0"), "01:00.0");
        assert_eq!(echoed("a\nb"), "a\\nb");
    }
}
