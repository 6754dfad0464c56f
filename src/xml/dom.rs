//! A small element tree that remembers where every element and attribute sits in the input
//! text, so that edits can be spliced into the original bytes and everything else survives.

use crate::error::{Error, Result};
use crate::limits::{xml_too_large, XmlLimits};
use quick_xml::events::Event;
use quick_xml::Reader;

/// Index of an element in [`Document::elements`].
pub type ElementId = usize;

/// One attribute: its name, unescaped value, and the byte span of `name='value'`.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    pub value: String,
    /// Byte offset of the name.
    pub start: usize,
    /// Byte offset just after the closing quote.
    pub end: usize,
    /// Byte span of the raw value between the quotes.
    pub value_start: usize,
    pub value_end: usize,
}

/// One element with the byte spans of its tags.
#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<Attribute>,
    /// Offset of the `<` of the start tag.
    pub start: usize,
    /// Offset just after the `>` of the start tag.
    pub start_tag_end: usize,
    /// Offset of the `<` of the end tag (equal to `end` for an empty element).
    pub end_tag_start: usize,
    /// Offset just after the element.
    pub end: usize,
    pub self_closing: bool,
    pub children: Vec<ElementId>,
    pub parent: Option<ElementId>,
    /// Direct text content, raw (entities not expanded), concatenated.
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// A parsed XML document that borrows its text.
#[derive(Debug)]
pub struct Document<'a> {
    pub text: &'a str,
    pub elements: Vec<Element>,
    pub root: ElementId,
}

