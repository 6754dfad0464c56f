//! Splicing edits into the original text of a [`Document`]: new attributes, new child
//! elements, replaced start tags and new sibling elements, each indented like its
//! neighbours. Every byte no edit touches is copied unchanged.

use super::dom::{Document, ElementId};
use super::spare;
use std::borrow::Cow;
use std::cell::RefCell;

/// New last children, as (element, text range in the children's arena).
type Appended = Vec<(ElementId, (usize, usize))>;

struct Splice {
    start: usize,
    end: usize,
    /// The replacement text, a range of [`Editor::arena`].
    text: (usize, usize),
}

/// Collects edits against one document and applies them in one pass. Replacement texts are
/// written into one buffer, so an edit costs no allocation of its own.
pub(crate) struct Editor<'d, 'a> {
    doc: &'d Document<'a>,
    splices: Vec<Splice>,
    arena: String,
    /// The texts of new last children, kept apart until they are spliced in.
    children_arena: String,
    /// New last children per element, as (element, text range), in the order added; flushed
    /// together so a self-closing element is opened only once.
    appended: Appended,
    /// One level of indentation as the document uses it.
    pub(crate) unit: String,
}

/// Escape an attribute value for single quotes.
pub(crate) fn escape_attr(value: &str) -> Cow<'_, str> {
    if !value.contains(['&', '<', '\'']) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('\'', "&apos;"),
    )
}

impl<'d, 'a> Editor<'d, 'a> {
    pub(crate) fn new(doc: &'d Document<'a>) -> Editor<'d, 'a> {
        let unit = detect_unit(doc);
        Editor {
            doc,
            splices: spare::take(&SPARE_SPLICES),
            arena: spare::take(&SPARE_ARENA),
            children_arena: spare::take(&SPARE_CHILDREN_ARENA),
            appended: spare::take(&SPARE_APPENDED),
            unit,
        }
    }

    /// Write a replacement text with `write` and splice it over `start..end`.
    fn splice_with(&mut self, start: usize, end: usize, write: impl FnOnce(&mut String)) {
        let from = self.arena.len();
        write(&mut self.arena);
        self.splices.push(Splice {
            start,
            end,
            text: (from, self.arena.len()),
        });
    }

