//! Variables and matrices: resolves `vars` (with `--set` overrides and `${data}`), then
//! expands each stage into one instance per matrix cell with its params substituted.

use serde_json::{Map, Value};

use super::diag::Diagnostic;
use super::locate::{child, element};
use super::raw::{describe, is_identifier, RawStage};
use super::vars::{mentioned, scalar_text, substitute, SubstError};
use super::{yaml, Checker, Instance};
use electra_pipe_api::StagePlan;

/// The most cells one matrix may expand to.
pub const MAX_CELLS: usize = 1_000_000;

/// An instance before its references are resolved, with its `needs` still as text.
pub struct Expanded {
    /// The instance (refs, deps, plan not filled in yet).
    pub instance: Instance,
    /// `needs` selections after substitution, with their paths in the file.
    pub needs: Vec<(String, String)>,
}

impl Checker {
    fn substitution_diag(&self, path: &str, error: &SubstError, names: &[&str]) -> Diagnostic {
        match error {
            SubstError::Unknown(name) => self
                .at_value(path, format!("unknown variable `${{{name}}}`"))
                .found(format!("`${{{name}}}`"))
                .expected(format!("one of {}", names.iter().map(|n| format!("${{{n}}}")).collect::<Vec<_>>().join(", ")))
                .did_you_mean(name, names.iter().copied()),
            SubstError::NotScalar(name) => self
                .at_value(path, format!("variable `${{{name}}}` is a list or mapping and cannot be spliced into text"))
                .expected(format!("`${{{name}}}` as the whole value, or a scalar variable")),
            SubstError::Malformed(message) => self
                .at_value(path, format!("malformed variable: {message}"))
                .expected("`${name}`, or `$${` for a literal `${`"),
        }
    }

    /// Resolves every variable; `data` is the data directory. Reports unknown overrides,
    /// unknown names and cycles.
    pub(super) fn resolve_vars(
        &mut self,
        raw: &[(String, Value)],
        overrides: &[(String, String)],
        data_dir: &std::path::Path,
    ) -> Map<String, Value> {
        let mut pending: Map<String, Value> = raw.iter().cloned().collect();
        for (name, text) in overrides {
            if !pending.contains_key(name) {
                let known: Vec<&str> = raw.iter().map(|(n, _)| n.as_str()).collect();
                let message = if name == "data" {
                    "--set data=...: `data` is the data directory; use --data DIR".to_owned()
                } else {
                    format!("--set {name}=...: the pipeline declares no variable `{name}`")
                };
                let diag = self
                    .at(None, message)
                    .expected(if known.is_empty() {
                        "no --set: the pipeline has no `vars:`".to_owned()
                    } else {
                        format!("one of {}", known.join(", "))
                    })
                    .did_you_mean(name, known.iter().copied());
                self.push(diag);
                continue;
            }
            match yaml::parse_scalar(text) {
                Ok(value) => {
                    pending.insert(name.clone(), value);
                }
                Err(err) => {
                    let diag = self.at(None, format!("--set {name}={text}: {}", err.message));
                    self.push(diag);
                }
            }
        }
        let mut done = Map::new();
        done.insert(
            "data".to_owned(),
            Value::String(data_dir.to_string_lossy().into_owned()),
        );
        let names: Vec<String> = pending.keys().cloned().collect();
        for name in &names {
            let mut stack = Vec::new();
            self.resolve_var(name, &pending, &mut done, &mut stack);
        }
        done
    }

    fn resolve_var(
        &mut self,
        name: &str,
        pending: &Map<String, Value>,
        done: &mut Map<String, Value>,
        stack: &mut Vec<String>,
    ) {
        if done.contains_key(name) || !pending.contains_key(name) {
            return;
        }
        let path = child("vars", name);
        if let Some(start) = stack.iter().position(|n| n == name) {
            let mut cycle: Vec<&str> = stack[start..].iter().map(String::as_str).collect();
            cycle.push(name);
            let diag = self
                .at_value(
                    &path,
                    format!(
                        "variables refer to each other in a cycle: {}",
                        cycle.join(" → ")
                    ),
                )
                .expected("variables that can be resolved in some order");
            self.push(diag);
            // A placeholder, so that the cycle is reported once rather than at every use.
            done.insert(name.to_owned(), Value::String(format!("${{{name}}}")));
            return;
        }
        stack.push(name.to_owned());
        let raw = &pending[name];
        for mention in mentioned(raw) {
            self.resolve_var(&mention, pending, done, stack);
        }
        stack.pop();
        let value = {
            let lookup = |n: &str| done.get(n);
            substitute(raw, &lookup)
        };
        match value {
            Ok(value) => {
                done.insert(name.to_owned(), value);
            }
            Err((sub, error)) => {
                let mut names: Vec<&str> = pending.keys().map(String::as_str).collect();
                names.push("data");
                let diag = self.substitution_diag(&join(&path, &sub), &error, &names);
                self.push(diag);
                done.insert(name.to_owned(), Value::Null);
            }
        }
    }

