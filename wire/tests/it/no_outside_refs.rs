//! The repository stands on its own:
//!
//! - no text file refers to material outside it (the team's private spec and design folders,
//!   or a developer's machine);
//! - every `spec \u{a7}N` citation in a `.rs`, `.md`, `.sh` or `.toml` file resolves to a
//!   section heading of `docs/amplitude-behaviour.md`, and every `#K` / `item K` after it to an
//!   item of that section.
//!
//! Every section sign in those files cites `docs/amplitude-behaviour.md`; cite other documents
//! without it. The needles below are built from pieces so this file does not match itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Text that points outside the repository.
const NEEDLES: &[&str] = &[
    concat!("shared", "/spec"),
    concat!("shared", "/design"),
    concat!("..", "/shared"),
    concat!("/wo", "rk/"),
];

/// The behaviour reference every citation points into, relative to the repository root.
const BEHAVIOUR_DOC: &str = "docs/amplitude-behaviour.md";

/// Extensions whose files are searched for citations.
const CITING_EXTENSIONS: &[&str] = &["rs", "md", "sh", "toml"];

/// The section sign, written as an escape so this file cites nothing.
const SECTION_SIGN: char = '\u{a7}';

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("wire/ has a parent directory")
        .to_path_buf()
}

/// Directories never walked: build output, VCS data, installed dependencies.
fn skipped_dir(name: &str) -> bool {
    name == ".git" || name == "node_modules" || name == ".venv" || name.starts_with("target")
}

