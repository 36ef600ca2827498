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

/// serde_json's pretty layout, which also escapes DEL and the C1 controls in strings as
/// `\u007f`-style escapes. serde_json escapes only the C0 controls; a terminal takes U+009B as
/// CSI, so an attribute holding one must not reach it raw, and escaping it while encoding keeps
/// the document valid JSON (the same string to a parser) without a second pass over megabytes.
#[derive(Default)]
pub struct JsonFormatter {
    pretty: serde_json::ser::PrettyFormatter<'static>,
}

impl serde_json::ser::Formatter for JsonFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // serde_json has escaped everything below 0x20; only DEL (0x7f) and 0xc2 0x80..0x9f
        // remain, and a byte scan finds that there are none in nearly every fragment.
        if !fragment.bytes().any(|b| b == 0x7f || b == 0xc2) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if c.is_control() {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.pretty.end_object_value(w)
    }
}

/// `value` as a pretty JSON document written to `writer`, with [`JsonFormatter`]'s escapes.
pub fn write_json<W: std::io::Write>(
    writer: W,
    value: &impl serde::Serialize,
) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, JsonFormatter::default());
    value.serialize(&mut serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_del_and_c1_controls_and_stays_valid() {
        let text = "a\u{9b}2J\u{7f}\u{1b}[0m 25\u{b0}C";
        let mut out = Vec::new();
        write_json(
            &mut out,
            &serde_json::json!({ "name": text, "plain": "igb" }),
        )
        .unwrap();
        let json = String::from_utf8(out).unwrap();
        assert_eq!(
            json,
            "{\n  \"name\": \"a\\u009b2J\\u007f\\u001b[0m 25\u{b0}C\",\n  \"plain\": \"igb\"\n}"
        );
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["name"], text);
        // The layout is serde_json's own.
        let value = serde_json::json!({ "a": [1, { "b": [] }], "c": {} });
        let mut ours = Vec::new();
        write_json(&mut ours, &value).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            serde_json::to_string_pretty(&value).unwrap()
        );
    }

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
