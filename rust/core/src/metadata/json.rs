//! Metadata documents as JSON, including the non-finite numbers Python writes.
//!
//! zarr-python stores attributes with Python's `json`, which writes `NaN`, `Infinity` and
//! `-Infinity` as bare tokens: strict JSON has no such numbers, and `serde_json` refuses them.
//! A document holding one (an attribute `{"scale": NaN}`) must still open, and keep the number
//! when it is written again. Python's `json` also writes strings holding a lone surrogate
//! (`os.fsdecode` of a file name that is not UTF-8 gives them) as an escape, `"\udcff"`,
//! which Python reads back but Rust strings cannot hold.
//!
//! So a parsed document holds them as markers, with NUL as the escape character: a bare token
//! is read as the string of a NUL and the token ([`NAN`], [`INFINITY`], [`NEG_INFINITY`]), a
//! lone surrogate inside a string as a NUL, a U+0001 and its four hex digits ([`SURROGATE`]),
//! and every real NUL in a string as two. A single NUL thus always begins a marker, and
//! writing the document turns each back into what was read. Values holding text (fill
//! values) are read with [`text_of`] and [`code_points`] and made with [`string_value`] and
//! [`string_value_of`].

use serde_json::Value;

/// What a bare `NaN` is read as.
pub const NAN: &str = "\u{0}NaN";
/// What a bare `Infinity` is read as.
pub const INFINITY: &str = "\u{0}Infinity";
/// What a bare `-Infinity` is read as.
pub const NEG_INFINITY: &str = "\u{0}-Infinity";

/// What a lone surrogate escape `\uXXXX` inside a string is read as: this, then `XXXX`.
pub const SURROGATE: &str = "\u{0}\u{1}";

/// The bare tokens, longest first where one begins another, with their markers' JSON text.
const TOKENS: [(&str, &str); 3] = [
    ("-Infinity", "\"\\u0000-Infinity\""),
    ("Infinity", "\"\\u0000Infinity\""),
    ("NaN", "\"\\u0000NaN\""),
];

/// The text Python gives the number a bare token stands for (`str(float("nan"))`), if `s`
/// is a bare token's marker: what zarr-python reads as a text fill value there.
pub fn bare_token_text(s: &str) -> Option<&'static str> {
    match s {
        NAN => Some("nan"),
        INFINITY => Some("inf"),
        NEG_INFINITY => Some("-inf"),
        _ => None,
    }
}

/// The code points a string value of a parsed document holds: its NULs halved, and its lone
/// surrogates (read as [`SURROGATE`] and four hex digits) among them, as numpy's `U` strings
/// hold them.
pub fn code_points(s: &str) -> Vec<u32> {
    let mut points = Vec::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\0' {
            points.push(u32::from(c));
            continue;
        }
        match chars.peek() {
            Some('\0') => {
                chars.next();
                points.push(0);
            }
            Some('\u{1}') => {
                let rest: String = chars.clone().skip(1).take(4).collect();
                match u32::from_str_radix(&rest, 16) {
                    Ok(unit) if rest.len() == 4 && rest.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        points.push(unit);
                        for _ in 0..5 {
                            chars.next();
                        }
                    }
                    _ => points.push(0),
                }
            }
            // A marker of a bare token (a whole string): its text, as it was read.
            _ => points.push(0),
        }
    }
    points
}

/// The text a string value of a parsed document holds (see [`code_points`]); `None` if it
/// holds a lone surrogate, which UTF-8 text cannot.
pub fn text_of(s: &str) -> Option<String> {
    code_points(s).into_iter().map(char::from_u32).collect()
}

/// The string value of a document holding `points`, lone surrogates among them (the inverse
/// of [`code_points`]).
pub fn string_value_of(points: &[u32]) -> Value {
    let mut text = String::with_capacity(points.len());
    for &point in points {
        match char::from_u32(point) {
            Some('\0') => text.push_str("\0\0"),
            Some(c) => text.push(c),
            None if (0xD800..=0xDFFF).contains(&point) => {
                text.push_str(SURROGATE);
                text.push_str(&format!("{point:04x}"));
            }
            None => {} // beyond Unicode: no JSON string holds it
        }
    }
    Value::String(text)
}