    /// Expands one stage into its instances (one per matrix cell), run by `default_executor`
    /// unless the stage names one. Returns its axes too.
    pub(super) fn expand_stage(
        &mut self,
        stage: &RawStage,
        vars: &Map<String, Value>,
        default_executor: &str,
    ) -> Option<(Vec<String>, Vec<Expanded>)> {
        let path = child("stages", &stage.name);
        let Some(kind) = self.registry.get(&stage.kind).cloned() else {
            let names = self.registry.names();
            let diag = self
                .at_value(
                    &child(&path, "kind"),
                    format!("unknown stage kind `{}`", stage.kind),
                )
                .found(format!("`{}`", stage.kind))
                .expected(format!("one of the known kinds: {}", names.join(", ")))
                .did_you_mean(&stage.kind, names.iter().copied());
            self.push(diag);
            return None;
        };
        let axes = self.matrix_axes(stage, vars)?;
        let cells = cartesian(&axes);
        if cells.len() > MAX_CELLS {
            let diag = self
                .at_key(
                    &child(&path, "matrix"),
                    format!(
                        "the matrix of stage `{}` has {} cells",
                        stage.name,
                        cells.len()
                    ),
                )
                .expected(format!("at most {MAX_CELLS} cells"));
            self.push(diag);
            return None;
        }
        let mut names: Vec<&str> = vars.keys().map(String::as_str).collect();
        names.extend(axes.iter().map(|(a, _)| a.as_str()));
        let mut expanded = Vec::with_capacity(cells.len());
        for cell in cells {
            let lookup = |n: &str| {
                cell.iter()
                    .find(|(axis, _)| axis == n)
                    .map(|(_, v)| v)
                    .or_else(|| vars.get(n))
            };
            let params = match substitute(&stage.params, &lookup) {
                Ok(params) => params,
                Err((sub, error)) => {
                    let diag = self.substitution_diag(
                        &join(&child(&path, "params"), &sub),
                        &error,
                        &names,
                    );
                    self.push(diag);
                    return None;
                }
            };
            let mut needs = Vec::with_capacity(stage.needs.len());
            for (need, need_path) in &stage.needs {
                match substitute(&Value::String(need.clone()), &lookup) {
                    Ok(Value::String(s)) => needs.push((s, need_path.clone())),
                    Ok(other) => {
                        let diag = self
                            .at_value(need_path, "each entry of `needs` must be a stage selection")
                            .found(describe(&other));
                        self.push(diag);
                        return None;
                    }
                    Err((_, error)) => {
                        let diag = self.substitution_diag(need_path, &error, &names);
                        self.push(diag);
                        return None;
                    }
                }
            }
            let name = instance_name(&stage.name, &cell);
            expanded.push(Expanded {
                instance: Instance {
                    name,
                    stage: stage.name.clone(),
                    cell,
                    kind: kind.clone(),
                    params,
                    refs: Vec::new(),
                    deps: Vec::new(),
                    dep_sites: Vec::new(),
                    plan: StagePlan::default(),
                    data_inputs: Vec::new(),
                    retries: stage.retries,
                    resources: stage.resources.clone(),
                    executor: stage
                        .executor
                        .clone()
                        .unwrap_or_else(|| default_executor.to_owned()),
                },
                needs,
            });
        }
        Some((axes.into_iter().map(|(a, _)| a).collect(), expanded))
    }

