//! The views of a parsed [`Document`]: an element, its attributes and its children, each
//! borrowing the document's tables.

#[cfg(doc)]
use super::Document;
use super::{AttrRecord, ElementId};

/// One attribute of an element: its name, unescaped value and byte spans (offsets are `u32`:
/// documents are limited to 4 GiB, in practice to [`crate::limits::MAX_XML_BYTES`]).
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'d> {
    pub name: &'d str,
    /// The value with entities expanded.
    pub value: &'d str,
    /// Byte offset of the name.
    pub start: u32,
    /// Byte offset just after the closing quote.
    pub end: u32,
    /// Byte span of the raw value between the quotes.
    pub value_start: u32,
    pub value_end: u32,
}

/// The attributes of one element, in document order.
#[derive(Debug, Clone, Copy)]
pub struct Attrs<'d> {
    pub(super) records: &'d [AttrRecord],
    pub(super) text: &'d str,
    pub(super) expanded: &'d [String],
}

impl<'d> Attrs<'d> {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn iter(&self) -> AttrIter<'d> {
        AttrIter {
            attrs: *self,
            at: 0,
        }
    }

    pub fn last(&self) -> Option<Attribute<'d>> {
        self.records.last().map(|r| self.view(r))
    }

    /// The attribute called `name`.
    pub fn get(&self, name: &str) -> Option<Attribute<'d>> {
        self.records
            .iter()
            .find(|r| r.name(self.text) == name)
            .map(|r| self.view(r))
    }

    fn view(&self, r: &AttrRecord) -> Attribute<'d> {
        let value = match self.expanded.get(r.expanded as usize) {
            Some(own) => own.as_str(),
            None => &self.text[r.value_start as usize..r.value_end as usize],
        };
        Attribute {
            name: r.name(self.text),
            value,
            start: r.start,
            end: r.end,
            value_start: r.value_start,
            value_end: r.value_end,
        }
    }
}

impl<'d> IntoIterator for Attrs<'d> {
    type Item = Attribute<'d>;
    type IntoIter = AttrIter<'d>;
    fn into_iter(self) -> AttrIter<'d> {
        self.iter()
    }
}

/// The attributes of one element, one after the other.
#[derive(Debug, Clone)]
pub struct AttrIter<'d> {
    attrs: Attrs<'d>,
    at: usize,
}

impl<'d> Iterator for AttrIter<'d> {
    type Item = Attribute<'d>;
    fn next(&mut self) -> Option<Attribute<'d>> {
        let r = self.attrs.records.get(self.at)?;
        self.at += 1;
        Some(self.attrs.view(r))
    }
}

/// One element with the byte spans of its tags: a view into a [`Document`].
#[derive(Debug, Clone, Copy)]
pub struct Element<'d, 'a> {
    pub name: &'a str,
    pub attrs: Attrs<'d>,
    /// Offset of the `<` of the start tag.
    pub start: usize,
    /// Offset just after the `>` of the start tag.
    pub start_tag_end: usize,
    /// Offset of the `<` of the end tag (equal to `end` for an empty element).
    pub end_tag_start: usize,
    /// Offset just after the element.
    pub end: usize,
    pub self_closing: bool,
    pub children: Children<'d>,
    pub parent: Option<ElementId>,
    /// Direct text content as libvirt reads it: references decoded, CDATA sections as their
    /// content, the pieces between comments and child elements joined (whitespace-only
    /// pieces before the first other piece are left out).
    pub text: &'d str,
}

impl<'d, 'a> Element<'d, 'a> {
    pub fn attr(&self, name: &str) -> Option<&'d str> {
        self.attrs.get(name).map(|a| a.value)
    }

    pub fn attribute(&self, name: &str) -> Option<Attribute<'d>> {
        self.attrs.get(name)
    }
}

/// The child elements of one element, in document order (a slice that `for &id in &children`
/// walks).
#[derive(Debug, Clone, Copy)]
pub struct Children<'d>(pub &'d [ElementId]);

impl<'d> std::ops::Deref for Children<'d> {
    type Target = [ElementId];
    fn deref(&self) -> &[ElementId] {
        self.0
    }
}

impl<'d> IntoIterator for &Children<'d> {
    type Item = &'d ElementId;
    type IntoIter = std::slice::Iter<'d, ElementId>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'d> IntoIterator for Children<'d> {
    type Item = &'d ElementId;
    type IntoIter = std::slice::Iter<'d, ElementId>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
