//! Maps every node of a YAML document to its line and column, by path
//! (`stages.train.params.lr`, `stages.sweep.matrix.seed[2]`), and finds duplicate keys.
//!
//! serde_yaml parses the document into values without positions; this second, event-level
//! pass (yaml-rust2) recovers them so every later error can point at the exact spot.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::diag::Location;

/// Where a node is: the key that names it (if in a mapping) and the value itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spot {
    /// The mapping key's position, if the node is a mapping value.
    pub key: Option<Location>,
    /// The value's position.
    pub value: Location,
}

/// A key that appears twice in one mapping.
#[derive(Debug, Clone)]
pub struct DuplicateKey {
    /// Path of the mapping holding it.
    pub parent: String,
    /// The repeated key.
    pub key: String,
    /// Where it first appears.
    pub first: Location,
    /// Where it appears again.
    pub again: Location,
}

/// Positions of every node in a document, by path.
#[derive(Debug, Default)]
pub struct Locator {
    spots: HashMap<String, Spot>,
    /// Keys repeated within one mapping, in document order.
    pub duplicates: Vec<DuplicateKey>,
}

impl Locator {
    /// Indexes `text`; a document that does not parse yields an empty index.
    pub fn new(text: &str) -> Self {
        let mut builder = Builder::default();
        if Parser::new_from_str(text)
            .load(&mut builder, false)
            .is_err()
        {
            return Locator::default();
        }
        Locator {
            spots: builder.spots,
            duplicates: builder.duplicates,
        }
    }

    /// The key's position for `path` (falling back to its value, then to the nearest
    /// ancestor that has a position).
    pub fn key(&self, path: &str) -> Option<Location> {
        self.nearest(path).map(|s| s.key.unwrap_or(s.value))
    }

    /// The value's position for `path` (or the nearest ancestor's).
    pub fn value(&self, path: &str) -> Option<Location> {
        self.nearest(path).map(|s| s.value)
    }

    fn nearest(&self, path: &str) -> Option<&Spot> {
        let mut path = path;
        loop {
            if let Some(spot) = self.spots.get(path) {
                return Some(spot);
            }
            path = parent(path)?;
        }
    }
}

/// The parent path of `path` (`a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``).
pub fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// The path of `key` inside the mapping at `parent`.
pub fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path of element `index` of the sequence at `parent`.
pub fn element(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, Location)>,
        seen: HashMap<String, Location>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    spots: HashMap<String, Spot>,
    duplicates: Vec<DuplicateKey>,
}

fn location(mark: Marker) -> Location {
    Location {
        line: mark.line(),
        col: mark.col() + 1,
    }
}

impl Builder {
    /// Records a node starting at `loc` in its parent's slot; returns its path.
    fn place(&mut self, loc: Location) -> String {
        match self.stack.last_mut() {
            None => {
                self.spots.insert(
                    String::new(),
                    Spot {
                        key: None,
                        value: loc,
                    },
                );
                String::new()
            }
            Some(Frame::Seq { path, next }) => {
                let p = element(path, *next);
                *next += 1;
                self.spots.insert(
                    p.clone(),
                    Spot {
                        key: None,
                        value: loc,
                    },
                );
                p
            }
            Some(Frame::Map { path, key, .. }) => {
                let (name, key_loc) = key.take().unwrap_or_default();
                let p = child(path, &name);
                self.spots.insert(
                    p.clone(),
                    Spot {
                        key: Some(key_loc),
                        value: loc,
                    },
                );
                p
            }
        }
    }

    /// True when the next scalar is a mapping key (and records it).
    fn take_key(&mut self, text: &str, loc: Location) -> bool {
        let Some(Frame::Map { path, key, seen }) = self.stack.last_mut() else {
            return false;
        };
        if key.is_some() {
            return false;
        }
        if let Some(first) = seen.get(text) {
            self.duplicates.push(DuplicateKey {
                parent: path.clone(),
                key: text.to_owned(),
                first: *first,
                again: loc,
            });
        } else {
            seen.insert(text.to_owned(), loc);
        }
        *key = Some((text.to_owned(), loc));
        true
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let loc = location(mark);
        match event {
            Event::Scalar(text, ..) if !self.take_key(&text, loc) => {
                self.place(loc);
            }
            Event::Alias(_) if !self.take_key("*alias", loc) => {
                self.place(loc);
            }
            Event::MappingStart(..) => {
                let path = self.place(loc);
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    seen: HashMap::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.place(loc);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_values_and_elements() {
        let text = "stages:\n  train:\n    kind: command\n    matrix:\n      seed: [1, 2]\n";
        let loc = Locator::new(text);
        assert_eq!(
            loc.key("stages.train.kind"),
            Some(Location { line: 3, col: 5 })
        );
        assert_eq!(
            loc.value("stages.train.kind"),
            Some(Location { line: 3, col: 11 })
        );
        assert_eq!(
            loc.value("stages.train.matrix.seed[1]"),
            Some(Location { line: 5, col: 17 })
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            loc.key("stages.train.params.lr"),
            Some(Location { line: 2, col: 3 })
        );
    }

    #[test]
    fn reports_duplicate_keys() {
        let loc = Locator::new("stages:\n  a: {}\n  a: {}\n");
        assert_eq!(loc.duplicates.len(), 1);
        let dup = &loc.duplicates[0];
        assert_eq!((dup.parent.as_str(), dup.key.as_str()), ("stages", "a"));
        assert_eq!((dup.first.line, dup.again.line), (2, 3));
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a.b"), Some("a"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
