//! The attributes of a start tag: read in one pass into the document's attribute table,
//! values with references decoded once.

use super::scan::is_space;
use super::{AttrRecord, NONE};
use crate::xml::text::{self, BadReference};

/// Read the attributes of a start tag from `from` (just after its name) into `attrs` and
/// return the position of the `>` that ends the tag; `None` when the tag is malformed, not
/// closed, or has more than `max` attributes (then `max` of them were read, so the caller can
/// tell), or a value has a reference that cannot be decoded (then it is in `reference`, with
/// the value's offset). Duplicate names are the caller's to find, with `names_are_distinct`.
#[inline]
pub(super) fn scan_attributes(
    text: &str,
    from: usize,
    attrs: &mut Vec<AttrRecord>,
    expanded: &mut Vec<String>,
    reference: &mut Option<(usize, BadReference)>,
    max: usize,
) -> Option<usize> {
    let bytes = text.as_bytes();
    let first = attrs.len();
    let mut i = from;
    loop {
        while is_space(*bytes.get(i)?) {
            i += 1;
        }
        match bytes[i] {
            b'>' => return Some(i),
            b'/' => return (*bytes.get(i + 1)? == b'>').then_some(i + 1),
            _ => {}
        }
        let name_start = i;
        while !matches!(
            *bytes.get(i)?,
            b' ' | b'\t' | b'\r' | b'\n' | b'=' | b'>' | b'/'
        ) {
            i += 1;
        }
        if i == name_start {
            return None;
        }
        let name = &text[name_start..i];
        while is_space(*bytes.get(i)?) {
            i += 1;
        }
        if bytes[i] != b'=' {
            return None;
        }
        i += 1;
        while is_space(*bytes.get(i)?) {
            i += 1;
        }
        let quote = bytes[i];
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let value_start = i + 1;
        let mut value_end = value_start;
        let mut has_entity = false;
        loop {
            match *bytes.get(value_end)? {
                b if b == quote => break,
                b'<' => return None,
                b'&' => has_entity = true,
                _ => {}
            }
            value_end += 1;
        }
        let raw_value = &text[value_start..value_end];
        if attrs.len() - first >= max {
            return None;
        }
        let value = if has_entity {
            match text::decode(raw_value) {
                Ok(value) => expanded.push(value.into_owned()),
                Err(e) => {
                    *reference = Some((value_start, e));
                    return None;
                }
            }
            (expanded.len() - 1) as u32
        } else {
            NONE
        };
        i = value_end + 1;
        if !matches!(*bytes.get(i)?, b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/') {
            return None;
        }
        attrs.push(AttrRecord {
            start: name_start as u32,
            name_end: (name_start + name.len()) as u32,
            value_start: value_start as u32,
            value_end: value_end as u32,
            end: i as u32,
            expanded: value,
        });
    }
}

/// Whether no two attributes of a tag share a name: pairwise for the usual handful, sorted
/// for more, so a tag at the attribute limit costs n log n comparisons rather than n².
#[inline]
pub(super) fn names_are_distinct(text: &str, attrs: &[AttrRecord]) -> bool {
    if attrs.len() <= 16 {
        return attrs
            .iter()
            .enumerate()
            .all(|(i, a)| attrs[..i].iter().all(|b| b.name(text) != a.name(text)));
    }
    let mut names: Vec<&str> = attrs.iter().map(|a| a.name(text)).collect();
    names.sort_unstable();
    names.windows(2).all(|pair| pair[0] != pair[1])
}

#[cfg(test)]
mod tests {
    use crate::xml::Document;

    #[test]
    fn a_repeated_attribute_name_is_found_among_few_and_many() {
        let max = crate::limits::MAX_XML_ATTRIBUTES;
        for count in [2, 16, 17, 40, max] {
            for (first, second) in [(0, count - 1), (count - 2, count - 1), (0, 1)] {
                let names: Vec<String> = (0..count)
                    .map(|i| format!("n{}", if i == second { first } else { i }))
                    .collect();
                let attrs: String = names.iter().map(|n| format!(" {n}='v'")).collect();
                let err = Document::parse(&format!("<a{attrs}/>")).unwrap_err();
                assert!(
                    err.message.ends_with("malformed attributes in <a>"),
                    "{count} attributes, {first} and {second} alike: {}",
                    err.message
                );
            }
            let attrs: String = (0..count).map(|i| format!(" n{i}='v'")).collect();
            assert!(Document::parse(&format!("<a{attrs}/>")).is_ok(), "{count}");
        }
    }
}
