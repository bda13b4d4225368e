//! Diagnostics for invalid pipeline files: where (file, line, column), what was found, what
//! was expected, and a hint; rendered like a compiler error with the offending line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A 1-based line and column in a pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// The text of a pipeline file, kept to quote lines in diagnostics.
#[derive(Debug)]
pub struct Source {
    /// The file as given on the command line.
    pub path: PathBuf,
    /// Its full text.
    pub text: String,
}

impl Source {
    fn line(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }
}

/// One problem in a pipeline file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// The file it is in.
    pub source: Arc<Source>,
    /// Where in the file; `None` when the problem concerns the file as a whole.
    pub location: Option<Location>,
    /// What is wrong, in one line.
    pub message: String,
    /// What was found there, if worth saying separately.
    pub found: Option<String>,
    /// What was expected instead.
    pub expected: Option<String>,
    /// A suggestion, such as "did you mean `kind`?".
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `location` in `source`.
    pub fn new(
        source: &Arc<Source>,
        location: Option<Location>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            source: Arc::clone(source),
            location,
            message: message.into(),
            found: None,
            expected: None,
            help: None,
        }
    }
    /// Adds what was found.
    pub fn found(mut self, found: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self
    }
    /// Adds what was expected.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }
    /// Adds a hint.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Adds a "did you mean" hint when `candidates` has a name close to `found`.
    pub fn did_you_mean<'a>(
        self,
        found: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        match closest(found, candidates) {
            Some(best) => self.help(format!("did you mean `{best}`?")),
            None => self,
        }
    }
    /// The file this diagnostic is about.
    pub fn path(&self) -> &Path {
        &self.source.path
    }
}

/// The candidate most similar to `word`, if any is similar enough to suggest.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        let path = self.source.path.display();
        match self.location {
            Some(loc) => {
                writeln!(f, "  --> {path}:{}:{}", loc.line, loc.col)?;
                if let Some(text) = self.source.line(loc.line) {
                    let gutter = loc.line.to_string().len();
                    writeln!(f, "{:gutter$} |", "")?;
                    writeln!(f, "{} | {text}", loc.line)?;
                    let width = underline_width(text, loc.col);
                    writeln!(
                        f,
                        "{:gutter$} | {:pad$}{}",
                        "",
                        "",
                        "^".repeat(width),
                        pad = loc.col - 1
                    )?;
                }
            }
            None => writeln!(f, "  --> {path}")?,
        }
        if let Some(found) = &self.found {
            writeln!(f, "   = found: {found}")?;
        }
        if let Some(expected) = &self.expected {
            writeln!(f, "   = expected: {expected}")?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "   = help: {help}")?;
        }
        Ok(())
    }
}

/// Underlines the token starting at `col`: a quoted string, or plain text up to where a
/// YAML scalar ends (`: `, ` #`, `,`, `]`, or a `}` that does not close a `${`).
fn underline_width(text: &str, col: usize) -> usize {
    let rest: Vec<char> = text.chars().skip(col.saturating_sub(1)).collect();
    let mut width = rest.len();
    if let Some(&quote @ ('"' | '\'')) = rest.first() {
        if let Some(end) = rest[1..].iter().position(|&c| c == quote) {
            width = end + 2;
        }
    } else {
        let mut open = 0usize;
        for (i, &c) in rest.iter().enumerate() {
            let next = rest.get(i + 1).copied();
            match c {
                '$' if next == Some('{') => open += 1,
                '}' if open > 0 => open -= 1,
                ',' | ']' | '}' => {
                    width = i;
                    break;
                }
                ':' if matches!(next, Some(' ') | None) => {
                    width = i;
                    break;
                }
                ' ' if next == Some('#') => {
                    width = i;
                    break;
                }
                _ => {}
            }
        }
    }
    let token: String = rest[..width].iter().collect();
    token.trim_end().chars().count().max(1)
}

/// Every problem found in a pipeline file (at least one).
#[derive(Debug, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diag) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diag}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "\n{n} error{} in {}",
            if n == 1 { "" } else { "s" },
            self.0
                .first()
                .map_or_else(String::new, |d| d.path().display().to_string())
        )
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_line_and_hints() {
        let source = Arc::new(Source {
            path: "p.yaml".into(),
            text: "stages:\n  a:\n    kidn: command\n".into(),
        });
        let d = Diagnostic::new(
            &source,
            Some(Location { line: 3, col: 5 }),
            "unknown key `kidn` in stage `a`",
        )
        .expected("one of kind, params")
        .did_you_mean("kidn", ["kind", "params"]);
        let text = d.to_string();
        assert!(text.contains("--> p.yaml:3:5"), "{text}");
        assert!(text.contains("3 |     kidn: command"), "{text}");
        assert!(text.contains("  |     ^^^^\n"), "{text}");
        assert!(text.contains("did you mean `kind`?"), "{text}");
    }

    #[test]
    fn underlines_whole_scalars() {
        assert_eq!(underline_width("  a: ${b}/x", 6), 6);
        assert_eq!(underline_width("  kind: comand # typo", 9), 6);
        assert_eq!(underline_width("  seed: [1, 1.0]", 13), 3);
        assert_eq!(underline_width(r#"  x: "@b/b.txt" }"#, 6), 10);
        assert_eq!(underline_width("  kidn: command", 3), 4);
    }

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(closest("comand", ["command", "report"]), Some("command"));
        assert_eq!(closest("zzz", ["command", "report"]), None);
    }
}
