//! What the plugin said about the pages: rendered, failed (with its
//! reasons), scanned; the notes and the shortfall an audit record carries.

use std::collections::HashMap;

use super::MAX_REASONS_SHOWN;

/// What the plugin said about the pages the document declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageReport {
    /// Pages the document declares (its page tree, a repeated page counted
    /// each time).
    pub declared: u32,
    /// Pages that could not be rendered: 1-based number and the plugin's
    /// reason. Each has a placeholder page in the output.
    pub failed: Vec<(u32, String)>,
    /// The document has no readable page tree; its pages were found by
    /// scanning the file.
    pub scanned: bool,
}

impl PageReport {
    pub fn rendered(&self) -> u32 {
        self.declared.saturating_sub(self.failed.len() as u32)
    }

    /// `rendered 29 of 30 pages: page 28 failed: <reason>`; None when
    /// every page was rendered.
    pub fn shortfall(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let groups = self.by_reason();
        let mut text = format!(
            "rendered {} of {} pages: {} failed",
            self.rendered(),
            self.declared,
            pages_text(&self.failed.iter().map(|(p, _)| *p).collect::<Vec<_>>())
        );
        if let [(reason, _)] = groups.as_slice() {
            text.push_str(&format!(": {reason}"));
        } else {
            let shown: Vec<String> = groups
                .iter()
                .take(MAX_REASONS_SHOWN)
                .map(|(reason, pages)| format!("{}: {reason}", pages_text(pages)))
                .collect();
            text.push_str(&format!(": {}", shown.join("; ")));
            if groups.len() > MAX_REASONS_SHOWN {
                text.push_str("; …");
            }
        }
        Some(text)
    }

    /// For the audit record: how the pages were counted, and the missing
    /// pages with their reasons, one note per reason.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = vec![format!(
            "pages: {} declared, {} rendered{}",
            self.declared,
            self.rendered(),
            if self.scanned {
                " (no readable page tree: pages found by scanning the file)"
            } else {
                ""
            }
        )];
        for (reason, pages) in self.by_reason() {
            notes.push(format!(
                "missing {} of {} (a labelled blank page in its place): {reason}",
                pages_text(&pages),
                self.declared
            ));
        }
        notes
    }

    /// The failed pages grouped by reason, in order of first appearance.
    fn by_reason(&self) -> Vec<(&str, Vec<u32>)> {
        let mut groups: Vec<(&str, Vec<u32>)> = Vec::new();
        let mut index = HashMap::new();
        for (page, reason) in &self.failed {
            let i = *index.entry(reason.as_str()).or_insert_with(|| {
                groups.push((reason.as_str(), Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(*page);
        }
        groups
    }
}

/// `page 4`, `pages 3, 5-9, 28`.
fn pages_text(pages: &[u32]) -> String {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &p in pages {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == p => *end = p,
            _ => ranges.push((p, p)),
        }
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let noun = if pages.len() == 1 { "page" } else { "pages" };
    format!("{noun} {}", parts.join(", "))
}
