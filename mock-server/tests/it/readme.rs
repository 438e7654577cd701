//! README.md's "Use the mock in your CI": every code block there is a byte-identical copy of
//! (a region of) the file its paragraph names ("From [`PATH`](PATH) ..."), and each of those files is run by a test: the
//! Rust example by `ci_example.rs`, the pytest file and the `node --test` file by
//! `tests/packages.rs`, the shell example by `any_language_example_runs` below. The GitHub
//! Actions workflow is only checked (`github_actions_example_is_well_formed`), not run. And
//! the packages' versions agree with the workspace's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use crate::common::process::{mock_binary, repo, run};
use serde_json::{Map, Value};
use std::process::Command;
use std::time::Duration;

const SECTION: &str = "## Use the mock in your CI";

/// The source files the section must quote, each at least once.
const SOURCES: &[&str] = &[
    "mock-server/tests/it/ci_example.rs",
    "packaging/python/tests/test_readme.py",
    "packaging/npm/test/with-sdk.test.mjs",
    "packaging/any-language/example.sh",
    "packaging/github-actions/example.yml",
];

/// One fenced code block of the README: its text (with a final newline), the line its fence
/// opens on, and its source: the file linked first in the paragraph right above it, which
/// must start with "From [`PATH`](PATH)".
struct Snippet {
    text: String,
    line: usize,
    source: Option<String>,
}

/// The file of the first markdown link `[..](PATH)` on `line` whose target is a path in the
/// repository (no URL, no anchor).
fn linked_path(line: &str) -> Option<String> {
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = after.find(')')?;
        let target = &after[..end];
        if !target.contains("://") && !target.starts_with('#') && !target.is_empty() {
            return Some(target.to_owned());
        }
        rest = &after[end..];
    }
    None
}

fn snippets(readme: &str) -> Vec<Snippet> {
    let start = readme
        .find(&format!("\n{SECTION}\n"))
        .unwrap_or_else(|| panic!("README.md has no `{SECTION}` section"));
    let first_line = readme[..start].lines().count() + 2;
    let body = &readme[start + 1..];
    let end = body[SECTION.len()..]
        .find("\n## ")
        .map_or(body.len(), |e| e + SECTION.len() + 1);
    let lines: Vec<&str> = body[..end].lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(fence) = lines[i].strip_prefix("```") {
            assert!(
                !fence.starts_with('`'),
                "README.md:{}: a ```` fence",
                first_line + i
            );
            // The paragraph right above the block: "From [`PATH`](PATH) ...".
            let above = lines[..i]
                .iter()
                .rev()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .collect::<Vec<_>>();
            let source = above
                .last()
                .filter(|first| first.starts_with("From ["))
                .and_then(|first| linked_path(first));
            let open = i;
            let mut text = String::new();
            i += 1;
            while i < lines.len() && lines[i] != "```" {
                text.push_str(lines[i]);
                text.push('\n');
                i += 1;
            }
            assert!(
                i < lines.len(),
                "README.md:{}: unclosed fence",
                first_line + open
            );
            out.push(Snippet {
                text,
                line: first_line + open,
                source,
            });
        }
        i += 1;
    }
    out
}

#[test]
fn readme_ci_snippets_are_copies_of_tested_files() {
    let repo = repo();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let snippets = snippets(&readme);
    let mut quoted = Vec::new();
    for s in &snippets {
        let source = s.source.as_deref().unwrap_or_else(|| {
            panic!(
                "README.md:{}: the paragraph above this snippet does not start with \"From [`PATH`](PATH)\"",
                s.line
            )
        });
        let file = std::fs::read_to_string(repo.join(source))
            .unwrap_or_else(|e| panic!("README.md:{}: source {source}: {e}", s.line));
        assert!(
            !s.text.trim().is_empty(),
            "README.md:{}: empty snippet",
            s.line
        );
        // A region of whole lines: at the start of the file or right after a newline.
        let whole_lines = file.starts_with(&s.text) || file.contains(&format!("\n{}", s.text));
        assert!(
            whole_lines,
            "README.md:{}: this snippet is not a byte-identical region of {source}; copy it again \
             from the file.\n--- snippet ---\n{}",
            s.line, s.text
        );
        quoted.push(source.to_owned());
    }
    for source in SOURCES {
        assert!(
            quoted.iter().any(|q| q == source),
            "`{SECTION}` quotes no snippet of {source} (quoted: {quoted:?})"
        );
    }
}

#[test]
fn any_language_example_runs() {
    // packaging/any-language/example.sh, with the binary cargo built on PATH: starts the mock on
    // port 0, reads its `listening on` line, posts one event, reads stats and events, stops it.
    let bin_dir = mock_binary().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let ran = run(
        "packaging/any-language/example.sh",
        Command::new("bash")
            .arg(repo().join("packaging/any-language/example.sh"))
            .env("PATH", path),
        Duration::from_secs(120),
    );
    for expected in [
        r#""code":200,"events_ingested":1"#,
        r#""events_stored":1"#,
        r#""event":{"user_id":"user-12345","event_type":"Song Played"}"#,
    ] {
        assert!(
            ran.stdout.contains(expected),
            "`{expected}` not in the example's output:\n{}\n--- stderr ---\n{}",
            ran.stdout,
            ran.stderr
        );
    }
}

