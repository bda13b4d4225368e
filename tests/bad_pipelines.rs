//! Every malformed pipeline in `tests/bad/` must fail `validate` (and `run`) with exit code 2,
//! no panic, and a message naming the file, line and column. Each file's first line says
//! what to expect: `# expect: LINE:COL | text | text ...` (the location is optional).

mod common;

use common::{text, Workspace};

struct Expectation {
    location: Option<String>,
    texts: Vec<String>,
}

fn expectation(path: &std::path::Path) -> Expectation {
    let source = std::fs::read_to_string(path).unwrap();
    let first = source.lines().next().unwrap_or_default();
    let spec = first
        .strip_prefix("# expect:")
        .unwrap_or_else(|| panic!("{} lacks an `# expect:` line", path.display()));
    let mut parts = spec
        .split('|')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .peekable();
    let is_location = |p: &String| {
        p.split_once(':')
            .is_some_and(|(l, c)| l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok())
    };
    let location = parts.next_if(is_location);
    Expectation {
        location,
        texts: parts.collect(),
    }
}

#[test]
fn every_malformed_pipeline_fails_with_a_located_message() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "at least 20 malformed pipelines, found {}",
        files.len()
    );
    let ws = Workspace::new();
    let mut failures = Vec::new();
    for file in &files {
        let expect = expectation(file);
        for command in ["validate", "run"] {
            let out = ws.run(&[command, file.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let mut problems = Vec::new();
            if out.status.code() != Some(2) {
                problems.push(format!("exit code {:?}, expected 2", out.status.code()));
            }
            if stderr.contains("panicked") {
                problems.push("it panicked".to_owned());
            }
            if let Some(location) = &expect.location {
                let want = format!("{}:{location}", file.display());
                if !stderr.contains(&want) {
                    problems.push(format!("no `{want}`"));
                }
            } else if !stderr.contains(&format!("--> {}", file.display())) {
                problems.push("the file is not named".to_owned());
            }
            for want in &expect.texts {
                if !stderr.contains(want.as_str()) {
                    problems.push(format!("no `{want}`"));
                }
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{} ({command}): {}\n{}",
                    file.display(),
                    problems.join("; "),
                    text(&out)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    let cache_entries = ws.cache().join("index").exists();
    let listing = ws.run(&["cache", "ls"]);
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("0 results"),
        "invalid pipelines ran nothing ({cache_entries})"
    );
}

#[test]
fn command_line_mistakes_are_invalid_input_too() {
    let ws = Workspace::new();
    let pipeline = ws.write(
        "p.yaml",
        "vars:\n  lines: 3\nstages:\n  s:\n    kind: command\n    params: { cmd: \"true\" }\n",
    );
    let out = ws.run(&["validate", pipeline.to_str().unwrap(), "--set", "line=4"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the pipeline declares no variable `line`")
            && stderr.contains("did you mean `lines`?"),
        "{stderr}"
    );

    let out = ws.run(&["validate", "does-not-exist.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot read pipeline file does-not-exist.yaml"),
        "{}",
        text(&out)
    );

    let out = ws.run(&[
        "validate",
        pipeline.to_str().unwrap(),
        "--set",
        "lines=[1, 2",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid YAML value"),
        "{}",
        text(&out)
    );
}
