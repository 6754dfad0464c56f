//! The scanner that builds a [`Document`]: one pass over the bytes, recording spans.
//!
//! It is the project's own rather than quick-xml's reader: the same tree built on quick-xml
//! costs about twice the instructions (README, "Limits"). `parse_with_limits` stays one
//! function: split into one method per kind of markup it cost 7% more instructions.

use super::attributes::{names_are_distinct, scan_attributes};
use super::{
    name_of, AttrRecord, Document, ElementId, Node, NONE, SPARE_ATTRIBUTES, SPARE_COUNTS,
    SPARE_IDS, SPARE_NODES,
};
use crate::error::{quote, Error, Result};
use crate::limits::{xml_too_large, XmlLimits};
use crate::xml::spare;
use crate::xml::text::{self, BadReference};
use std::borrow::Cow;

impl<'a> Document<'a> {
    /// Parse `text`; any well-formedness problem is an XML error naming the line and column.
    ///
    /// The scanner is written for this job: one pass over the bytes, recording spans. It
    /// checks what makes a document well-formed for our purposes: tags nest and end tags
    /// match, one root element, no text outside it, attributes quoted and not repeated, no
    /// `<` in attribute values, no `--` inside comments, every comment, CDATA section,
    /// processing instruction, declaration and tag closed, and every reference one libxml2
    /// decodes without a DTD (`xml/text.rs`). A DOCTYPE that declares an entity is refused, so
    /// no entity is ever expanded. The limits of [`crate::limits`] apply.
    pub fn parse(text: &'a str) -> Result<Document<'a>> {
        Document::parse_with_limits(text, &XmlLimits::DEFAULT)
    }

    /// [`Document::parse`] with the given limits: a longer text is refused before it is read,
    /// deeper nesting, more elements or more attributes on one element when first met.
    pub fn parse_with_limits(text: &'a str, limits: &XmlLimits) -> Result<Document<'a>> {
        // Offsets are kept as u32 (NONE excluded), whatever limit the caller chose.
        let max_bytes = limits.max_bytes.min(NONE as usize - 1);
        if text.len() > max_bytes {
            return Err(xml_too_large(Some(text.len()), max_bytes));
        }
        let bytes = text.as_bytes();
        // The lists are sized once from upper bounds counted in one quick pass (an element
        // starts with `<` not followed by `/`, an attribute has a `=`), so they never grow and
        // copy themselves; capped at the element limit (attributes at four per element of it,
        // beyond which their list grows), so a document refused early costs little memory.
        let (most_elements, most_attributes) = count_markup(bytes);
        let most_elements = most_elements.min(limits.max_elements);
        let most_attributes = most_attributes.min(limits.max_elements.saturating_mul(4));
        let mut nodes: Vec<Node> = spare::take(&SPARE_NODES);
        nodes.reserve(most_elements);
        let mut attributes: Vec<AttrRecord> = spare::take(&SPARE_ATTRIBUTES);
        attributes.reserve(most_attributes);
        let mut expanded: Vec<String> = Vec::new();
        let mut texts: Vec<Cow<'a, str>> = Vec::new();
        let mut child_counts: Vec<u32> = spare::take(&SPARE_COUNTS);
        child_counts.reserve(most_elements);
        let mut stack: Vec<ElementId> = Vec::with_capacity(16);
        let mut root: Option<ElementId> = None;
        // A byte order mark is not content.
        let mut pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
        while pos < bytes.len() {
            // Text up to the next markup.
            let lt = find_byte(bytes, pos, b'<').unwrap_or(bytes.len());
            if lt > pos {
                let raw = &text[pos..lt];
                match stack.last() {
                    // Whitespace before an element's first text is layout, not its value.
                    Some(&id) if nodes[id].text != NONE || !raw.bytes().all(is_space) => {
                        let piece = text::decode(raw).map_err(|e| bad_reference(text, pos, e))?;
                        push_text(&mut nodes[id], &mut texts, piece);
                    }
                    Some(_) => {}
                    None if raw.bytes().all(is_space) => {}
                    None => return Err(malformed(text, pos, "text outside the root element")),
                }
                pos = lt;
                if pos == bytes.len() {
                    break;
                }
            }
            let before = pos;
            match bytes.get(pos + 1) {
                Some(b'/') => {
                    let gt = find_byte(bytes, pos, b'>')
                        .ok_or_else(|| malformed(text, before, "end tag is not closed"))?;
                    let name = text[pos + 2..gt].trim_end_matches([' ', '\t', '\r', '\n']);
                    let after = gt + 1;
                    let Some(id) = stack.pop() else {
                        return Err(malformed(
                            text,
                            before,
                            &format!("unexpected end tag </{}>", quote(name)),
                        ));
                    };
                    let open = name_of(text, &nodes[id]);
                    if open != name {
                        return Err(malformed(
                            text,
                            before,
                            &format!(
                                "expected </{}>, but </{}> was found",
                                quote(open),
                                quote(name)
                            ),
                        ));
                    }
                    nodes[id].end_tag_start = before as u32;
                    nodes[id].end = after as u32;
                    pos = after;
                }
                Some(b'!') if text[pos..].starts_with("<!--") => {
                    let body = pos + 4;
                    let close = find_str(text, body, "--")
                        .ok_or_else(|| malformed(text, before, "comment is not closed"))?;
                    if bytes.get(close + 2) != Some(&b'>') {
                        return Err(malformed(text, close, "'--' inside a comment"));
                    }
                    pos = close + 3;
                }
                Some(b'!') if text[pos..].starts_with("<![CDATA[") => {
                    let close = find_str(text, pos + 9, "]]>")
                        .ok_or_else(|| malformed(text, before, "CDATA section is not closed"))?;
                    let after = close + 3;
                    match stack.last() {
                        // The content, as it is: CDATA has no references.
                        Some(&id) => push_text(
                            &mut nodes[id],
                            &mut texts,
                            Cow::Borrowed(&text[pos + 9..close]),
                        ),
                        None => {
                            return Err(malformed(text, before, "text outside the root element"))
                        }
                    }
                    pos = after;
                }
                Some(b'!') if text[pos..].starts_with("<!DOCTYPE") && root.is_none() => {
                    pos = text::skip_doctype(text, pos).map_err(|e| bad_reference(text, 0, e))?;
                }
                Some(b'?') => {
                    let close = find_str(text, pos + 2, "?>").ok_or_else(|| {
                        malformed(text, before, "processing instruction is not closed")
                    })?;
                    pos = close + 2;
                }
                Some(&c) if c != b'!' && !is_space(c) && c != b'>' && c != b'/' => {
                    let mut name_end = pos + 1;
                    while name_end < bytes.len()
                        && !is_space(bytes[name_end])
                        && bytes[name_end] != b'/'
                        && bytes[name_end] != b'>'
                    {
                        name_end += 1;
                    }
                    let name = &text[pos + 1..name_end];
                    if stack.len() >= limits.max_depth {
                        return Err(malformed(
                            text,
                            before,
                            &format!("elements nested deeper than {}", limits.max_depth),
                        ));
                    }
                    if nodes.len() >= limits.max_elements {
                        return Err(malformed(
                            text,
                            before,
                            &format!("more than {} elements", limits.max_elements),
                        ));
                    }
                    let first_attr = attributes.len();
                    let mut reference = None;
                    let scanned = scan_attributes(
                        text,
                        name_end,
                        &mut attributes,
                        &mut expanded,
                        &mut reference,
                        limits.max_attributes,
                    );
                    if let Some((at, e)) = reference {
                        return Err(bad_reference(text, at, e));
                    }
                    let too_many =
                        scanned.is_none() && attributes.len() - first_attr >= limits.max_attributes;
                    let Some(gt) =
                        scanned.filter(|_| names_are_distinct(text, &attributes[first_attr..]))
                    else {
                        attributes.truncate(first_attr);
                        let name = quote(name);
                        let why = if too_many {
                            format!("more than {} attributes in <{name}>", limits.max_attributes)
                        } else if find_byte(bytes, pos, b'>').is_none() {
                            "start tag is not closed".to_string()
                        } else {
                            format!("malformed attributes in <{name}>")
                        };
                        return Err(malformed(text, before, &why));
                    };
                    let after = gt + 1;
                    let self_closing = bytes[gt - 1] == b'/';
                    let id = nodes.len();
                    let parent = stack.last().copied();
                    if parent.is_none() {
                        if root.is_some() {
                            return Err(malformed(text, before, "more than one root element"));
                        }
                        root = Some(id);
                    }
                    nodes.push(Node {
                        name_len: name.len() as u32,
                        attrs: (first_attr as u32, attributes.len() as u32),
                        children: (0, 0),
                        start: before as u32,
                        start_tag_end: after as u32,
                        end_tag_start: after as u32,
                        end: after as u32,
                        parent: parent.map_or(NONE, |p| p as u32),
                        text: NONE,
                        self_closing,
                    });
                    child_counts.push(0);
                    if let Some(p) = parent {
                        child_counts[p] += 1;
                    }
                    if !self_closing {
                        stack.push(id);
                    }
                    pos = after;
                }
                _ => return Err(malformed(text, before, "'<' does not start markup")),
            }
        }
        if let Some(&open) = stack.last() {
            return Err(malformed(
                text,
                text.len(),
                &format!(
                    "element <{}> is not closed",
                    quote(name_of(text, &nodes[open]))
                ),
            ));
        }
        let root = root.ok_or_else(|| Error::xml("no root element in the document"))?;
        // Lay the child lists out one after the other, each in document order.
        let mut next = 0u32;
        for (node, &count) in nodes.iter_mut().zip(&child_counts) {
            node.children = (next, next);
            next += count;
        }
        let mut child_ids: Vec<ElementId> = spare::take(&SPARE_IDS);
        child_ids.resize(next as usize, 0);
        for id in 0..nodes.len() {
            let p = nodes[id].parent;
            if p != NONE {
                let slot = &mut nodes[p as usize].children.1;
                child_ids[*slot as usize] = id;
                *slot += 1;
            }
        }
        spare::give(&SPARE_COUNTS, child_counts);
        Ok(Document {
            text,
            nodes,
            attributes,
            expanded,
            texts,
            child_ids,
            root,
            line_cursor: std::cell::Cell::new((0, 1)),
        })
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let head = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = head.matches('\n').count() + 1;
    let col = head.len() - head.rfind('\n').map_or(0, |p| p + 1) + 1;
    (line, col)
}

#[inline]
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Position of the first `needle` at or after `from`.
fn find_byte(bytes: &[u8], from: usize, needle: u8) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == needle)
        .map(|p| from + p)
}

/// Position of the first `needle` at or after `from` (`from` is at a character boundary).
fn find_str(text: &str, from: usize, needle: &str) -> Option<usize> {
    text.get(from..)?.find(needle).map(|p| from + p)
}

/// Add a piece of text content to an element's text.
fn push_text<'a>(node: &mut Node, texts: &mut Vec<Cow<'a, str>>, piece: Cow<'a, str>) {
    match texts.get_mut(node.text as usize) {
        Some(own) => own.to_mut().push_str(&piece),
        None => {
            node.text = texts.len() as u32;
            texts.push(piece);
        }
    }
}