// --- a YAML subset, enough to check the workflow's structure without a YAML dependency ---

struct Line {
    no: usize,
    indent: usize,
    text: String,
}

/// Non-blank, non-comment lines, trailing ` # comments` cut (outside quotes).
fn yaml_lines(src: &str) -> Result<Vec<Line>, String> {
    let mut out = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        if raw.contains('\t') {
            return Err(format!("line {}: a tab", i + 1));
        }
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut text = String::new();
        let (mut single, mut double) = (false, false);
        let mut prev = ' ';
        for c in trimmed.chars() {
            match c {
                '\'' if !double => single = !single,
                '"' if !single => double = !double,
                '#' if !single && !double && prev == ' ' => break,
                _ => {}
            }
            text.push(c);
            prev = c;
        }
        out.push(Line {
            no: i + 1,
            indent: raw.len() - trimmed.len(),
            text: text.trim_end().to_owned(),
        });
    }
    Ok(out)
}

fn yaml_scalar(s: &str) -> Value {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Value::Array(inner.split(',').map(yaml_scalar).collect());
    }
    let unquoted = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        .unwrap_or(s);
    Value::String(unquoted.to_owned())
}

/// Parses the block of lines at `indent` from `lines[*i]`: a sequence (`- ` items: scalars or
/// maps) or a map (`key: value`, `key:` + a nested block, `key: |` + literal lines). Scalars
/// stay strings; `[a, b]` is a list of them.
fn yaml_block(lines: &mut [Line], i: &mut usize, indent: usize) -> Result<Value, String> {
    if lines[*i].text.starts_with("- ") || lines[*i].text == "-" {
        let mut items = Vec::new();
        while *i < lines.len() && lines[*i].indent == indent && lines[*i].text.starts_with('-') {
            let rest = lines[*i].text[1..].trim_start().to_owned();
            if rest.is_empty() {
                *i += 1;
                let inner = lines.get(*i).map_or(0, |l| l.indent);
                if inner <= indent {
                    return Err(format!("line {}: empty sequence item", lines[*i - 1].no));
                }
                items.push(yaml_block(lines, i, inner)?);
            } else if !rest.contains(": ") && !rest.ends_with(':') {
                items.push(yaml_scalar(&rest));
                *i += 1;
            } else {
                let item_indent = indent + (lines[*i].text.len() - rest.len());
                lines[*i].indent = item_indent;
                lines[*i].text = rest;
                items.push(yaml_block(lines, i, item_indent)?);
            }
        }
        return Ok(Value::Array(items));
    }
    let mut map = Map::new();
    while *i < lines.len() && lines[*i].indent == indent {
        let line = &lines[*i];
        if line.text.starts_with('-') {
            return Err(format!("line {}: a sequence item inside a map", line.no));
        }
        let (key, value) = match line.text.split_once(": ") {
            Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
            None => match line.text.strip_suffix(':') {
                Some(k) => (k.trim().to_owned(), String::new()),
                None => return Err(format!("line {}: not `key: value`: {}", line.no, line.text)),
            },
        };
        let no = line.no;
        *i += 1;
        let value = if value == "|" || value == ">" {
            let mut text = String::new();
            while *i < lines.len() && lines[*i].indent > indent {
                text.push_str(&lines[*i].text);
                text.push('\n');
                *i += 1;
            }
            Value::String(text)
        } else if value.is_empty() {
            match lines.get(*i) {
                Some(next) if next.indent > indent => {
                    let inner = next.indent;
                    yaml_block(lines, i, inner)?
                }
                Some(next) if next.indent == indent && next.text.starts_with("- ") => {
                    yaml_block(lines, i, indent)?
                }
                _ => Value::Null,
            }
        } else {
            yaml_scalar(&value)
        };
        if map.insert(key.clone(), value).is_some() {
            return Err(format!("line {no}: duplicate key {key}"));
        }
    }
    if let Some(line) = lines.get(*i) {
        if line.indent > indent {
            return Err(format!("line {}: unexpected indentation", line.no));
        }
    }
    Ok(Value::Object(map))
}

fn parse_yaml(src: &str) -> Result<Value, String> {
    let mut lines = yaml_lines(src)?;
    if lines.is_empty() {
        return Err("empty".into());
    }
    let mut i = 0;
    let v = yaml_block(&mut lines, &mut i, 0)?;
    match lines.get(i) {
        Some(line) => Err(format!("line {}: not part of the document", line.no)),
        None => Ok(v),
    }
}

#[test]
fn the_yaml_subset_parser_rejects_what_it_should() {
    assert!(parse_yaml("a: 1\n  b: 2\n").is_err()); // indentation out of nowhere
    assert!(parse_yaml("a: 1\na: 2\n").is_err()); // duplicate key
    assert!(parse_yaml("a\n").is_err()); // not key: value
    assert!(parse_yaml("a:\n\tb: 1\n").is_err()); // a tab
    assert!(parse_yaml("a:\n  - b\n  c: 1\n").is_err()); // a map key inside a sequence
    let v = parse_yaml("a: [x, y]\nb:\n  - c: 1 # note\n    d: '#2'\n  - e\n").unwrap();
    assert_eq!(
        v,
        serde_json::json!({"a": ["x", "y"], "b": [{"c": "1", "d": "#2"}, "e"]})
    );
}