    /// The indentation of element `id`, when it starts its own line.
    pub(crate) fn indent_of(&self, id: ElementId) -> Option<&'a str> {
        self.doc.indent_before(self.doc.element(id).start)
    }

    /// The indentation children of `id` have or would have.
    pub(crate) fn child_indent(&self, id: ElementId) -> Option<Cow<'a, str>> {
        if let Some(&first) = self.doc.children(id).first() {
            if let Some(indent) = self.indent_of(first) {
                return Some(Cow::Borrowed(indent));
            }
        }
        self.indent_of(id)
            .map(|i| Cow::Owned(format!("{i}{}", self.unit)))
    }

    /// Set attribute `name` of `id` to `value`, replacing the value if it exists.
    pub(crate) fn set_attr(&mut self, id: ElementId, name: &str, value: &str) {
        let el = self.doc.element(id);
        let escaped = escape_attr(value);
        if let Some(attr) = el.attribute(name) {
            let (start, end) = (attr.value_start as usize, attr.value_end as usize);
            self.splice_with(start, end, |out| out.push_str(&escaped));
        } else {
            let at = el
                .attrs
                .last()
                .map_or(el.start + 1 + el.name.len(), |a| a.end as usize);
            self.splice_with(at, at, |out| push_attr(out, name, &escaped));
        }
    }

    /// Insert attribute `name` right after attribute `after` (or after the last one).
    pub(crate) fn insert_attr_after(
        &mut self,
        id: ElementId,
        after: &str,
        name: &str,
        value: &str,
    ) {
        let el = self.doc.element(id);
        let at = el
            .attribute(after)
            .or(el.attrs.last())
            .map_or(el.start + 1 + el.name.len(), |a| a.end as usize);
        self.splice_with(at, at, |out| push_attr(out, name, &escape_attr(value)));
    }

    /// Remove element `id`, with the indentation before it when it starts its own line.
    pub(crate) fn remove_element(&mut self, id: ElementId) {
        let el = self.doc.element(id);
        if let Some(parent) = el.parent.map(|p| self.doc.element(p)) {
            if parent.children.len() == 1 && parent.text.is_empty() && !parent.self_closing {
                // The parent is left empty: written as an empty element, as libvirt does.
                let at = parent.start_tag_end - 1;
                self.splice_with(at, parent.end, |out| out.push_str("/>"));
                return;
            }
        }
        let start = match self.indent_of(id) {
            Some(indent) => {
                let line_start = el.start - indent.len();
                // Take the line break too, so no empty line stays behind.
                let text = self.doc.text.as_bytes();
                match line_start.checked_sub(1) {
                    Some(nl) if text[nl] == b'\n' && nl > 0 && text[nl - 1] == b'\r' => nl - 1,
                    Some(nl) if text[nl] == b'\n' => nl,
                    _ => line_start,
                }
            }
            None => el.start,
        };
        self.splice_with(start, el.end, |_| {});
    }

    /// Replace the whole element `id` (start tag, children, end tag) by what `write` writes.
    pub fn replace_element_with(&mut self, id: ElementId, write: impl FnOnce(&mut String)) {
        let el = self.doc.element(id);
        self.splice_with(el.start, el.end, write);
    }

    /// Replace the start tag of `id` by `<name attrs>` (or `<name attrs/>` when it is empty).
    /// `tag_body` writes the tag without `<` and the closing `>` or `/>`.
    pub(crate) fn replace_start_tag_with(
        &mut self,
        id: ElementId,
        tag_body: impl FnOnce(&mut String),
    ) {
        let el = self.doc.element(id);
        let close = if el.self_closing { "/>" } else { ">" };
        let (start, end) = (el.start, el.start_tag_end);
        self.splice_with(start, end, |out| {
            out.push('<');
            tag_body(out);
            out.push_str(close);
        });
    }

    /// Replace the start tag of `id` by `<tag_body>` (or `<tag_body/>` when it is empty).
    pub(crate) fn replace_start_tag(&mut self, id: ElementId, tag_body: &str) {
        self.replace_start_tag_with(id, |out| out.push_str(tag_body));
    }

    /// Add an element written by `write` (one line, or several lines already indented for
    /// the child level after the first) as the last child of `id`.
    pub(crate) fn append_child_with(&mut self, id: ElementId, write: impl FnOnce(&mut String)) {
        let from = self.children_arena.len();
        write(&mut self.children_arena);
        self.appended.push((id, (from, self.children_arena.len())));
    }

    /// Make room for `bytes` more bytes of new text in about `edits` places, so that the
    /// buffers do not grow (and copy themselves) edit by edit. New children are written to
    /// one arena and copied, indented, into the other, hence both.
    pub(crate) fn reserve(&mut self, bytes: usize, edits: usize) {
        self.arena.reserve(bytes);
        self.children_arena.reserve(bytes);
        self.splices.reserve(edits);
        self.appended.reserve(edits);
    }

    /// Add `element` as the last child of `id`.
    pub(crate) fn append_child(&mut self, id: ElementId, element: String) {
        self.append_child_with(id, |out| out.push_str(&element));
    }

    /// Add `element` as a child of `parent` right before its child `before`.
    pub(crate) fn insert_child_before(&mut self, before: ElementId, element: String) {
        self.insert_before_with(before, |out| out.push_str(&element));
    }

    /// Add the element written by `write` as the next sibling of `id`.
    pub(crate) fn insert_after_with(&mut self, id: ElementId, write: impl FnOnce(&mut String)) {
        let at = self.doc.element(id).end;
        let indent = self.indent_of(id);
        self.splice_with(at, at, |out| {
            if let Some(indent) = indent {
                out.push('\n');
                out.push_str(indent);
            }
            write(out);
        });
    }

    /// Add the element written by `write` as the previous sibling of `id`.
    pub(crate) fn insert_before_with(&mut self, id: ElementId, write: impl FnOnce(&mut String)) {
        let at = self.doc.element(id).start;
        let indent = self.indent_of(id);
        self.splice_with(at, at, |out| {
            write(out);
            if let Some(indent) = indent {
                out.push('\n');
                out.push_str(indent);
            }
        });
    }

    fn flush_appended(&mut self) {
        let mut appended = std::mem::take(&mut self.appended);
        // Group by element, keeping the order in which children were added.
        appended.sort_by_key(|&(id, _)| id);
        let mut group_start = 0;
        while group_start < appended.len() {
            let id = appended[group_start].0;
            let group_end = appended[group_start..]
                .iter()
                .position(|&(other, _)| other != id)
                .map_or(appended.len(), |n| group_start + n);
            let children = &appended[group_start..group_end];
            group_start = group_end;
            self.flush_children(id, children);
        }
        spare::give(&SPARE_APPENDED, appended);
    }

    /// Splice the new children `children` (ranges of the arena) into element `id`.
    fn flush_children(&mut self, id: ElementId, children: &[(ElementId, (usize, usize))]) {
        let el = self.doc.element(id);
        let own_indent = self.indent_of(id);
        let child_indent = self.child_indent(id);
        let text = self.doc.text;
        let mut arena = std::mem::take(&mut self.arena);
        let texts = &self.children_arena;
        let push_children = |arena: &mut String, ci: Option<&str>| {
            for &(_, (from, to)) in children {
                if let Some(ci) = ci {
                    arena.push('\n');
                    arena.push_str(ci);
                }
                arena.push_str(&texts[from..to]);
            }
        };
        let from = arena.len();
        let (start, end);
        if el.self_closing {
            // Open the element: `<x a='1'/>` becomes `<x a='1'>...</x>`.
            let slash = el.start_tag_end.saturating_sub(2);
            let head = &text[el.start..slash];
            let trimmed = head.trim_end_matches([' ', '\t', '\r', '\n']);
            let cut = el.start + trimmed.len();
            arena.push('>');
            match (&own_indent, &child_indent) {
                (Some(indent), Some(ci)) => {
                    push_children(&mut arena, Some(ci));
                    arena.push('\n');
                    arena.push_str(indent);
                }
                _ => push_children(&mut arena, None),
            }
            arena.push_str("</");
            arena.push_str(el.name);
            arena.push('>');
            (start, end) = (cut, el.start_tag_end);
        } else {
            let content = &text[el.start_tag_end..el.end_tag_start];
            let multiline = content.contains('\n');
            match (&child_indent, multiline, el.children.last()) {
                (Some(ci), true, Some(&last)) => {
                    push_children(&mut arena, Some(ci));
                    let at = self.doc.element(last).end;
                    (start, end) = (at, at);
                }
                (Some(ci), true, None) => {
                    push_children(&mut arena, Some(ci));
                    (start, end) = (el.start_tag_end, el.start_tag_end);
                }
                (Some(ci), false, None) if content.is_empty() && own_indent.is_some() => {
                    push_children(&mut arena, Some(ci));
                    arena.push('\n');
                    arena.push_str(own_indent.unwrap_or_default());
                    (start, end) = (el.start_tag_end, el.start_tag_end);
                }
                _ => {
                    push_children(&mut arena, None);
                    (start, end) = (el.end_tag_start, el.end_tag_start);
                }
            }
        }
        let to = arena.len();
        self.arena = arena;
        self.splices.push(Splice {
            start,
            end,
            text: (from, to),
        });
    }

    /// Apply every edit and return the new text.
    pub(crate) fn finish(self) -> String {
        let text = self.doc.text;
        self.into_edits().apply(text)
    }

    /// The edits, no longer tied to the document: a caller with large documents can free the
    /// document's tables before the new text is written, so that it reuses their memory.
    pub(crate) fn into_edits(mut self) -> Edits {
        self.flush_appended();
        spare::give(&SPARE_CHILDREN_ARENA, self.children_arena);
        let text = self.doc.text.as_bytes();
        let crlf = text
            .iter()
            .position(|&b| b == b'\n')
            .is_some_and(|nl| nl > 0 && text[nl - 1] == b'\r');
        Edits {
            splices: self.splices,
            arena: self.arena,
            crlf,
        }
    }
}

