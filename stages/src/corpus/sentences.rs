//! A rule-based English sentence splitter for paragraphs (one WikiExtractor line is a
//! paragraph; ELECTRA's example builder wants sentences so it can pack whole ones).
//!
//! A sentence ends after a word ending in `.`, `!` or `?` (possibly followed by closing quotes
//! or brackets) when the next word starts like a sentence: an upper-case letter, a digit, or
//! an opening quote/bracket. A `.` after a known abbreviation (`Mr.`, `e.g.`, `U.S.`) or a
//! single-letter initial (`J. Smith`) does not end a sentence.

/// Abbreviations (lower case, without the final `.`) after which a `.` ends no sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "inc", "ltd", "co", "corp",
    "no", "gen", "col", "lt", "sgt", "capt", "rev", "gov", "sen", "rep", "mt", "ft", "jan", "feb",
    "apr", "aug", "sep", "sept", "oct", "nov", "dec", "approx", "ca", "cf", "al", "fig", "vol",
    "pp", "ed", "eds", "op", "esp", "dept", "univ", "bros", "est",
];

/// Characters that may follow a sentence's final punctuation: `He said "no."` ends at `"`.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '»' | '”' | '’')
}

/// Whether `word` ends a sentence by its punctuation, ignoring what comes next.
fn ends_with_terminator(word: &str) -> bool {
    let core = word.trim_end_matches(is_closer);
    let Some(last) = core.chars().last() else {
        return false;
    };
    match last {
        '!' | '?' => true,
        '.' => !is_abbreviation(&core[..core.len() - 1]),
        _ => false,
    }
}

/// `stem` is a word without its final `.`: an initial, a dotted abbreviation or a known one.
fn is_abbreviation(stem: &str) -> bool {
    let stem = stem.trim_start_matches(|c: char| !c.is_alphanumeric());
    let mut chars = stem.chars();
    let single_letter =
        matches!((chars.next(), chars.next()), (Some(c), None) if c.is_alphabetic());
    single_letter
        || stem.contains('.')
        || ABBREVIATIONS
            .iter()
            .any(|abbr| stem.eq_ignore_ascii_case(abbr))
}

/// Whether `word` can begin a new sentence.
fn starts_sentence(word: &str) -> bool {
    let mut chars = word.chars();
    match chars.next() {
        Some(c) if c.is_uppercase() || c.is_ascii_digit() => true,
        Some('"' | '\'' | '(' | '[' | '“' | '‘' | '«' | '`') => chars
            .find(|c| c.is_alphanumeric())
            .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit()),
        _ => false,
    }
}

/// Splits `paragraph` into sentences, each with its whitespace collapsed to single spaces,
/// appending them to `out`. An empty or blank paragraph adds nothing.
pub fn split_sentences(paragraph: &str, out: &mut Vec<String>) {
    let mut current = String::new();
    let mut words = paragraph.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
        let boundary = match words.peek() {
            Some(next) => ends_with_terminator(word) && starts_sentence(next),
            None => true,
        };
        if boundary {
            out.push(std::mem::take(&mut current));
        }
    }
}

/// A paragraph as one sentence, whitespace collapsed (for `split_sentences: false`).
pub fn normalize_whitespace(paragraph: &str) -> String {
    paragraph.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        split_sentences(text, &mut out);
        out
    }

    #[test]
    fn splits_at_terminators_before_capitals() {
        assert_eq!(
            split(
                "Anarchism is a philosophy.  It holds the state to be undesirable! Why? 1917 came."
            ),
            [
                "Anarchism is a philosophy.",
                "It holds the state to be undesirable!",
                "Why?",
                "1917 came."
            ]
        );
    }

    #[test]
    fn keeps_abbreviations_initials_and_decimals_together() {
        assert_eq!(
            split("Mr. Smith met J. R. R. Tolkien in the U.S. in 1950. He paid 3.5 dollars, e.g. Coins."),
            [
                "Mr. Smith met J. R. R. Tolkien in the U.S. in 1950.",
                "He paid 3.5 dollars, e.g. Coins."
            ]
        );
    }

    #[test]
    fn quotes_and_brackets_close_and_open_sentences() {
        assert_eq!(
            split("He said \"stop.\" \"Why?\" she asked. (See below.) the end"),
            [
                "He said \"stop.\"",
                "\"Why?\" she asked.",
                "(See below.) the end"
            ]
        );
    }

    #[test]
    fn lower_case_continuations_and_blank_text() {
        assert_eq!(
            split("It rose 5 p.c. in value. ok"),
            ["It rose 5 p.c. in value. ok"]
        );
        assert!(split("   ").is_empty());
        assert_eq!(normalize_whitespace(" a \t b "), "a b");
    }
}