#[test]
fn github_actions_example_is_well_formed() {
    let repo = repo();
    let src = std::fs::read_to_string(repo.join("packaging/github-actions/example.yml")).unwrap();
    let wf = parse_yaml(&src).unwrap_or_else(|e| panic!("example.yml: {e}"));
    assert!(wf["name"].is_string(), "example.yml: no name");
    assert!(!wf["on"].is_null(), "example.yml: no `on`");
    let jobs = wf["jobs"].as_object().expect("example.yml: jobs is a map");
    assert!(!jobs.is_empty());
    let mut runs = Vec::new();
    for (name, job) in jobs {
        assert!(job["runs-on"].is_string(), "job {name}: no runs-on");
        let steps = job["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("job {name}: no steps"));
        assert!(!steps.is_empty(), "job {name}: no steps");
        for (k, step) in steps.iter().enumerate() {
            let step = step
                .as_object()
                .unwrap_or_else(|| panic!("job {name}, step {k}: not a map"));
            let known = [
                "name",
                "uses",
                "run",
                "with",
                "env",
                "if",
                "id",
                "working-directory",
            ];
            for key in step.keys() {
                assert!(
                    known.contains(&key.as_str()),
                    "job {name}, step {k}: key {key}"
                );
            }
            match (step.get("uses"), step.get("run")) {
                (Some(Value::String(u)), None) => {
                    assert!(
                        u.contains('@'),
                        "job {name}, step {k}: `uses: {u}` pins no version"
                    )
                }
                (None, Some(Value::String(r))) => runs.push(r.clone()),
                _ => panic!("job {name}, step {k}: exactly one of uses/run"),
            }
            if let Some(with) = step.get("with") {
                assert!(
                    with.is_object(),
                    "job {name}, step {k}: `with` is not a map"
                );
            }
        }
    }
    // What the commands use of amplitude-kit (checked out at amplitude-kit/) exists, but for
    // build outputs; the tarball names follow the npm packages' versions.
    let version = |p: &str| -> String {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(repo.join(p)).unwrap()).unwrap();
        v["version"].as_str().unwrap().to_owned()
    };
    let main = format!(
        "amplitude-mock-{}.tgz",
        version("packaging/npm/amplitude-mock/package.json")
    );
    let platform = format!(
        "amplitude-mock-linux-x64-{}.tgz",
        version("packaging/npm/amplitude-mock-linux-x64/package.json")
    );
    let words: Vec<&str> = runs.iter().flat_map(|r| r.split_whitespace()).collect();
    let mut kit_paths = 0;
    for word in &words {
        let word = word.trim_matches('"');
        if let Some(rel) = word.strip_prefix("amplitude-kit/") {
            kit_paths += 1;
            if !rel.starts_with("target/") {
                assert!(
                    repo.join(rel).exists(),
                    "example.yml uses {word}: no {rel} in the repository"
                );
            }
        }
        if word.ends_with(".tgz") {
            assert!(
                word.ends_with(&format!("/{main}")) || word.ends_with(&format!("/{platform}")),
                "example.yml installs {word}: build.sh makes {main} and {platform}"
            );
        }
    }
    assert!(
        kit_paths >= 3,
        "example.yml uses no amplitude-kit script: {runs:?}"
    );
    for script in ["packaging/python/build.sh", "packaging/npm/build.sh"] {
        assert!(
            words.iter().any(|w| w.ends_with(script)),
            "example.yml does not run {script}"
        );
    }
}

#[test]
fn package_versions_follow_the_workspace() {
    // The wheel takes its version from Cargo.toml (maturin); the npm packages state theirs,
    // and the helper's optional dependency names the platform package's exact version.
    let repo = repo();
    let json = |p: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(repo.join(p)).unwrap()).unwrap()
    };
    let workspace = env!("CARGO_PKG_VERSION");
    let main = json("packaging/npm/amplitude-mock/package.json");
    let platform = json("packaging/npm/amplitude-mock-linux-x64/package.json");
    assert_eq!(main["version"], workspace, "amplitude-mock's package.json");
    assert_eq!(platform["version"], workspace, "the platform package.json");
    let name = platform["name"].as_str().unwrap();
    assert_eq!(
        main["optionalDependencies"][name], workspace,
        "amplitude-mock's optional dependency on {name}"
    );
    assert_eq!(platform["os"], serde_json::json!(["linux"]));
    assert_eq!(platform["cpu"], serde_json::json!(["x64"]));
    let pyproject = std::fs::read_to_string(repo.join("packaging/python/pyproject.toml")).unwrap();
    assert!(
        pyproject.contains("dynamic = [\"version\"]")
            && pyproject.contains("manifest-path = \"../../mock-server/Cargo.toml\""),
        "pyproject.toml takes its version from mock-server/Cargo.toml"
    );
}