/// The error for a reference (or a DOCTYPE) that cannot be read in the text at `base`.
fn bad_reference(text: &str, base: usize, e: BadReference) -> Error {
    malformed(text, base + e.offset, &e.why)
}

/// Upper bounds of the elements and attributes in `bytes`: the `<` not followed by `/`, and
/// the `=`. Counted 64 bytes at a time into `u8`s with branch-free compares, which the
/// compiler turns into vector instructions (a scalar loop here cost as much as the parse).
#[inline]
fn count_markup(bytes: &[u8]) -> (usize, usize) {
    const LANES: usize = 64;
    let Some((&last, _)) = bytes.split_last() else {
        return (0, 0);
    };
    // Each byte beside the one after it; the last byte has none.
    let (here, next) = (&bytes[..bytes.len() - 1], &bytes[1..]);
    let (mut starts, mut ends, mut equals) = (0usize, 0usize, 0usize);
    let mut add = |h: &[u8], n: &[u8]| {
        let (mut s, mut e, mut q) = (0u8, 0u8, 0u8);
        for (&b, &after) in h.iter().zip(n) {
            let lt = u8::from(b == b'<');
            s += lt;
            e += lt & u8::from(after == b'/');
            q += u8::from(b == b'=');
        }
        starts += usize::from(s);
        ends += usize::from(e);
        equals += usize::from(q);
    };
    let mut h = here.chunks_exact(LANES);
    let mut n = next.chunks_exact(LANES);
    for (hc, nc) in (&mut h).zip(&mut n) {
        let hc: &[u8; LANES] = hc.try_into().expect("a whole chunk");
        let nc: &[u8; LANES] = nc.try_into().expect("a whole chunk");
        add(hc, nc);
    }
    add(h.remainder(), n.remainder());
    starts += usize::from(last == b'<');
    equals += usize::from(last == b'=');
    (starts - ends, equals)
}

