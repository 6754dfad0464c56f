//! Splicing edits into the original text of a [`Document`]: new attributes, new child
//! elements, replaced start tags and new sibling elements, each indented like its
//! neighbours. Every byte no edit touches is copied unchanged.

use super::dom::{Document, ElementId};
use std::collections::BTreeMap;

struct Splice {
    start: usize,
    end: usize,
    text: String,
    seq: usize,
}

/// Collects edits against one document and applies them in one pass.
pub struct Editor<'d, 'a> {
    doc: &'d Document<'a>,
    splices: Vec<Splice>,
    /// New last children per element; flushed together so a self-closing element is opened
    /// only once.
    appended: BTreeMap<ElementId, Vec<String>>,
    /// One level of indentation as the document uses it.
    pub unit: String,
}

/// Escape an attribute value for single quotes.
pub fn escape_attr(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
}

impl<'d, 'a> Editor<'d, 'a> {
    pub fn new(doc: &'d Document<'a>) -> Editor<'d, 'a> {
        let unit = detect_unit(doc);
        Editor {
            doc,
            splices: Vec::new(),
            appended: BTreeMap::new(),
            unit,
        }
    }

    fn splice(&mut self, start: usize, end: usize, text: String) {
        let seq = self.splices.len();
        self.splices.push(Splice {
            start,
            end,
            text,
            seq,
        });
    }

    /// The indentation of element `id`, when it starts its own line.
    pub fn indent_of(&self, id: ElementId) -> Option<&'a str> {
        self.doc.indent_before(self.doc.element(id).start)
    }

    /// The indentation children of `id` have or would have.
    pub fn child_indent(&self, id: ElementId) -> Option<String> {
        let el = self.doc.element(id);
        if let Some(&first) = el.children.first() {
            if let Some(indent) = self.indent_of(first) {
                return Some(indent.to_string());
            }
        }
        self.indent_of(id).map(|i| format!("{i}{}", self.unit))
    }

    /// Set attribute `name` of `id` to `value`, replacing the value if it exists.
    pub fn set_attr(&mut self, id: ElementId, name: &str, value: &str) {
        let el = self.doc.element(id);
        let escaped = escape_attr(value);
        if let Some(attr) = el.attribute(name) {
            let (start, end) = (attr.value_start, attr.value_end);
            self.splice(start, end, escaped);
        } else {
            let at = el
                .attrs
                .last()
                .map_or(el.start + 1 + el.name.len(), |a| a.end);
            self.splice(at, at, format!(" {name}='{escaped}'"));
        }
    }

    /// Insert attribute `name` right after attribute `after` (or after the last one).
    pub fn insert_attr_after(&mut self, id: ElementId, after: &str, name: &str, value: &str) {
        let el = self.doc.element(id);
        let at = el
            .attribute(after)
            .or(el.attrs.last())
            .map_or(el.start + 1 + el.name.len(), |a| a.end);
        self.splice(at, at, format!(" {name}='{}'", escape_attr(value)));
    }

    /// Replace the start tag of `id` by `<name attrs>` (or `<name attrs/>` when it is empty).
    /// `tag_body` is the tag without `<` and the closing `>` or `/>`.
    pub fn replace_start_tag(&mut self, id: ElementId, tag_body: &str) {
        let el = self.doc.element(id);
        let close = if el.self_closing { "/>" } else { ">" };
        let (start, end) = (el.start, el.start_tag_end);
        self.splice(start, end, format!("<{tag_body}{close}"));
    }

    /// Add `element` (one line, or several lines already indented for the child level after
    /// the first) as the last child of `id`.
    pub fn append_child(&mut self, id: ElementId, element: String) {
        self.appended.entry(id).or_default().push(element);
    }

    /// Add `element` as a child of `parent` right before its child `before`.
    pub fn insert_child_before(&mut self, before: ElementId, element: String) {
        let at = self.doc.element(before).start;
        let text = match self.indent_of(before) {
            Some(indent) => format!("{element}\n{indent}"),
            None => element,
        };
        self.splice(at, at, text);
    }

    /// Add `element` as the next sibling of `id`.
    pub fn insert_after(&mut self, id: ElementId, element: String) {
        let at = self.doc.element(id).end;
        let text = match self.indent_of(id) {
            Some(indent) => format!("\n{indent}{element}"),
            None => element,
        };
        self.splice(at, at, text);
    }

    /// Add `element` as the previous sibling of `id`.
    pub fn insert_before(&mut self, id: ElementId, element: String) {
        let at = self.doc.element(id).start;
        let text = match self.indent_of(id) {
            Some(indent) => format!("{element}\n{indent}"),
            None => element,
        };
        self.splice(at, at, text);
    }

    fn flush_appended(&mut self) {
        let appended = std::mem::take(&mut self.appended);
        for (id, children) in appended {
            let el = self.doc.element(id);
            let own_indent = self.indent_of(id);
            let child_indent = self.child_indent(id);
            let text = self.doc.text;
            if el.self_closing {
                // Open the element: `<x a='1'/>` becomes `<x a='1'>...</x>`.
                let slash = el.start_tag_end.saturating_sub(2);
                let head = &text[el.start..slash];
                let trimmed = head.trim_end_matches([' ', '\t', '\r', '\n']);
                let cut = el.start + trimmed.len();
                let mut out = String::from(">");
                match (&own_indent, &child_indent) {
                    (Some(indent), Some(ci)) => {
                        for child in &children {
                            out.push('\n');
                            out.push_str(ci);
                            out.push_str(child);
                        }
                        out.push('\n');
                        out.push_str(indent);
                    }
                    _ => children.iter().for_each(|c| out.push_str(c)),
                }
                out.push_str(&format!("</{}>", el.name));
                self.splice(cut, el.start_tag_end, out);
                continue;
            }
            let content = &text[el.start_tag_end..el.end_tag_start];
            let multiline = content.contains('\n');
            match (&child_indent, multiline, el.children.last()) {
                (Some(ci), true, Some(&last)) => {
                    let at = self.doc.element(last).end;
                    let mut out = String::new();
                    for child in &children {
                        out.push('\n');
                        out.push_str(ci);
                        out.push_str(child);
                    }
                    self.splice(at, at, out);
                }
                (Some(ci), true, None) => {
                    let at = el.start_tag_end;
                    let mut out = String::new();
                    for child in &children {
                        out.push('\n');
                        out.push_str(ci);
                        out.push_str(child);
                    }
                    self.splice(at, at, out);
                }
                (Some(ci), false, None) if content.is_empty() && own_indent.is_some() => {
                    let mut out = String::new();
                    for child in &children {
                        out.push('\n');
                        out.push_str(ci);
                        out.push_str(child);
                    }
                    out.push('\n');
                    out.push_str(own_indent.unwrap_or_default());
                    self.splice(el.start_tag_end, el.start_tag_end, out);
                }
                _ => {
                    let at = el.end_tag_start;
                    self.splice(at, at, children.concat());
                }
            }
        }
    }

    /// Apply every edit and return the new text.
    pub fn finish(mut self) -> String {
        self.flush_appended();
        let text = self.doc.text;
        let mut splices = self.splices;
        splices.sort_by_key(|s| (s.start, s.seq));
        let mut out =
            String::with_capacity(text.len() + splices.iter().map(|s| s.text.len()).sum::<usize>());
        let mut pos = 0;
        for s in splices {
            if s.start < pos {
                // Overlapping edits cannot happen by construction; keep the text intact if
                // they ever do.
                continue;
            }
            out.push_str(&text[pos..s.start]);
            out.push_str(&s.text);
            pos = s.end;
        }
        out.push_str(&text[pos..]);
        out
    }
}

