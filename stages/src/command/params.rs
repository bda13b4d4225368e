//! The typed, validated params of a `command` stage.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use electra_pipe_api::{parse_params, ParamError, Params};
use serde::Deserialize;

pub use crate::inputs::InputPaths;

/// Params of a `command` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandParams {
    /// The shell script, run by `sh -e -c`.
    pub cmd: String,
    /// Input paths by name; each name becomes an environment variable.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputPaths>,
    /// Relative paths (files or directories) the command creates.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl CommandParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: CommandParams = parse_params(params)?;
        parsed.validate()?;
        Ok(parsed)
    }

    /// Every input path, in name order.
    pub fn input_paths(&self) -> impl Iterator<Item = &str> {
        self.inputs
            .values()
            .flat_map(|paths| paths.paths().iter().map(String::as_str))
    }

    fn validate(&self) -> Result<(), ParamError> {
        if self.cmd.trim().is_empty() {
            return Err(ParamError::new(
                "cmd",
                "expected a shell command, found an empty string",
            ));
        }
        for name in self.inputs.keys().chain(self.env.keys()) {
            if !is_env_name(name) {
                let field = if self.inputs.contains_key(name) {
                    "inputs"
                } else {
                    "env"
                };
                return Err(ParamError::new(
                    format!("{field}.{name}"),
                    format!(
                        "`{name}` is not usable as an environment variable name: expected letters, digits and `_`, not starting with a digit"
                    ),
                ));
            }
        }
        for (name, paths) in &self.inputs {
            if paths.paths().iter().any(|p| p.is_empty()) {
                return Err(ParamError::new(
                    format!("inputs.{name}"),
                    "expected a path, found an empty string",
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, output) in self.outputs.iter().enumerate() {
            if !is_plain_relative(output) {
                return Err(ParamError::new(
                    format!("outputs[{i}]"),
                    format!("expected a relative path inside the stage's output directory (no `..`, not absolute), found `{output}`"),
                ));
            }
            if !seen.insert(output.trim_end_matches('/')) {
                return Err(ParamError::new(
                    format!("outputs[{i}]"),
                    format!("output `{output}` is declared twice"),
                ));
            }
        }
        Ok(())
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_one_or_many_inputs() {
        let params = CommandParams::parse(&json!({
            "cmd": "cat $a $b > out.txt",
            "inputs": {"a": "/x", "b": ["/y", "/z"]},
            "outputs": ["out.txt"],
        }))
        .unwrap();
        assert_eq!(params.input_paths().collect::<Vec<_>>(), ["/x", "/y", "/z"]);
    }

    #[test]
    fn rejects_unknown_keys_with_their_path() {
        let err = CommandParams::parse(&json!({"cmd": "true", "outptus": []})).unwrap_err();
        assert!(err.message.contains("unknown field `outptus`"), "{err}");
    }

    #[test]
    fn rejects_type_errors_with_their_path() {
        let err = CommandParams::parse(&json!({"cmd": "true", "outputs": [1]})).unwrap_err();
        assert_eq!(err.path, "outputs[0]");
        assert!(err.message.contains("expected a string"), "{err}");
    }

    #[test]
    fn rejects_escaping_outputs_and_bad_env_names() {
        let err = CommandParams::parse(&json!({"cmd": "true", "outputs": ["../x"]})).unwrap_err();
        assert_eq!(err.path, "outputs[0]");
        let err =
            CommandParams::parse(&json!({"cmd": "true", "inputs": {"1x": "/a"}})).unwrap_err();
        assert_eq!(err.path, "inputs.1x");
        let err = CommandParams::parse(&json!({"cmd": " "})).unwrap_err();
        assert_eq!(err.path, "cmd");
    }
}
