//! A small element tree that remembers where every element and attribute sits in the input
//! text, so that edits can be spliced into the original bytes and everything else survives.
//!
//! This file holds the stored form (compact records of byte offsets, kept for the thread's
//! next document, see `xml/spare.rs`) and the questions a reader asks of it; the views handed out
//! are in `element`, the one-pass scanner that builds the tree in `scan`, and the reading
//! of a start tag's attributes in `attributes`.

mod attributes;
mod element;
mod scan;

pub use element::{AttrIter, Attribute, Attrs, Children, Element};

use super::spare;
use std::borrow::Cow;
use std::cell::RefCell;

/// Index of an element of a [`Document`] (elements are numbered in document order).
pub type ElementId = usize;

/// One attribute as stored: byte offsets only, so that the table borrows nothing and can be
/// kept for the thread's next document (see [`spare`]).
#[derive(Debug, Clone, Copy)]
struct AttrRecord {
    start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
    end: u32,
    /// Index into [`Document::expanded`] when the value had entities, else [`NONE`].
    expanded: u32,
}

impl AttrRecord {
    fn name<'t>(&self, text: &'t str) -> &'t str {
        &text[self.start as usize..self.name_end as usize]
    }
}

/// One element as stored, kept small (48 bytes): byte offsets as `u32`, the name as a length
/// after the `<`, the text as an index into the document's text list, and where its
/// attributes and children sit in the document's shared lists.
#[derive(Debug, Clone)]
struct Node {
    name_len: u32,
    attrs: (u32, u32),
    children: (u32, u32),
    start: u32,
    start_tag_end: u32,
    end_tag_start: u32,
    end: u32,
    /// [`NONE`] for the root.
    parent: u32,
    /// Index into [`Document::texts`], [`NONE`] when the element has no text.
    text: u32,
    self_closing: bool,
}

/// "No such element / text" in a [`Node`].
const NONE: u32 = u32::MAX;

/// A parsed XML document that borrows its text. Elements are numbered in document order;
/// all attributes sit in one list and all child lists in another, so parsing allocates a
/// handful of times whatever the size of the document.
#[derive(Debug)]
pub struct Document<'a> {
    pub text: &'a str,
    nodes: Vec<Node>,
    attributes: Vec<AttrRecord>,
    /// The values of the attributes that had entities, expanded.
    expanded: Vec<String>,
    /// The text content of the elements that have any, decoded.
    texts: Vec<Cow<'a, str>>,
    child_ids: Vec<ElementId>,
    pub root: ElementId,
    /// The last line number worked out, as (offset, line): devices are read in document
    /// order, so counting on from there keeps naming the line of each of many devices linear.
    line_cursor: std::cell::Cell<(usize, usize)>,
}

thread_local! {
    // The element tables, kept for the next document on the thread (see [`spare`]).
    static SPARE_NODES: RefCell<Option<Vec<Node>>> = const { RefCell::new(None) };
    static SPARE_IDS: RefCell<Option<Vec<ElementId>>> = const { RefCell::new(None) };
    static SPARE_COUNTS: RefCell<Option<Vec<u32>>> = const { RefCell::new(None) };
    static SPARE_ATTRIBUTES: RefCell<Option<Vec<AttrRecord>>> = const { RefCell::new(None) };
}

impl Drop for Document<'_> {
    fn drop(&mut self) {
        spare::give(&SPARE_NODES, std::mem::take(&mut self.nodes));
        spare::give(&SPARE_IDS, std::mem::take(&mut self.child_ids));
        spare::give(&SPARE_ATTRIBUTES, std::mem::take(&mut self.attributes));
    }
}

impl<'a> Document<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn element(&self, id: ElementId) -> Element<'_, 'a> {
        let n = &self.nodes[id];
        Element {
            name: name_of(self.text, n),
            attrs: self.attrs_of(n),
            start: n.start as usize,
            start_tag_end: n.start_tag_end as usize,
            end_tag_start: n.end_tag_start as usize,
            end: n.end as usize,
            self_closing: n.self_closing,
            children: Children(&self.child_ids[n.children.0 as usize..n.children.1 as usize]),
            parent: (n.parent != NONE).then_some(n.parent as usize),
            text: self.texts.get(n.text as usize).map_or("", |t| t),
        }
    }

    /// The unescaped value of attribute `name` of element `id` (without building an
    /// [`Element`]: readers ask this many times per device).
    pub fn attr(&self, id: ElementId, name: &str) -> Option<&str> {
        self.attrs_of(&self.nodes[id]).get(name).map(|a| a.value)
    }

    fn attrs_of(&self, n: &Node) -> Attrs<'_> {
        Attrs {
            records: &self.attributes[n.attrs.0 as usize..n.attrs.1 as usize],
            text: self.text,
            expanded: &self.expanded,
        }
    }

    /// The unescaped value of attribute `name` of the first child `child` of element `id`
    /// (`<mac address='...'/>` of an interface).
    pub fn child_attr(&self, id: ElementId, child: &str, name: &str) -> Option<&str> {
        self.child(id, child).and_then(|c| self.attr(c, name))
    }

    /// The name of element `id`.
    pub fn name(&self, id: ElementId) -> &'a str {
        name_of(self.text, &self.nodes[id])
    }

    /// The child elements of `id`, in document order.
    pub fn children(&self, id: ElementId) -> &[ElementId] {
        let n = &self.nodes[id];
        &self.child_ids[n.children.0 as usize..n.children.1 as usize]
    }

    /// The child elements of `id` named `name`, in document order.
    pub fn children_named<'s>(
        &'s self,
        id: ElementId,
        name: &'s str,
    ) -> impl Iterator<Item = ElementId> + 's {
        self.children(id)
            .iter()
            .copied()
            .filter(move |&c| name_of(self.text, &self.nodes[c]) == name)
    }

    pub fn child(&self, id: ElementId, name: &str) -> Option<ElementId> {
        self.children_named(id, name).next()
    }

    /// 1-based line of a byte offset, for messages.
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        let (from, line) = match self.line_cursor.get() {
            (at, line) if at <= offset => (at, line),
            _ => (0, 1),
        };
        let line = line + count_newlines(&self.text.as_bytes()[from..offset]);
        self.line_cursor.set((offset, line));
        line
    }

    /// The whitespace that starts the line of `offset`, when only whitespace precedes
    /// `offset` on its line; `None` when other text does.
    pub fn indent_before(&self, offset: usize) -> Option<&'a str> {
        let text: &'a str = self.text;
        let bytes = text.as_bytes();
        if offset > bytes.len() {
            return None;
        }
        let mut line_start = offset;
        while line_start > 0 && matches!(bytes[line_start - 1], b' ' | b'\t') {
            line_start -= 1;
        }
        (line_start == 0 || bytes[line_start - 1] == b'\n').then(|| &text[line_start..offset])
    }
}

/// Newlines in `bytes`, counted 128 bytes at a time into a `u8` (which the compiler turns
/// into vector compares and adds).
fn count_newlines(bytes: &[u8]) -> usize {
    let mut chunks = bytes.chunks_exact(128);
    let mut n = 0;
    for chunk in &mut chunks {
        n += usize::from(chunk.iter().map(|&b| u8::from(b == b'\n')).sum::<u8>());
    }
    n + chunks.remainder().iter().filter(|&&b| b == b'\n').count()
}

/// The name of a stored element: the bytes after its `<`.
fn name_of<'a>(text: &'a str, node: &Node) -> &'a str {
    let from = node.start as usize + 1;
    &text[from..from + node.name_len as usize]
}