/// `text` as a string value of a document, the inverse of [`text_of`].
pub fn string_value(text: String) -> Value {
    if text.contains('\0') {
        Value::String(text.replace('\0', "\0\0"))
    } else {
        Value::String(text)
    }
}

/// A JSON number as a double, as Python's `float()` reads it: one beyond a double's range
/// (`1e400`) is infinite. (Numbers keep their text, so such a document parses; serde_json's
/// `as_f64` gives nothing for them.)
pub fn number_as_f64(n: &serde_json::Number) -> f64 {
    // An integer literal is an integer first, as Python's json reads it: `-0` is 0, not -0.0
    // (zarr-python and TensorStore read a float fill value of `-0` as +0.0).
    if let Some(i) = n.as_i64() {
        return i as f64;
    }
    n.as_f64()
        .unwrap_or_else(|| n.to_string().parse().unwrap_or(f64::NAN))
}

/// A JSON integer as a count (a shape's length), `-0` too: Python's json reads it as 0, and
/// serde_json as no unsigned integer.
pub fn as_count(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| (value.as_i64() == Some(0)).then_some(0))
}

/// Parses a document, reading bare `NaN`, `Infinity` and `-Infinity` as their markers. A
/// leading UTF-8 byte-order mark (which editors on Windows write) is skipped, as Python's
/// json and TensorStore skip it.
pub fn parse(bytes: &[u8]) -> serde_json::Result<Value> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match from_slice(bytes) {
        // A NUL, escaped, may begin a string that must be told from a marker.
        Ok(value) if !bytes.windows(6).any(|w| w == b"\\u0000") => Ok(value),
        Ok(value) => match with_markers(bytes) {
            Some(marked) => from_slice(&marked),
            None => Ok(value),
        },
        // Only a document that fails strictly is scanned (the usual one has no such token).
        Err(strict) => match with_markers(bytes) {
            Some(marked) => from_slice(&marked),
            None => Err(strict),
        },
    }
}

/// The deepest nesting of arrays and objects a document may have: about what Python's json
/// module reads (its recursion limit), so that attributes zarr-python wrote are read; past
/// serde_json's own limit of 128, whose check is off here.
pub const MAX_DEPTH: usize = 1000;

fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    use serde::de::Error as _;
    // Checked before parsing: without its limit, serde_json recurses once per level.
    if nesting(bytes) > MAX_DEPTH {
        return Err(serde_json::Error::custom(format!(
            "arrays and objects nested more than {MAX_DEPTH} deep"
        )));
    }
    let mut parser = serde_json::Deserializer::from_slice(bytes);
    parser.disable_recursion_limit();
    let value = serde::Deserialize::deserialize(&mut parser)?;
    parser.end()?;
    Ok(value)
}

/// How deep arrays and objects nest in `bytes` (brackets inside strings not counted).
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    deepest
}

