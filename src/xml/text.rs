//! Character and entity references in text and attribute values, decoded as libvirt's parser
//! (libxml2, without a DTD) decodes them.
//!
//! The five predefined entities (`&lt;` `&gt;` `&amp;` `&apos;` `&quot;`) and character
//! references (`&#38;`, `&#x26;`) naming an XML character are decoded; anything else after
//! a `&` is an error, as libxml2 makes it one: an undefined entity, a reference without `;`,
//! a character reference to U+0000, a C0 control other than tab, LF and CR, a surrogate,
//! U+FFFE, U+FFFF or a number beyond U+10FFFF. Declared entities do not exist here: a DOCTYPE
//! that declares one is refused ([`skip_doctype`]), so no entity is ever expanded.

use crate::error::quote;
use std::borrow::Cow;

/// A reference that cannot be decoded: where it starts in the raw text, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadReference {
    pub(crate) offset: usize,
    pub(crate) why: String,
}

/// `raw` with its references decoded; borrowed when it has none.
pub(crate) fn decode(raw: &str) -> Result<Cow<'_, str>, BadReference> {
    let Some(first) = raw.find('&') else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..first]);
    let mut rest = first;
    while let Some(amp) = raw[rest..].find('&').map(|p| rest + p) {
        out.push_str(&raw[rest..amp]);
        let (c, after) = reference_at(raw, amp)?;
        out.push(c);
        rest = after;
    }
    out.push_str(&raw[rest..]);
    Ok(Cow::Owned(out))
}

/// The character of the reference at `amp` (a `&`) and the offset after its `;`.
fn reference_at(raw: &str, amp: usize) -> Result<(char, usize), BadReference> {
    let bad = |why: String| BadReference { offset: amp, why };
    let body = &raw[amp + 1..];
    let end = body.bytes().take_while(|&b| is_name_byte(b)).count();
    if end == 0 {
        return Err(bad("xmlParseEntityRef: no name".to_string()));
    }
    if body.as_bytes().get(end) != Some(&b';') {
        return Err(bad(format!(
            "EntityRef '{}': expecting ';'",
            quote(&body[..end])
        )));
    }
    let name = &body[..end];
    let after = amp + 1 + end + 1;
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => match name.strip_prefix('#') {
            Some(number) => char_reference(number).ok_or_else(|| {
                bad(format!(
                    "xmlParseCharRef: invalid xmlChar value in '&{};'",
                    quote(name)
                ))
            })?,
            None => return Err(bad(format!("Entity '{}' not defined", quote(name)))),
        },
    };
    Ok((c, after))
}

/// The position after the DOCTYPE at `pos` in `text`, past its internal subset in brackets.
/// A subset that declares an entity is refused: libvirt's libxml2 keeps the declaration and
/// XPath reads its replacement text where it is used (a billion-laughs bomb among them);
/// virtpci never expands one. The error's offset is in `text`.
pub(crate) fn skip_doctype(text: &str, pos: usize) -> Result<usize, BadReference> {
    let bad = |offset: usize, why: &str| BadReference {
        offset,
        why: why.to_string(),
    };
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut quote_byte: Option<u8> = None;
    let mut i = pos + "<!DOCTYPE".len();
    loop {
        match (bytes.get(i), quote_byte) {
            (None, _) => return Err(bad(pos, "DOCTYPE is not closed")),
            (Some(&b), Some(q)) if b == q => quote_byte = None,
            (Some(_), Some(_)) => {}
            (Some(&b), None) if b == b'\'' || b == b'"' => quote_byte = Some(b),
            (Some(b'['), None) => depth += 1,
            (Some(b']'), None) => depth = depth.saturating_sub(1),
            (Some(b'>'), None) if depth == 0 => return Ok(i + 1),
            (Some(b'<'), None) if depth > 0 && text[i..].starts_with("<!--") => {
                // A comment's quotes quote nothing.
                let close = text[i + 4..]
                    .find("-->")
                    .ok_or_else(|| bad(i, "comment is not closed"))?;
                i += 4 + close + 2;
            }
            (Some(b'<'), None) if depth > 0 && text[i..].starts_with("<!ENTITY") => {
                return Err(bad(
                    i,
                    "<!ENTITY declarations are not accepted (virtpci never expands entities)",
                ))
            }
            (Some(_), None) => {}
        }
        i += 1;
    }
}

/// A byte of an entity name or a character reference's number (names are checked no
/// further: only the predefined ones are known, anything else is refused).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'#' | b'_' | b'-' | b'.' | b':') || b >= 0x80
}

/// The character `&#NUMBER;` names, when it is one XML allows.
fn char_reference(number: &str) -> Option<char> {
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let code = u32::from_str_radix(digits, radix).ok()?;
    let c = char::from_u32(code)?;
    is_xml_char(c).then_some(c)
}

/// XML 1.0's `Char`: tab, LF, CR, U+0020..U+D7FF, U+E000..U+FFFD, U+10000..U+10FFFF
/// (`char` already excludes surrogates and values beyond U+10FFFF).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_predefined_entities_and_character_references() {
        assert!(matches!(decode("plain"), Ok(Cow::Borrowed("plain"))));
        let cases = [
            ("a&amp;b", "a&b"),
            ("&lt;&gt;&apos;&quot;", "<>'\""),
            ("&#38;&#x26;&#x00026;", "&&&"),
            ("&amp;lt;", "&lt;"),
            ("&#x10FFFF;&#9;", "\u{10FFFF}\t"),
            ("é&#233;", "éé"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn refuses_what_libxml2_refuses() {
        for (raw, at, why) in [
            ("a&x;", 1, "Entity 'x' not defined"),
            ("&", 0, "no name"),
            ("a & b", 2, "no name"),
            ("&;", 0, "no name"),
            ("&a b;", 0, "expecting ';'"),
            ("&amp", 0, "expecting ';'"),
            ("ok&#0;", 2, "invalid xmlChar"),
            ("&#x1F;", 0, "invalid xmlChar"),
            ("&#xD800;", 0, "invalid xmlChar"),
            ("&#xFFFF;", 0, "invalid xmlChar"),
            ("&#x110000;", 0, "invalid xmlChar"),
            ("&#-1;", 0, "invalid xmlChar"),
            ("&#X26;", 0, "invalid xmlChar"),
            ("&#xg;", 0, "invalid xmlChar"),
            ("&AMP;", 0, "not defined"),
        ] {
            let err = decode(raw).unwrap_err();
            assert_eq!(err.offset, at, "{raw}");
            assert!(err.why.contains(why), "{raw}: {}", err.why);
        }
    }

    #[test]
    fn a_long_reference_is_quoted_short() {
        let name = "n".repeat(1 << 20);
        let err = decode(&format!("&{name};")).unwrap_err();
        assert!(err.why.len() < 200, "{}", err.why.len());
        let err = decode(&format!("&#{name};")).unwrap_err();
        assert!(err.why.len() < 200, "{}", err.why.len());
    }
}