/// One indentation level: the difference between the `<devices>` children and `<devices>`,
/// or two spaces.
fn detect_unit(doc: &Document<'_>) -> String {
    let root = doc.element(doc.root);
    for &child in &root.children {
        let el = doc.element(child);
        if let (Some(outer), Some(&first)) = (doc.indent_before(el.start), el.children.first()) {
            if let Some(inner) = doc.indent_before(doc.element(first).start) {
                if let Some(unit) = inner.strip_prefix(outer) {
                    if !unit.is_empty() {
                        return unit.to_string();
                    }
                }
            }
        }
    }
    "  ".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_children_with_neighbour_indentation() {
        let text = "<a>\n  <b x='1'/>\n  <c>\n    <d/>\n  </c>\n</a>\n";
        let doc = Document::parse(text).unwrap();
        let a = doc.root;
        let b = doc.element(a).children[0];
        let c = doc.element(a).children[1];
        let mut ed = Editor::new(&doc);
        ed.append_child(b, "<e/>".into());
        ed.append_child(b, "<f/>".into());
        ed.append_child(c, "<g/>".into());
        ed.set_attr(b, "y", "2");
        ed.insert_after(c, "<h/>".into());
        let out = ed.finish();
        assert_eq!(
            out,
            "<a>\n  <b x='1' y='2'>\n    <e/>\n    <f/>\n  </b>\n  <c>\n    <d/>\n    <g/>\n  </c>\n  <h/>\n</a>\n"
        );
    }

    #[test]
    fn compact_elements_stay_compact() {
        let text = "<a><b/><c><d/></c></a>";
        let doc = Document::parse(text).unwrap();
        let b = doc.element(doc.root).children[0];
        let c = doc.element(doc.root).children[1];
        let mut ed = Editor::new(&doc);
        ed.append_child(b, "<e/>".into());
        ed.append_child(c, "<f/>".into());
        assert_eq!(ed.finish(), "<a><b><e/></b><c><d/><f/></c></a>");
    }
}