/// The UTF-16 unit of the escape `\uXXXX` at the start of `bytes`, if it is one.
fn unit_at(bytes: &[u8]) -> Option<u16> {
    let hex = bytes.strip_prefix(b"\\u")?.get(..4)?;
    u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// The document with each bare token outside strings replaced by its marker's JSON text,
/// each lone surrogate escape inside strings by its marker's, and each NUL inside strings
/// doubled; `None` if there is none.
fn with_markers(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut in_string = false;
    let mut found = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if b == b'\\' {
                // An escape: copied whole, unless it is a NUL or a surrogate without its pair.
                let len = match unit_at(&bytes[i..]) {
                    Some(0) => {
                        out.extend_from_slice(b"\\u0000\\u0000");
                        i += 6;
                        found = true;
                        continue;
                    }
                    // A high surrogate followed by a low one: a pair, one character.
                    Some(0xD800..=0xDBFF)
                        if matches!(unit_at(&bytes[i + 6..]), Some(0xDC00..=0xDFFF)) =>
                    {
                        12
                    }
                    Some(0xD800..=0xDFFF) => {
                        out.extend_from_slice(b"\\u0000\\u0001");
                        out.extend_from_slice(&bytes[i + 2..i + 6]);
                        i += 6;
                        found = true;
                        continue;
                    }
                    Some(_) => 6,
                    None => 2,
                };
                let end = (i + len).min(bytes.len());
                out.extend_from_slice(&bytes[i..end]);
                i = end;
                continue;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if let Some((token, marker)) = TOKENS
            .iter()
            .find(|(token, _)| bytes[i..].starts_with(token.as_bytes()))
        {
            out.extend_from_slice(marker.as_bytes());
            i += token.len();
            found = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    found.then_some(out)
}

/// The document as compact JSON text, markers written as the bare tokens.
pub fn to_string(value: &Value) -> String {
    // A serde_json::Value always serialises.
    let text = serde_json::to_string(value).unwrap_or_default();
    ascii_only(without_markers(text))
}

/// The document as indented JSON bytes, markers written as the bare tokens.
pub fn to_vec_pretty(value: &Value) -> Vec<u8> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    ascii_only(without_markers(text)).into_bytes()
}

/// `text` (serialised JSON) with every character past `~` escaped (`é` as `\u00e9`, `🎉` as
/// a surrogate pair), as Python's json writes by default: the metadata zarr-python writes,
/// byte for byte. Such characters only occur inside strings.
fn ascii_only(text: String) -> String {
    if text.bytes().all(|b| b < 0x7f) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if (c as u32) < 0x7f {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// `text` (serialised JSON) with every string that is exactly a marker written as its bare
/// token, and the markers inside strings as what they were read from. The scan follows
/// string boundaries and escapes.
fn without_markers(text: String) -> String {
    if !text.contains("\\u0000") {
        return text;
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            // A string starts here (outside strings, every quote opens one): find its end.
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(bytes.len());
            let string = &text[i..end];
            match TOKENS.iter().find(|(_, marker)| *marker == string) {
                Some((token, _)) => out.push_str(token),
                None => push_restoring(&mut out, string),
            }
            i = end;
        } else {
            // Outside strings the text is ASCII (numbers, literals, punctuation, whitespace).
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

/// Pushes `string` (a serialised JSON string) with each doubled NUL written as one and each
/// lone surrogate marker as the escape it was read from. The scan steps over escapes, so an
/// escaped backslash followed by a marker's text stays text.
fn push_restoring(out: &mut String, string: &str) {
    const NUL: &str = "\\u0000";
    const SOH: &str = "\\u0001";
    let mut rest = string;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix(NUL) {
            if let Some(after) = after.strip_prefix(NUL) {
                out.push_str(NUL);
                rest = after;
                continue;
            }
            let hex = after
                .strip_prefix(SOH)
                .and_then(|h| h.get(..4))
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
            if let Some(hex) = hex {
                out.push_str("\\u");
                out.push_str(hex);
                rest = &after[SOH.len() + 4..];
                continue;
            }
        }
        // Any other escape: its backslash and the character after it (ASCII).
        let len = rest.len().min(2);
        out.push_str(&rest[..len]);
        rest = &rest[len..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_nest_as_deep_as_pythons_json_reads() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        // Past serde_json's own limit (128), with a bare NaN (parsed twice) inside.
        let doc = format!(r#"{{"a":{},"b":NaN}}"#, nested(MAX_DEPTH - 1));
        assert!(parse(doc.as_bytes()).is_ok());
        let doc = format!(r#"{{"a":{}}}"#, nested(MAX_DEPTH));
        let err = parse(doc.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("nested more than 1000 deep"), "{err}");
        // Refused before parsing: no stack to run out of.
        assert!(parse(nested(1_000_000).as_bytes()).is_err());
        // Brackets in strings (escaped quotes too) are no nesting.
        let doc = format!(r#"{{"a":"{}\"[{{","b":[]}}"#, "[".repeat(5000));
        assert_eq!(nesting(doc.as_bytes()), 2);
        assert!(parse(doc.as_bytes()).is_ok());
    }

    #[test]
    fn strings_of_nuls_and_a_token_are_no_markers() -> Result<(), serde_json::Error> {
        // Strict documents (as Python's json writes such strings) and ones with bare tokens.
        for doc in [
            r#"{"a":"\u0000NaN","b":["\u0000\u0000-Infinity"],"c":"\u0000Infinityx"}"#,
            r#"{"a":"\u0000NaN","b":["\u0000\u0000-Infinity"],"c":"\u0000Infinityx","d":NaN}"#,
        ] {
            let value = parse(doc.as_bytes())?;
            let text = |v: &Value| text_of(v.as_str().unwrap_or_default());
            assert_eq!(text(&value["a"]).as_deref(), Some("\0NaN"));
            assert_ne!(value["a"], json!(NAN));
            assert_eq!(text(&value["b"][0]).as_deref(), Some("\0\0-Infinity"));
            assert_eq!(text(&value["c"]).as_deref(), Some("\0Infinityx"));
            assert_eq!(to_string(&value), doc);
        }
        assert_eq!(string_value("\0NaN".into()), json!("\0\0NaN"));
        assert_eq!(string_value("NaN".into()), json!("NaN"));
        assert_eq!(text_of(NAN).as_deref(), Some(NAN));
        Ok(())
    }

    #[test]
    fn strings_that_look_like_markers_are_kept() -> Result<(), serde_json::Error> {
        // A real NUL and U+0001 before four hex digits (once, twice, after a surrogate).
        let doc = r#"{"s":"\u0000\u0001abcd","t":"x\u0000\u0001004e!","u":"\u0000\u0001\u0000\u0001","v":"\u0000\udc80\u0000","w":"\u0000"}"#;
        let value = parse(doc.as_bytes())?;
        assert_eq!(to_string(&value), doc);
        let text = |k: &str| text_of(value[k].as_str().unwrap_or_default());
        assert_eq!(text("s").as_deref(), Some("\0\u{1}abcd"));
        assert_eq!(text("u").as_deref(), Some("\0\u{1}\0\u{1}"));
        assert_eq!(text("v"), None); // a lone surrogate between NULs
        assert_eq!(
            code_points(value["v"].as_str().unwrap_or_default()),
            [0, 0xdc80, 0]
        );
        assert_eq!(parse(to_string(&value).as_bytes())?, value);
        for k in ["s", "t", "u", "v", "w"] {
            let points = code_points(value[k].as_str().unwrap_or_default());
            assert_eq!(string_value_of(&points), value[k], "{k}");
        }
        Ok(())
    }

    #[test]
    fn numbers_beyond_a_double_are_infinite() {
        let doc = parse(br#"[1e400, -1e400, 0.5, 1e-400]"#).unwrap();
        let numbers: Vec<f64> = doc
            .as_array()
            .unwrap()
            .iter()
            .map(|v| number_as_f64(v.as_number().unwrap()))
            .collect();
        assert_eq!(numbers, [f64::INFINITY, f64::NEG_INFINITY, 0.5, 0.0]);
    }
    use serde_json::json;

    #[test]
    fn non_finite_numbers_round_trip() -> serde_json::Result<()> {
        let text = br#"{"a": NaN, "b": [Infinity, -Infinity, 1.5], "c": "NaN", "d": "x\"NaN"}"#;
        let value = parse(text)?;
        assert_eq!(value["a"], json!(NAN));
        assert_eq!(value["b"], json!([INFINITY, NEG_INFINITY, 1.5]));
        // Tokens inside strings are text, not numbers.
        assert_eq!(value["c"], json!("NaN"));
        assert_eq!(value["d"], json!("x\"NaN"));
        let written = to_string(&value);
        assert_eq!(
            written,
            r#"{"a":NaN,"b":[Infinity,-Infinity,1.5],"c":"NaN","d":"x\"NaN"}"#
        );
        assert_eq!(parse(written.as_bytes())?, value);
        let pretty = String::from_utf8(to_vec_pretty(&value)).unwrap_or_default();
        assert!(pretty.contains("\"a\": NaN"), "{pretty}");
        Ok(())
    }

    #[test]
    fn only_whole_marker_strings_are_written_as_tokens() {
        // A string that merely contains a marker's text (or a NUL) stays a string.
        let value = json!({"e": "\u{0}NaN and more", "f": "\"\u{0}NaN", "g": ["\\", NAN]});
        let written = to_string(&value);
        assert_eq!(
            written,
            r#"{"e":"\u0000NaN and more","f":"\"\u0000NaN","g":["\\",NaN]}"#
        );
    }

    #[test]
    fn lone_surrogates_round_trip() -> serde_json::Result<()> {
        // As Python's json writes "data\udcff.nc" (a name os.fsdecode made); a pair of
        // surrogates is one character, and an escaped backslash before "udcff" is text.
        let text = br#"{"src": "data\udcff.nc", "pair": "\ud83d\ude00", "high": "\ud800",
                        "text": "\\udcff", "both": "\udcffNaN\ud800\ud800"}"#;
        let value = parse(text)?;
        assert_eq!(value["src"], json!("data\u{0}\u{1}dcff.nc"));
        assert_eq!(value["pair"], json!("\u{1F600}"));
        assert_eq!(value["text"], json!("\\udcff"));
        let written = to_string(&value);
        assert_eq!(
            written,
            r#"{"src":"data\udcff.nc","pair":"\ud83d\ude00","high":"\ud800","text":"\\udcff","both":"\udcffNaN\ud800\ud800"}"#
        );
        assert_eq!(parse(written.as_bytes())?, value);
        Ok(())
    }

    #[test]
    fn lone_surrogates_are_code_points_of_text_values() -> serde_json::Result<()> {
        let value = parse(br#"["a\udc80b", "\ud800", "\u0000NaN", "x"]"#)?;
        let points: Vec<Vec<u32>> = (0..4)
            .map(|i| code_points(value[i].as_str().unwrap_or_default()))
            .collect();
        assert_eq!(points[0], [0x61, 0xdc80, 0x62]);
        assert_eq!(points[1], [0xd800]);
        assert_eq!(points[2], [0, 0x4e, 0x61, 0x4e]);
        for (i, p) in points.iter().enumerate() {
            assert_eq!(string_value_of(p), value[i]);
        }
        assert_eq!(to_string(&string_value_of(&[0x61, 0xdc80])), r#""a\udc80""#);
        Ok(())
    }

    #[test]
    fn a_byte_order_mark_is_skipped() -> serde_json::Result<()> {
        assert_eq!(parse(b"\xEF\xBB\xBF{\"a\": NaN}")?, json!({"a": NAN}));
        assert_eq!(parse(b"\xEF\xBB\xBF[1]")?, json!([1]));
        assert!(parse(b"\xEF\xBB\xBF\xEF\xBB\xBF[1]").is_err());
        Ok(())
    }

    #[test]
    fn minus_zero_is_a_count() -> serde_json::Result<()> {
        let doc = parse(b"[-0, 0, 3, -1, 0.0, 1e400]")?;
        let counts: Vec<Option<u64>> = (0..6).map(|i| as_count(&doc[i])).collect();
        assert_eq!(counts, [Some(0), Some(0), Some(3), None, None, None]);
        Ok(())
    }

    #[test]
    fn text_past_ascii_is_escaped_as_python_writes_it() -> serde_json::Result<()> {
        let value = parse("{\"café 🎉\": \"\u{7f}é\\udc80\"}".as_bytes())?;
        let written = to_string(&value);
        assert_eq!(
            written,
            r#"{"caf\u00e9 \ud83c\udf89":"\u007f\u00e9\udc80"}"#
        );
        assert_eq!(parse(written.as_bytes())?, value);
        Ok(())
    }

    #[test]
    fn invalid_documents_still_fail() {
        assert!(parse(b"{\"a\": Nan}").is_err());
        assert!(parse(b"{\"a\": }").is_err());
        assert!(parse(b"NaN NaN").is_err());
    }
}