fn malformed(text: &str, offset: usize, why: &str) -> Error {
    let (line, col) = line_col(text, offset);
    Error::xml(format!("malformed XML at line {line}, column {col}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_spans() {
        let text = "<a x='1'>\n  <b y=\"2\"/>\n  <!-- c -->\n  <c>t&amp;</c>\n</a>";
        let doc = Document::parse(text).unwrap();
        let a = doc.element(doc.root);
        assert_eq!(a.name, "a");
        assert_eq!(a.attr("x"), Some("1"));
        assert_eq!(a.children.len(), 2);
        let b = doc.element(a.children[0]);
        assert!(b.self_closing);
        assert_eq!(&text[b.start..b.end], "<b y=\"2\"/>");
        let y = b.attribute("y").unwrap();
        assert_eq!(&text[y.start as usize..y.end as usize], "y=\"2\"");
        let c = doc.element(a.children[1]);
        assert_eq!(&text[c.start..c.end], "<c>t&amp;</c>");
        assert_eq!(c.text, "t&");
        assert_eq!(doc.indent_before(c.start), Some("  "));
        assert_eq!(&text[a.end_tag_start..a.end], "</a>");
    }

    #[test]
    fn attribute_values_are_unescaped_and_spans_kept() {
        let text = "<a x='a&amp;b' y=\"c\"/>";
        let doc = Document::parse(text).unwrap();
        let a = doc.element(doc.root);
        assert_eq!(a.attr("x"), Some("a&b"));
        assert_eq!(doc.attr(doc.root, "y"), Some("c"));
        assert_eq!(a.attr("z"), None);
        assert_eq!(a.attrs.len(), 2);
        let names: Vec<&str> = a.attrs.iter().map(|at| at.name).collect();
        assert_eq!(names, ["x", "y"]);
        let x = a.attribute("x").unwrap();
        assert_eq!(
            &text[x.value_start as usize..x.value_end as usize],
            "a&amp;b"
        );
        assert_eq!(a.attrs.last().unwrap().name, "y");
    }

    #[test]
    fn text_is_decoded_cdata_kept_and_comments_dropped() {
        let text =
            "<a>\n  <b>x&amp;y<![CDATA[&amp;<]]>&#x7A;</b><c> </c><d> <!-- -->q <!-- --> r</d></a>";
        let doc = Document::parse(text).unwrap();
        let kids = doc.children(doc.root).to_vec();
        assert_eq!(doc.element(kids[0]).text, "x&y&amp;<z");
        assert_eq!(doc.element(kids[1]).text, "");
        assert_eq!(doc.element(kids[2]).text, "q  r");
        assert_eq!(doc.element(doc.root).text, "");
    }

    #[test]
    fn bad_references_and_entity_declarations_are_placed() {
        let err = Document::parse("<a>\n <b x='1&y;'/></a>").unwrap_err();
        assert_eq!(
            err.message,
            "XML error: malformed XML at line 2, column 9: Entity 'y' not defined"
        );
        let err = Document::parse("<a>ok\n&#1;</a>").unwrap_err();
        assert!(
            err.message.contains("line 2, column 1: xmlParseCharRef"),
            "{}",
            err.message
        );
        // A quote in a comment of the internal subset hides no declaration.
        let err = Document::parse("<!DOCTYPE a [<!-- ' --><!ENTITY e 'v'> ' ]><a/>").unwrap_err();
        assert!(
            err.message.contains("<!ENTITY declarations"),
            "{}",
            err.message
        );
        assert!(Document::parse("<!DOCTYPE a [<!ELEMENT a EMPTY> <!-- ' -->]><a/>").is_ok());
        assert!(Document::parse("<!DOCTYPE a SYSTEM 'x>y'><a/>").is_ok());
    }

    #[test]
    fn markup_counts_bound_elements_and_attributes() {
        // 3 elements (a, b, c), the comment's `<` and 3 attributes; end tags are not counted,
        // also when `</` spans the 64-byte chunks the counter works in.
        let text = "<a x='1'><b y='2' z='3'/><!-- --><c></c></a>";
        assert_eq!(count_markup(text.as_bytes()), (4, 3));
        for pad in 0..200 {
            let text = format!("<a>{}<b></b></a>", " ".repeat(pad));
            let (elements, _) = count_markup(text.as_bytes());
            assert_eq!(elements, 2, "padding {pad}");
            assert_eq!(Document::parse(&text).unwrap().len(), 2);
        }
        assert_eq!(count_markup(b"<"), (1, 0));
        assert_eq!(count_markup(b""), (0, 0));
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            "",
            "<a>",
            "<a></b>",
            "<a x='1' x='2'/>",
            "<a x=1/>",
            "<a/><b/>",
            "text",
            "<a><!-- -- --></a>",
        ] {
            let err = Document::parse(bad).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::XmlError, "{bad:?}");
        }
    }
}