/// Every text file under `dir` (binary files — any NUL byte — left out), sorted, with its
/// contents.
fn text_files(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // `file_type` does not follow symlinks: a linked directory is not walked.
        let file_type = entry
            .file_type()
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if name == ".git" {
            // A directory in a clone, a file pointing at the main repository in a worktree.
            continue;
        }
        if file_type.is_dir() {
            if !skipped_dir(&name) {
                text_files(&path, out);
            }
        } else if file_type.is_file() {
            let bytes =
                fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            if bytes.contains(&0) {
                continue;
            }
            out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
}

fn all_text_files() -> Vec<(String, String)> {
    let root = repo_root();
    let mut files = Vec::new();
    text_files(&root, &mut files);
    files
        .into_iter()
        .map(|(path, text)| {
            let rel = path.strip_prefix(&root).unwrap_or(path.as_path());
            (rel.to_string_lossy().replace('\\', "/"), text)
        })
        .collect()
}

#[test]
fn nothing_points_outside_the_repository() {
    let files = all_text_files();
    assert!(
        files.iter().any(|(p, _)| p == BEHAVIOUR_DOC),
        "the walk did not find {BEHAVIOUR_DOC}: wrong root {}?",
        repo_root().display()
    );
    let mut offenders = Vec::new();
    for (path, text) in &files {
        for (i, line) in text.lines().enumerate() {
            for needle in NEEDLES {
                if line.contains(needle) {
                    offenders.push(format!(
                        "{path}:{}: refers to `{needle}`: {}",
                        i + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "{} line(s) refer to material outside the repository (point at {BEHAVIOUR_DOC} or \
         docs/architecture.md instead):\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}

/// One `spec <sign>N` citation: the section, and the item range after it, if any.
#[derive(Debug)]
struct Citation {
    section: String,
    items: Option<(u32, u32)>,
}

/// Digits at the start of `s`, and the rest.
fn leading_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// The item range after a section number: ` #K`, ` #K-L`, ` #K-#L`, ` item K`, ` items K-L`.
fn item_range(rest: &str) -> Option<(u32, u32)> {
    let after = rest
        .strip_prefix(" #")
        .or_else(|| rest.strip_prefix(" items "))
        .or_else(|| rest.strip_prefix(" item "))?;
    let (first, rest) = leading_number(after)?;
    let last = rest
        .strip_prefix('-')
        .or_else(|| rest.strip_prefix('\u{2013}'))
        .map(|r| r.strip_prefix('#').unwrap_or(r))
        .and_then(leading_number)
        .map_or(first, |(n, _)| n);
    Some((first, last.max(first)))
}

/// Every citation on one line.
fn citations(line: &str) -> Vec<Citation> {
    let mut found = Vec::new();
    for (at, _) in line.match_indices(SECTION_SIGN) {
        let after = &line[at + SECTION_SIGN.len_utf8()..];
        let Some((major, rest)) = leading_number(after) else {
            continue;
        };
        let (section, rest) = match rest.strip_prefix('.').and_then(leading_number) {
            Some((minor, rest)) => (format!("{major}.{minor}"), rest),
            None => (major.to_string(), rest),
        };
        found.push(Citation {
            section,
            items: item_range(rest),
        });
    }
    found
}

/// The sections of the behaviour reference (`## 5.` gives `5`, `### 5.4` gives `5.4`), each
/// with the item numbers in its own body (before the next heading): table rows `| K | …` and
/// ordered-list lines `K. …`.
fn sections(doc: &str) -> BTreeMap<String, BTreeSet<u32>> {
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_fence = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let title = line.trim_start_matches('#');
        if title.len() < line.len() && title.starts_with(' ') {
            // An ATX heading: hashes, then a space (`#1` at the start of a line is text).
            let title = title.trim_start();
            let id = title
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches('.');
            let numbered = !id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '.');
            current = numbered.then(|| id.to_owned());
            if let Some(id) = &current {
                out.entry(id.clone()).or_default();
            }
            continue;
        }
        let Some(id) = &current else {
            continue;
        };
        let item = if let Some(row) = line.trim_start().strip_prefix('|') {
            let cell = row.split('|').next().unwrap_or("").trim();
            cell.parse::<u32>().ok()
        } else {
            leading_number(line).and_then(|(n, rest)| rest.starts_with(". ").then_some(n))
        };
        if let Some(n) = item {
            out.entry(id.clone()).or_default().insert(n);
        }
    }
    out
}

#[test]
fn every_spec_citation_resolves() {
    let root = repo_root();
    let doc_path = root.join(BEHAVIOUR_DOC);
    let doc = fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", doc_path.display()));
    let sections = sections(&doc);
    assert!(
        sections.len() > 1,
        "{BEHAVIOUR_DOC} has no numbered headings (`## N. Title`, `### N.M Title`)"
    );
    let mut seen = 0usize;
    let mut offenders = Vec::new();
    for (path, text) in all_text_files() {
        let cites = Path::new(&path)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CITING_EXTENSIONS.contains(&e));
        if !cites {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            for c in citations(line) {
                seen += 1;
                let Some(items) = sections.get(&c.section) else {
                    offenders.push(format!(
                        "{path}:{}: {SECTION_SIGN}{} has no heading in {BEHAVIOUR_DOC}: {}",
                        i + 1,
                        c.section,
                        line.trim()
                    ));
                    continue;
                };
                if let Some((first, last)) = c.items {
                    for k in first..=last {
                        if !items.contains(&k) {
                            offenders.push(format!(
                                "{path}:{}: {SECTION_SIGN}{} has no item {k} in {BEHAVIOUR_DOC}: {}",
                                i + 1,
                                c.section,
                                line.trim()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        seen > 0,
        "no citations found: is the walk looking at the repository?"
    );
    assert!(
        offenders.is_empty(),
        "{} citation(s) do not resolve to {BEHAVIOUR_DOC}:\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}

#[test]
fn the_citation_parser_reads_every_form() {
    let s = SECTION_SIGN;
    let line =
        format!("spec {s}5.4, {s}14 item 4; {s}15 #19 and {s}14.1 #3-4, {s}8.1-{s}8.3, end {s}9.");
    let got: Vec<(String, Option<(u32, u32)>)> = citations(&line)
        .into_iter()
        .map(|c| (c.section, c.items))
        .collect();
    let want: Vec<(String, Option<(u32, u32)>)> = vec![
        ("5.4".into(), None),
        ("14".into(), Some((4, 4))),
        ("15".into(), Some((19, 19))),
        ("14.1".into(), Some((3, 4))),
        ("8.1".into(), None),
        ("8.3".into(), None),
        ("9".into(), None),
    ];
    assert_eq!(got, want);

    let doc = "# Title\n## 0. Intro\n#1 is not a heading\n### 0.1 Labels\n| Label | x |\n## 14. List\n1. one\n2. two\n### 14.1 Vectors\n| # | a |\n|---|---|\n| 7 | b |\n```sh\n# 3. not a heading\n```\n";
    let secs = sections(doc);
    assert_eq!(
        secs.keys().cloned().collect::<Vec<_>>(),
        vec!["0", "0.1", "14", "14.1"]
    );
    assert_eq!(secs["14"], BTreeSet::from([1, 2]));
    assert_eq!(secs["14.1"], BTreeSet::from([7]));
}
