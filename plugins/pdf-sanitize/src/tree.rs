//! The pages a document declares: its page tree walked as viewers walk it.
//!
//! hayro's own list of pages (`Pdf::pages`) is what it can render, not what
//! the document declares: it visits every object once, so a page the tree
//! names twice comes out once, and a kid it cannot read is skipped without
//! a word. Both would lose pages silently. This walk counts what the tree
//! names — every kid that is not a `/Pages` node is one page, as often as it
//! is named, readable or not — and [`slots`] then pairs each declared page
//! with hayro's page for the same object, or says why there is none.
//!
//! Only a reference back to an ancestor (a cycle) is cut, as viewers do.
//! Everything is bounded: the number of pages, the depth, and the number of
//! kids looked at (a tree that shares one `/Pages` node many times over
//! could otherwise name billions of pages from a few bytes).

use std::collections::BTreeMap;

use hayro::hayro_syntax::object::{Array, Dict, MaybeRef, Name, ObjectIdentifier};
use hayro::hayro_syntax::page::Page;
use hayro::hayro_syntax::Pdf;

/// Deepest `/Pages` nesting followed.
pub const MAX_DEPTH: usize = 256;
/// Most kids looked at in one tree, whatever they turn out to be.
pub const MAX_KIDS: usize = 1_000_000;

/// One page the tree declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Declared {
    /// A page dictionary, by its object.
    Page(ObjectIdentifier),
    /// A kid that is not a readable page dictionary.
    Broken(String),
}

/// What to do for one declared page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Render hayro's page at this index.
    Render(usize),
    /// Nothing to render; why.
    Fail(String),
}

/// The pages the tree declares, in order, or `None` when the document has
/// no page tree that can be read (hayro then found its pages by scanning
/// the file). Errors when a bound is passed.
pub fn declared_pages(pdf: &Pdf, max_pages: usize) -> Result<Option<Vec<Declared>>, String> {
    let xref = pdf.xref();
    let Some(catalog) = xref.get::<Dict<'_>>(xref.root_id()) else {
        return Ok(None);
    };
    let Some(root) = catalog.get_ref(b"Pages").map(ObjectIdentifier::from) else {
        return Ok(None);
    };
    let Some(kids) = xref
        .get::<Dict<'_>>(root)
        .and_then(|d| d.get::<Array<'_>>(b"Kids"))
    else {
        return Ok(None);
    };
    let mut declared = Vec::new();
    // One frame per open /Pages node: its remaining kids and its object.
    let mut stack = vec![(kids.raw_iter(), root)];
    let mut seen_kids = 0usize;
    while let Some((kids, _)) = stack.last_mut() {
        let Some(kid) = kids.next() else {
            stack.pop();
            continue;
        };
        seen_kids += 1;
        if seen_kids > MAX_KIDS {
            return Err(format!("page tree too large: more than {MAX_KIDS} entries"));
        }
        // Kids must be references (ISO 32000 7.7.3); an inline entry has
        // no object to name it by and is counted as a page that failed.
        let MaybeRef::Ref(r) = kid else {
            declared.push(Declared::Broken(
                "the page tree holds an entry that is not a reference to a page".to_string(),
            ));
            continue;
        };
        let id = ObjectIdentifier::from(r);
        if stack.iter().any(|(_, ancestor)| *ancestor == id) {
            continue; // a cycle: the node is its own ancestor
        }
        let Some(dict) = xref.get::<Dict<'_>>(id) else {
            declared.push(Declared::Broken(format!(
                "object {} {} R is missing or not a page dictionary",
                id.obj_number, id.gen_number
            )));
            continue;
        };
        if dict.get::<Name<'_>>(b"Type").as_deref() == Some(b"Pages".as_slice()) {
            // A node without kids declares no page (hayro skips it too).
            if let Some(kids) = dict.get::<Array<'_>>(b"Kids") {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("page tree deeper than {MAX_DEPTH} levels"));
                }
                stack.push((kids.raw_iter(), id));
            }
            continue;
        }
        declared.push(Declared::Page(id));
        if declared.len() > max_pages {
            return Err(format!("too many pages: more than {max_pages}, the limit"));
        }
    }
    Ok(Some(declared))
}

/// Pairs each declared page with hayro's page for the same object (a page
/// named twice renders twice); without a readable tree, every page hayro
/// found is one slot.
pub fn slots(declared: Option<&[Declared]>, pages: &[Page<'_>]) -> Vec<Slot> {
    let Some(declared) = declared else {
        return (0..pages.len()).map(Slot::Render).collect();
    };
    let mut by_id = BTreeMap::new();
    for (index, page) in pages.iter().enumerate() {
        if let Some(id) = page.raw().obj_id() {
            by_id.entry(id).or_insert(index);
        }
    }
    declared
        .iter()
        .map(|d| match d {
            Declared::Page(id) => match by_id.get(id) {
                Some(index) => Slot::Render(*index),
                None => Slot::Fail(format!(
                    "the renderer could not read page object {} {} R",
                    id.obj_number, id.gen_number
                )),
            },
            Declared::Broken(why) => Slot::Fail(why.clone()),
        })
        .collect()
}
