//! Cross-stage checks: resolves `@stage/output` references and `needs` into dependencies,
//! asks each kind to validate its params, checks referenced outputs exist, and collects
//! the data inputs to digest.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::Value;

use super::expand::join;
use super::locate::{child, element};
use super::reference::{classify, Condition, ParamString, Selection};
use super::vars::scalar_text;
use super::{Checker, Instance, RefSlot};

/// Each stage's matrix axes and the range of its instances.
#[derive(Default)]
pub struct StageIndex {
    stages: HashMap<String, (Vec<String>, Range<usize>)>,
    order: Vec<String>,
}

impl StageIndex {
    /// Records a stage's axes and instance range.
    pub fn insert(&mut self, stage: &str, axes: Vec<String>, range: Range<usize>) {
        self.order.push(stage.to_owned());
        self.stages.insert(stage.to_owned(), (axes, range));
    }
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl Checker {
    /// Fills in every instance's refs, deps, plan and data inputs.
    pub(super) fn resolve(
        &mut self,
        instances: &mut [Instance],
        needs: &[Vec<(String, String)>],
        stages: &StageIndex,
    ) {
        let names: Vec<String> = instances.iter().map(|i| i.name.clone()).collect();
        let cells: Vec<Vec<(String, String)>> = instances
            .iter()
            .map(|i| {
                i.cell
                    .iter()
                    .map(|(a, v)| (a.clone(), scalar_text(v).unwrap_or_default()))
                    .collect()
            })
            .collect();
        let lookup = Lookup {
            stages,
            names: &names,
            cells: &cells,
        };
        for (i, instance) in instances.iter_mut().enumerate() {
            let base = child(&child("stages", &instance.stage), "params");
            let mut params = std::mem::take(&mut instance.params);
            let mut refs = Vec::new();
            let mut sites = Vec::new();
            self.resolve_value(&mut params, &base, "", &lookup, &mut refs, &mut sites);
            instance.params = params;
            instance.refs = refs;
            for (text, path) in &needs[i] {
                match Selection::parse(text) {
                    Ok(selection) => {
                        if let Some(targets) = self.select(&selection, path, &lookup) {
                            sites.extend(targets.into_iter().map(|t| (t, path.clone())));
                        }
                    }
                    Err(message) => {
                        let diag = self
                            .at_value(path, format!("malformed `needs` entry: {message}"))
                            .expected("`stage`, `stage[*]` or `stage[axis=value,...]`");
                        self.push(diag);
                    }
                }
            }
            let mut deps: Vec<usize> = sites.iter().map(|(t, _)| *t).collect();
            deps.sort_unstable();
            deps.dedup();
            instance.deps = deps;
            instance.dep_sites = sites;
        }
        if self.failed() {
            return;
        }
        self.plan_all(instances);
        if self.failed() {
            return;
        }
        self.inline_stage_params(instances, &lookup);
        if self.failed() {
            return;
        }
        self.check_outputs(instances);
    }

    /// Replaces every param a kind declared in `StagePlan::stage_params` (a stage name, or a
    /// selection of one cell) by `{"stage": <instance>, "params": <its params>}`.
    fn inline_stage_params(&mut self, instances: &mut [Instance], lookup: &Lookup<'_>) {
        for i in 0..instances.len() {
            for field in instances[i].plan.stage_params.clone() {
                let path = join(
                    &child(&child("stages", &instances[i].stage), "params"),
                    &field,
                );
                let pointer: String = field
                    .split('.')
                    .map(|key| format!("/{}", pointer_escape(key)))
                    .collect();
                let Some(Value::String(text)) = instances[i].params.pointer(&pointer).cloned()
                else {
                    continue;
                };
                let selection = match Selection::parse(&text) {
                    Ok(selection) => selection,
                    Err(message) => {
                        let diag = self
                            .at_value(&path, format!("malformed stage name: {message}"))
                            .expected("`stage` or `stage[axis=value,...]`");
                        self.push(diag);
                        continue;
                    }
                };
                let Some(targets) = self.select(&selection, &path, lookup) else {
                    continue;
                };
                if targets.len() != 1 || targets[0] == i {
                    let found = if targets.len() == 1 {
                        "the stage itself".to_owned()
                    } else {
                        format!("{} instances", targets.len())
                    };
                    let diag = self
                        .at_value(
                            &path,
                            format!("`{text}` must name exactly one other stage instance"),
                        )
                        .found(found)
                        .expected("one cell, e.g. `stage[axis=value]`");
                    self.push(diag);
                    continue;
                }
                let target = &instances[targets[0]];
                let inlined = serde_json::json!({"stage": target.name, "params": target.params});
                if let Some(slot) = instances[i].params.pointer_mut(&pointer) {
                    *slot = inlined;
                }
            }
        }
    }

    fn resolve_value(
        &mut self,
        value: &mut Value,
        path: &str,
        pointer: &str,
        lookup: &Lookup<'_>,
        refs: &mut Vec<RefSlot>,
        sites: &mut Vec<(usize, String)>,
    ) {
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.resolve_value(
                        item,
                        &element(path, i),
                        &format!("{pointer}/{i}"),
                        lookup,
                        refs,
                        sites,
                    );
                }
            }
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    self.resolve_value(
                        item,
                        &child(path, key),
                        &format!("{pointer}/{}", pointer_escape(key)),
                        lookup,
                        refs,
                        sites,
                    );
                }
            }
            Value::String(text) => {
                match classify(text) {
                    Ok(ParamString::Literal(literal)) => *text = literal,
                    Ok(ParamString::Reference(reference)) => {
                        let Some(targets) = self.select(&reference.selection, path, lookup) else {
                            return;
                        };
                        let axes = &lookup.stages.stages[&reference.selection.stage].0;
                        let slot = |target: usize, pointer: String| RefSlot {
                            pointer,
                            target,
                            output: reference.output.clone(),
                            subpath: None,
                        };
                        let render = |target: usize| {
                            Value::String(format!("@{}/{}", lookup.names[target], reference.output))
                        };
                        sites.extend(targets.iter().map(|&t| (t, path.to_owned())));
                        if reference.selection.is_multi(axes) {
                            refs.extend(
                                targets
                                    .iter()
                                    .enumerate()
                                    .map(|(j, &t)| slot(t, format!("{pointer}/{j}"))),
                            );
                            *value = Value::Array(targets.iter().map(|&t| render(t)).collect());
                        } else {
                            refs.push(slot(targets[0], pointer.to_owned()));
                            *value = render(targets[0]);
                        }
                    }
                    Err(message) => {
                        let diag = self
                        .at_value(path, format!("malformed reference: {message}"))
                        .expected("`@stage/output`, `@stage[axis=value]/output` or `@stage[*]/output`");
                        self.push(diag);
                    }
                }
            }
            _ => {}
        }
    }

    /// The instances a selection names, or a diagnostic at `path`.
    fn select(
        &mut self,
        selection: &Selection,
        path: &str,
        lookup: &Lookup<'_>,
    ) -> Option<Vec<usize>> {
        let Some((axes, range)) = lookup.stages.stages.get(&selection.stage) else {
            let known: Vec<&str> = lookup.stages.order.iter().map(String::as_str).collect();
            let diag = self
                .at_value(
                    path,
                    format!("reference to a missing stage `{}`", selection.stage),
                )
                .found(format!("`{selection}`"))
                .expected(format!("one of the stages: {}", known.join(", ")))
                .did_you_mean(&selection.stage, known.iter().copied());
            self.push(diag);
            return None;
        };
        let conditions = selection.conditions.as_deref().unwrap_or(&[]);
        for condition in conditions {
            if let Condition::Axis { key, .. } = condition {
                if !axes.contains(key) {
                    let diag = self
                        .at_value(
                            path,
                            format!("stage `{}` has no matrix axis `{key}`", selection.stage),
                        )
                        .found(format!("`{selection}`"))
                        .expected(if axes.is_empty() {
                            "no selection: the stage has no matrix".to_owned()
                        } else {
                            format!("one of its axes: {}", axes.join(", "))
                        })
                        .did_you_mean(key, axes.iter().map(String::as_str));
                    self.push(diag);
                    return None;
                }
            }
        }
        let matches: Vec<usize> = range
            .clone()
            .filter(|&i| {
                conditions.iter().all(|c| match c {
                    Condition::All => true,
                    Condition::Axis { key, value } => {
                        value == "*" || lookup.cells[i].iter().any(|(a, v)| a == key && v == value)
                    }
                })
            })
            .collect();
        if matches.is_empty() {
            let values: Vec<String> = axes
                .iter()
                .map(|axis| {
                    let mut vals: Vec<&str> = range
                        .clone()
                        .filter_map(|i| {
                            lookup.cells[i]
                                .iter()
                                .find(|(a, _)| a == axis)
                                .map(|(_, v)| v.as_str())
                        })
                        .collect();
                    vals.dedup();
                    format!("{axis} ∈ {{{}}}", vals.join(", "))
                })
                .collect();
            let diag = self
                .at_value(
                    path,
                    format!(
                        "`{selection}` matches no instance of stage `{}`",
                        selection.stage
                    ),
                )
                .expected(format!("values it has: {}", values.join("; ")));
            self.push(diag);
            return None;
        }
        Some(matches)
    }

    /// Asks each instance's kind to validate its params and declare inputs and outputs.
    fn plan_all(&mut self, instances: &mut [Instance]) {
        let mut failed_stages = std::collections::HashSet::new();
        for instance in instances.iter_mut() {
            if failed_stages.contains(&instance.stage) {
                continue;
            }
            match instance.kind.plan(&instance.params) {
                Ok(plan) => instance.plan = plan,
                Err(err) => {
                    let path = join(
                        &child(&child("stages", &instance.stage), "params"),
                        &err.path,
                    );
                    let field = if err.path.is_empty() {
                        "params".to_owned()
                    } else {
                        format!("`{}`", err.path)
                    };
                    // An unknown key is pointed at by its name, a wrong value by the value.
                    let location = if err.message.starts_with("unknown field") {
                        self.locator.key(&path)
                    } else {
                        self.locator.value(&path)
                    };
                    let diag = self
                        .at(
                            location,
                            format!(
                                "invalid {field} for `{}` stage `{}`",
                                instance.kind.name(),
                                instance.name
                            ),
                        )
                        .found(err.message.clone())
                        .expected(format!(
                            "params that a `{}` stage accepts",
                            instance.kind.name()
                        ));
                    self.push(diag);
                    failed_stages.insert(instance.stage.clone());
                }
            }
        }
    }

    /// Checks referenced outputs are declared by their stage; collects data inputs.
    fn check_outputs(&mut self, instances: &mut [Instance]) {
        let outputs: Vec<Vec<String>> = instances.iter().map(|i| i.plan.outputs.clone()).collect();
        for instance in instances.iter_mut() {
            let base = child(&child("stages", &instance.stage), "params");
            let ref_strings: std::collections::HashSet<String> = instance
                .refs
                .iter()
                .filter_map(|slot| {
                    instance
                        .params
                        .pointer(&slot.pointer)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .collect();
            for slot in &mut instance.refs {
                let declared = &outputs[slot.target];
                if declared.contains(&slot.output) {
                    continue;
                }
                if let Some(dir) = declared.iter().find(|d| {
                    slot.output
                        .starts_with(&format!("{}/", d.trim_end_matches('/')))
                }) {
                    slot.subpath =
                        Some(slot.output[dir.trim_end_matches('/').len() + 1..].to_owned());
                    slot.output = dir.clone();
                    continue;
                }
                let path = join(&base, &pointer_to_path(&slot.pointer));
                let target = &outputs[slot.target];
                let diag = self
                    .at_value(
                        &path,
                        format!("reference to a missing output `{}`", slot.output),
                    )
                    .expected(if target.is_empty() {
                        "nothing: that stage declares no outputs".to_owned()
                    } else {
                        format!("one of its outputs: {}", target.join(", "))
                    })
                    .did_you_mean(&slot.output, target.iter().map(String::as_str));
                self.push(diag);
            }
            for input in &instance.plan.inputs {
                if ref_strings.contains(input) {
                    continue;
                }
                if std::path::Path::new(input).is_absolute() {
                    instance.data_inputs.push(input.clone());
                } else {
                    let path = find_string(&instance.params, input)
                        .map_or_else(|| base.clone(), |p| join(&base, &p));
                    let diag = self
                        .at_value(&path, format!("input path `{input}` is relative"))
                        .expected(
                            "an absolute path: `${data}/...`, or a reference `@stage/output`",
                        );
                    self.push(diag);
                }
            }
            instance.data_inputs.sort();
            instance.data_inputs.dedup();
        }
    }

    /// Reports a dependency cycle, naming the instances on it.
    pub(super) fn report_cycle(&mut self, instances: &[Instance], cycle: &[usize]) {
        let names: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| instances[i].name.as_str())
            .collect();
        let first = &instances[cycle[0]];
        let next = cycle.get(1).copied().unwrap_or(cycle[0]);
        let site = first
            .dep_sites
            .iter()
            .find(|(t, _)| *t == next)
            .map_or_else(|| child("stages", &first.stage), |(_, p)| p.clone());
        let diag = self
            .at_value(
                &site,
                format!(
                    "stages depend on each other in a cycle: {}",
                    names.join(" → ")
                ),
            )
            .expected(
                "a pipeline without cycles: each stage may only use stages that do not use it",
            );
        self.push(diag);
    }
}

struct Lookup<'a> {
    stages: &'a StageIndex,
    names: &'a [String],
    cells: &'a [Vec<(String, String)>],
}

/// A JSON pointer (`/inputs/text`, `/files/0`) as a dotted path (`inputs.text`, `files[0]`).
fn pointer_to_path(pointer: &str) -> String {
    let mut path = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            path = element(&path, part.parse().unwrap_or(0));
        } else {
            path = child(&path, &part);
        }
    }
    path
}

/// The dotted path of the first string leaf equal to `needle`.
fn find_string(value: &Value, needle: &str) -> Option<String> {
    match value {
        Value::String(s) if s == needle => Some(String::new()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_string(v, needle).map(|p| join(&element("", i), &p))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| find_string(v, needle).map(|p| join(k, &p))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_become_paths() {
        assert_eq!(pointer_to_path("/inputs/text"), "inputs.text");
        assert_eq!(pointer_to_path("/files/0"), "files[0]");
    }

    #[test]
    fn finds_strings() {
        let v = json!({"inputs": {"a": "/x", "b": ["/y"]}});
        assert_eq!(find_string(&v, "/y").as_deref(), Some("inputs.b[0]"));
        assert_eq!(find_string(&v, "/z"), None);
    }
}