impl<'a> Document<'a> {
    /// Parse `text`; any well-formedness problem is an XML error naming the line and column.
    /// The limits of [`crate::limits`] apply.
    pub fn parse(text: &'a str) -> Result<Document<'a>> {
        Document::parse_with_limits(text, &XmlLimits::DEFAULT)
    }

    /// [`Document::parse`] with the given limits: a longer text is refused before it is read,
    /// deeper nesting, more elements or more attributes on one element when first seen.
    pub fn parse_with_limits(text: &'a str, limits: &XmlLimits) -> Result<Document<'a>> {
        if text.len() > limits.max_bytes {
            return Err(xml_too_large(Some(text.len()), limits.max_bytes));
        }
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = false;
        config.check_comments = true;

        let mut elements: Vec<Element> = Vec::new();
        let mut stack: Vec<ElementId> = Vec::new();
        let mut root: Option<ElementId> = None;
        loop {
            let before = reader.buffer_position() as usize;
            let event = reader
                .read_event()
                .map_err(|e| malformed(text, reader.error_position() as usize, &e.to_string()))?;
            let after = reader.buffer_position() as usize;
            match event {
                Event::Start(ref start) | Event::Empty(ref start) => {
                    let self_closing = matches!(event, Event::Empty(_));
                    if stack.len() >= limits.max_depth {
                        return Err(malformed(
                            text,
                            before,
                            &format!("elements nested deeper than {}", limits.max_depth),
                        ));
                    }
                    if elements.len() >= limits.max_elements {
                        return Err(malformed(
                            text,
                            before,
                            &format!("more than {} elements", limits.max_elements),
                        ));
                    }
                    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                    let raw = text.get(before..after).unwrap_or_default();
                    let attrs = scan_attributes(raw, before, limits.max_attributes)
                        .map_err(|why| malformed(text, before, &why.describe(&name, limits)))?;
                    let id = elements.len();
                    let parent = stack.last().copied();
                    if parent.is_none() {
                        if root.is_some() {
                            return Err(malformed(text, before, "more than one root element"));
                        }
                        root = Some(id);
                    }
                    elements.push(Element {
                        name,
                        attrs,
                        start: before,
                        start_tag_end: after,
                        end_tag_start: after,
                        end: after,
                        self_closing,
                        children: Vec::new(),
                        parent,
                        text: String::new(),
                    });
                    if let Some(p) = parent {
                        elements[p].children.push(id);
                    }
                    if !self_closing {
                        stack.push(id);
                    }
                }
                Event::End(_) => {
                    let id = stack
                        .pop()
                        .ok_or_else(|| malformed(text, before, "unexpected end tag"))?;
                    elements[id].end_tag_start = before;
                    elements[id].end = after;
                }
                Event::Text(_) | Event::GeneralRef(_) | Event::CData(_) => {
                    let raw = text.get(before..after).unwrap_or_default();
                    match stack.last() {
                        // Only content matters to readers; indentation is not kept here
                        // (the writer works on the original text).
                        Some(&id) if !raw.trim().is_empty() => elements[id].text.push_str(raw),
                        Some(_) => {}
                        None if raw.trim().is_empty() => {}
                        None => {
                            return Err(malformed(text, before, "text outside the root element"))
                        }
                    }
                }
                Event::Eof => break,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if let Some(&open) = stack.last() {
            return Err(malformed(
                text,
                text.len(),
                &format!("element <{}> is not closed", elements[open].name),
            ));
        }
        let root = root.ok_or_else(|| Error::xml("no root element in the document"))?;
        Ok(Document {
            text,
            elements,
            root,
        })
    }

    pub fn element(&self, id: ElementId) -> &Element {
        &self.elements[id]
    }

    /// The child elements of `id` named `name`, in document order.
    pub fn children_named<'s>(
        &'s self,
        id: ElementId,
        name: &'s str,
    ) -> impl Iterator<Item = ElementId> + 's {
        self.elements[id]
            .children
            .iter()
            .copied()
            .filter(move |&c| self.elements[c].name == name)
    }

    pub fn child(&self, id: ElementId, name: &str) -> Option<ElementId> {
        self.children_named(id, name).next()
    }

    /// 1-based line of a byte offset, for messages.
    pub fn line_of(&self, offset: usize) -> usize {
        line_col(self.text, offset).0
    }

    /// The whitespace that starts the line of `offset`, when only whitespace precedes
    /// `offset` on its line; `None` when other text does.
    pub fn indent_before(&self, offset: usize) -> Option<&'a str> {
        let text: &'a str = self.text;
        let head = text.get(..offset)?;
        let line_start = head.rfind('\n').map_or(0, |p| p + 1);
        let prefix = &head[line_start..];
        prefix
            .chars()
            .all(|c| c == ' ' || c == '\t')
            .then_some(prefix)
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let head = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = head.matches('\n').count() + 1;
    let col = head.len() - head.rfind('\n').map_or(0, |p| p + 1) + 1;
    (line, col)
}

fn malformed(text: &str, offset: usize, why: &str) -> Error {
    let (line, col) = line_col(text, offset);
    Error::xml(format!("malformed XML at line {line}, column {col}: {why}"))
}

/// Why [`scan_attributes`] refused a tag.
enum BadAttributes {
    Malformed,
    TooMany,
}

impl BadAttributes {
    fn describe(&self, element: &str, limits: &XmlLimits) -> String {
        match self {
            BadAttributes::Malformed => format!("malformed attributes in <{element}>"),
            BadAttributes::TooMany => format!(
                "more than {} attributes in <{element}>",
                limits.max_attributes
            ),
        }
    }
}

/// Find the attributes of a start tag (`raw` is the whole tag, `base` its offset in the
/// document), at most `max` of them. quick-xml has already checked the tag; this only records
/// spans.
fn scan_attributes(
    raw: &str,
    base: usize,
    max: usize,
) -> std::result::Result<Vec<Attribute>, BadAttributes> {
    if attribute_count_exceeds(raw, max) {
        return Err(BadAttributes::TooMany);
    }
    scan_attribute_spans(raw, base).ok_or(BadAttributes::Malformed)
}

/// More than `max` `=` signs outside quotes: more than `max` attributes. Counted first, so
/// that the duplicate check below (quadratic in the count) stays bounded.
fn attribute_count_exceeds(raw: &str, max: usize) -> bool {
    let mut quote = None;
    let mut count = 0;
    for b in raw.bytes() {
        match (quote, b) {
            (None, b'\'' | b'"') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'=') => {
                count += 1;
                if count > max {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

fn scan_attribute_spans(raw: &str, base: usize) -> Option<Vec<Attribute>> {
    let bytes = raw.as_bytes();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut i = 1; // after '<'
    while i < bytes.len() && !is_space(bytes[i]) && bytes[i] != b'/' && bytes[i] != b'>' {
        i += 1;
    }
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'/' || bytes[i] == b'>' {
            return without_duplicates(attrs);
        }
        let name_start = i;
        while i < bytes.len() && !is_space(bytes[i]) && bytes[i] != b'=' {
            i += 1;
        }
        let name = raw.get(name_start..i)?.to_string();
        if name.is_empty() {
            return None;
        }
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        let quote = *bytes.get(i)?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let value_start = i + 1;
        let value_len = raw.get(value_start..)?.find(quote as char)?;
        let value_end = value_start + value_len;
        let raw_value = raw.get(value_start..value_end)?;
        if raw_value.contains('<') {
            return None;
        }
        let value = if raw_value.contains('&') {
            quick_xml::escape::unescape(raw_value).ok()?.into_owned()
        } else {
            raw_value.to_string()
        };
        i = value_end + 1;
        if i < bytes.len() && !is_space(bytes[i]) && bytes[i] != b'/' && bytes[i] != b'>' {
            return None;
        }
        attrs.push(Attribute {
            name,
            value,
            start: base + name_start,
            end: base + i,
            value_start: base + value_start,
            value_end: base + value_end,
        });
    }
}

/// `attrs`, or `None` when two have the same name; sorting keeps this O(n log n).
fn without_duplicates(attrs: Vec<Attribute>) -> Option<Vec<Attribute>> {
    let mut names: Vec<&str> = attrs.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    Some(attrs)
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
        assert_eq!(&text[y.start..y.end], "y=\"2\"");
        let c = doc.element(a.children[1]);
        assert_eq!(&text[c.start..c.end], "<c>t&amp;</c>");
        assert_eq!(c.text, "t&amp;");
        assert_eq!(doc.indent_before(c.start), Some("  "));
        assert_eq!(&text[a.end_tag_start..a.end], "</a>");
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
