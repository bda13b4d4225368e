//! References to other stages' outputs in params: `@stage/output`,
//! `@stage[key=value,...]/output`, `@stage[*]/output`. A string starting with `@@` is a
//! literal `@`.

use std::fmt;

/// One condition of a selection: `key=value`, `key=*`, or `*` (every cell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Every cell.
    All,
    /// Cells whose axis `key` has the value `value` (`*` matches any value).
    Axis {
        /// The matrix axis.
        key: String,
        /// The value as written; `*` for any.
        value: String,
    },
}

/// A selection of stage instances: a stage name and optional cell conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The stage's name.
    pub stage: String,
    /// The conditions in brackets; `None` without brackets.
    pub conditions: Option<Vec<Condition>>,
}

impl Selection {
    /// Parses `stage` or `stage[key=value,...]` or `stage[*]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (stage, conditions) = match text.find('[') {
            None => (text, None),
            Some(open) => {
                let inner = text[open + 1..]
                    .strip_suffix(']')
                    .ok_or_else(|| format!("`{text}`: a `[` selection must end with `]`"))?;
                let conditions = inner
                    .split(',')
                    .map(|part| parse_condition(part.trim(), text))
                    .collect::<Result<Vec<_>, _>>()?;
                (&text[..open], Some(conditions))
            }
        };
        if !super::raw::is_identifier(stage) {
            return Err(format!("`{stage}` is not a stage name"));
        }
        Ok(Selection {
            stage: stage.to_owned(),
            conditions,
        })
    }

    /// True when the selection can match more than one instance of a matrix stage with
    /// `axes`: then a reference to it yields a list.
    pub fn is_multi(&self, axes: &[String]) -> bool {
        if axes.is_empty() {
            return false;
        }
        match &self.conditions {
            None => true,
            Some(conditions) => !axes.iter().all(|axis| {
                conditions.iter().any(
                    |c| matches!(c, Condition::Axis { key, value } if key == axis && value != "*"),
                )
            }),
        }
    }
}

fn parse_condition(part: &str, text: &str) -> Result<Condition, String> {
    if part == "*" {
        return Ok(Condition::All);
    }
    let (key, value) = part.split_once('=').ok_or_else(|| {
        format!("`{text}`: expected `key=value` or `*` inside the brackets, found `{part}`")
    })?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || value.is_empty() {
        return Err(format!(
            "`{text}`: expected `key=value` inside the brackets, found `{part}`"
        ));
    }
    Ok(Condition::Axis {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.stage)?;
        if let Some(conditions) = &self.conditions {
            let parts: Vec<String> = conditions
                .iter()
                .map(|c| match c {
                    Condition::All => "*".to_owned(),
                    Condition::Axis { key, value } => format!("{key}={value}"),
                })
                .collect();
            write!(f, "[{}]", parts.join(","))?;
        }
        Ok(())
    }
}

/// `@selection/output`: another stage's output used as a param value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Which instances.
    pub selection: Selection,
    /// Which of their outputs.
    pub output: String,
}

/// What a param string is: a reference, or a literal (with `@@` unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamString {
    /// `@stage/output`.
    Reference(Reference),
    /// Any other string.
    Literal(String),
}

/// Classifies a param string; `Err` for a string that starts with `@` but is malformed.
pub fn classify(text: &str) -> Result<ParamString, String> {
    if let Some(literal) = text.strip_prefix("@@") {
        return Ok(ParamString::Literal(format!("@{literal}")));
    }
    let Some(body) = text.strip_prefix('@') else {
        return Ok(ParamString::Literal(text.to_owned()));
    };
    let slash = match body.find('[') {
        Some(open) => body[open..].find("]/").map(|i| open + i + 1),
        None => body.find('/'),
    }
    .ok_or_else(|| format!("`{text}` looks like a reference but has no `/output` part (write `@@` for a literal `@`)"))?;
    let output = &body[slash + 1..];
    if output.is_empty() {
        return Err(format!("`{text}`: expected an output name after `/`"));
    }
    Ok(ParamString::Reference(Reference {
        selection: Selection::parse(&body[..slash])?,
        output: output.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(text: &str) -> Reference {
        match classify(text).unwrap() {
            ParamString::Reference(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_plain_and_selected_references() {
        let r = reference("@slice/out/a.txt");
        assert_eq!(
            (r.selection.stage.as_str(), r.output.as_str()),
            ("slice", "out/a.txt")
        );
        let r = reference("@ft[task=sst2, seed=1]/metrics.json");
        assert_eq!(r.selection.to_string(), "ft[task=sst2,seed=1]");
        assert!(!r.selection.is_multi(&["task".into(), "seed".into()]));
        assert!(r
            .selection
            .is_multi(&["task".into(), "seed".into(), "lr".into()]));
        assert!(reference("@ft[*]/m").selection.is_multi(&["task".into()]));
        assert!(reference("@ft/m").selection.is_multi(&["task".into()]));
        assert!(!reference("@ft/m").selection.is_multi(&[]));
    }

    #[test]
    fn literals_and_escapes() {
        assert_eq!(
            classify("plain").unwrap(),
            ParamString::Literal("plain".into())
        );
        assert_eq!(
            classify("@@home").unwrap(),
            ParamString::Literal("@home".into())
        );
    }

    #[test]
    fn malformed_references() {
        assert!(classify("@slice").is_err());
        assert!(classify("@slice/").is_err());
        assert!(classify("@ft[task]/x").is_err());
        assert!(classify("@9x/out").is_err());
    }
}