thread_local! {
    // The editor's buffers, kept for the next editor on the thread (see [`spare`]).
    static SPARE_SPLICES: RefCell<Option<Vec<Splice>>> = const { RefCell::new(None) };
    static SPARE_ARENA: RefCell<Option<String>> = const { RefCell::new(None) };
    static SPARE_CHILDREN_ARENA: RefCell<Option<String>> = const { RefCell::new(None) };
    static SPARE_APPENDED: RefCell<Option<Appended>> = const { RefCell::new(None) };
}

/// Edits collected by an [`Editor`], ready to splice into the text they were made against.
pub(crate) struct Edits {
    splices: Vec<Splice>,
    arena: String,
    /// The document ends its lines with CRLF (as its first line does), so new lines do too.
    crlf: bool,
}

impl Edits {
    /// Apply every edit to `text` (the text of the document the editor worked on).
    pub(crate) fn apply(self, text: &str) -> String {
        let Edits {
            mut splices,
            arena,
            crlf,
        } = self;
        // A stable sort keeps the order in which edits at one place were made; the splices
        // come in a few ascending runs, which it merges cheaply.
        splices.sort_by_key(|s| s.start);
        let mut out = String::with_capacity(
            text.len() + splices.iter().map(|s| s.text.1 - s.text.0).sum::<usize>(),
        );
        let mut pos = 0;
        for s in &splices {
            if s.start < pos || s.end > text.len() {
                // Overlapping edits cannot happen by construction, nor edits past the end
                // of the text they were made against; keep the text intact if they ever do.
                continue;
            }
            out.push_str(&text[pos..s.start]);
            let new = &arena[s.text.0..s.text.1];
            if crlf {
                push_with_crlf(&mut out, new);
            } else {
                out.push_str(new);
            }
            pos = s.end;
        }
        out.push_str(&text[pos..]);
        spare::give(&SPARE_SPLICES, splices);
        spare::give(&SPARE_ARENA, arena);
        out
    }
}

/// Push `new` with each line feed that lacks one preceded by a carriage return.
fn push_with_crlf(out: &mut String, new: &str) {
    let mut rest = new;
    while let Some(nl) = rest.find('\n') {
        let line = &rest[..nl];
        out.push_str(line);
        let after_cr = if nl > 0 {
            line.ends_with('\r')
        } else {
            out.ends_with('\r')
        };
        out.push_str(if after_cr { "\n" } else { "\r\n" });
        rest = &rest[nl + 1..];
    }
    out.push_str(rest);
}

fn push_attr(out: &mut String, name: &str, escaped: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("='");
    out.push_str(escaped);
    out.push('\'');
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
        ed.insert_after_with(c, |out| out.push_str("<h/>"));
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