    /// Checks and substitutes the matrix axes: names, non-empty lists of distinct simple scalars.
    fn matrix_axes(
        &mut self,
        stage: &RawStage,
        vars: &Map<String, Value>,
    ) -> Option<Vec<(String, Vec<Value>)>> {
        let mpath = child(&child("stages", &stage.name), "matrix");
        let mut axes = Vec::with_capacity(stage.matrix.len());
        let mut ok = true;
        for (axis, raw) in &stage.matrix {
            let apath = child(&mpath, axis);
            if !is_identifier(axis) || axis == "data" || vars.contains_key(axis) {
                let why = if is_identifier(axis) {
                    "it is already a variable name"
                } else {
                    "it is not a valid name"
                };
                let diag = self
                    .at_key(
                        &apath,
                        format!("matrix axis `{axis}` cannot be used: {why}"),
                    )
                    .expected("a name that is neither `data` nor one of `vars`");
                self.push(diag);
                ok = false;
                continue;
            }
            let lookup = |n: &str| vars.get(n);
            let values = match substitute(raw, &lookup) {
                Ok(v) => v,
                Err((sub, error)) => {
                    let names: Vec<&str> = vars.keys().map(String::as_str).collect();
                    let diag = self.substitution_diag(&join(&apath, &sub), &error, &names);
                    self.push(diag);
                    ok = false;
                    continue;
                }
            };
            let items = match values {
                Value::Array(items) if !items.is_empty() => items,
                other => {
                    let diag = self
                        .at_value(
                            &apath,
                            format!(
                                "matrix axis `{axis}` of stage `{}` has no values",
                                stage.name
                            ),
                        )
                        .found(describe(&other))
                        .expected("a non-empty list of values, e.g. `[1, 2, 3]`");
                    self.push(diag);
                    ok = false;
                    continue;
                }
            };
            let mut seen = std::collections::HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let ipath = element(&apath, i);
                let text = scalar_text(item);
                let problem = match &text {
                    None => Some(format!(
                        "matrix values must be strings, numbers or booleans, found {}",
                        describe(item)
                    )),
                    Some(t)
                        if t.is_empty()
                            || t.contains(|c: char| {
                                c.is_whitespace() || "[],=*/@$".contains(c)
                            }) =>
                    {
                        Some(format!(
                            "matrix value {t:?} cannot be used in an instance name"
                        ))
                    }
                    Some(t) if !seen.insert(t.clone()) => {
                        Some(format!("matrix value `{t}` appears twice in axis `{axis}`"))
                    }
                    Some(_) => None,
                };
                if let Some(message) = problem {
                    let diag = self.at_value(&ipath, message).expected(
                        "distinct single words or numbers (no spaces or any of `[],=*/@$`)",
                    );
                    self.push(diag);
                    ok = false;
                }
            }
            axes.push((axis.clone(), items));
        }
        ok.then_some(axes)
    }
}

/// `stage[axis=value,...]`, or just `stage` without axes.
pub fn instance_name(stage: &str, cell: &[(String, Value)]) -> String {
    if cell.is_empty() {
        return stage.to_owned();
    }
    let parts: Vec<String> = cell
        .iter()
        .map(|(axis, value)| format!("{axis}={}", scalar_text(value).unwrap_or_default()))
        .collect();
    format!("{stage}[{}]", parts.join(","))
}

/// Every combination of axis values, first axis outermost.
fn cartesian(axes: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    let mut cells: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (axis, values) in axes {
        cells = cells
            .into_iter()
            .flat_map(|cell| {
                values.iter().map(move |v| {
                    let mut next = cell.clone();
                    next.push((axis.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    cells
}

/// Joins a file path and a path relative to it (`a.b` + `c[1]` → `a.b.c[1]`).
pub(super) fn join(base: &str, sub: &str) -> String {
    match sub {
        "" => base.to_owned(),
        s if s.starts_with('[') => format!("{base}{s}"),
        s => child(base, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cartesian_is_row_major() {
        let cells = cartesian(&[
            ("t".into(), vec![json!("a"), json!("b")]),
            ("s".into(), vec![json!(1), json!(2)]),
        ]);
        let names: Vec<String> = cells.iter().map(|c| instance_name("ft", c)).collect();
        assert_eq!(
            names,
            ["ft[t=a,s=1]", "ft[t=a,s=2]", "ft[t=b,s=1]", "ft[t=b,s=2]"]
        );
    }

    #[test]
    fn joins_paths() {
        assert_eq!(join("a.b", "c[1]"), "a.b.c[1]");
        assert_eq!(join("a.b", "[1]"), "a.b[1]");
        assert_eq!(join("a.b", ""), "a.b");
    }
}
