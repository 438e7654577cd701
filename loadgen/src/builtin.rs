//! The built-in scenarios: the files of this crate's `scenarios/` directory (the scenario files
//! and the traces they replay), embedded in the binaries, so that `amplitude-loadgen run NAME`
//! and the conformance suite work from any directory and after `cargo install`
//! (docs/adr/006-built-in-scenarios-and-adapters.md).
//!
//! A built-in scenario is used from a file: [`materialise_scenarios`] writes the set into a
//! per-version cache directory (`<cache>/<version>/scenarios/`, see [`kit_cache_dir`]), so
//! that what reads scenarios by path (relative trace paths, errors naming `FILE:LINE`, the
//! conformance runner) reads them exactly as it reads the checkout's files.
//!
//! The list of files is explicit: only tracked source files are embedded, never whatever else
//! sits in the directory; a test checks that it matches the directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A text file embedded in a binary: where it goes, relative to the directory it is
/// materialised into (`/`-separated), and its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedFile {
    /// Path relative to the directory it belongs in, e.g. `traces/sample-export.jsonl`.
    pub path: &'static str,
    /// The file's contents.
    pub contents: &'static str,
}

impl EmbeddedFile {
    /// The scenario name of a top-level `NAME.toml`; `None` for any other file (traces).
    pub fn scenario_name(&self) -> Option<&'static str> {
        self.path
            .strip_suffix(".toml")
            .filter(|stem| !stem.contains('/'))
    }
}

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(EmbeddedFile {
            path: $path,
            contents: include_str!(concat!("../scenarios/", $path)),
        }),*]
    };
}

/// Every file of the built-in set, sorted by path.
static FILES: &[EmbeddedFile] = embed![
    "browser-offline-window.toml",
    "browser-page-hide.toml",
    "browser-restart-stored-events.toml",
    "browser-throttled-device.toml",
    "committed-500.toml",
    "dirty-data.toml",
    "eu-project.toml",
    "heavy-hitter.toml",
    "launch-spike.toml",
    "nightly-backfill.toml",
    "outage-recovery.toml",
    "property-storm.toml",
    "sdk-400-names-nothing.toml",
    "sdk-413-batch-recovery.toml",
    "sdk-connection-refused.toml",
    "sdk-daily-quota-backlog.toml",
    "sdk-empty-200-body.toml",
    "sdk-events-without-ids.toml",
    "sdk-flush-meets-503.toml",
    "sdk-flush-then-exit.toml",
    "sdk-invalid-api-key.toml",
    "sdk-long-outage.toml",
    "sdk-one-invalid-event.toml",
    "sdk-one-user-failing.toml",
    "sdk-outage-outlasts-retries.toml",
    "sdk-payload-too-large.toml",
    "sdk-restart-batch-in-flight.toml",
    "sdk-restart-mid-outage.toml",
    "sdk-server-starts-late.toml",
    "sdk-shutdown-429.toml",
    "sdk-shutdown-5xx.toml",
    "sdk-throttled-device.toml",
    "sdk-wrong-region-key.toml",
    "session-bursts.toml",
    "steady-trickle.toml",
    "trace-replay.toml",
    "traces/missing-ids.jsonl",
    "traces/sample-export.jsonl",
];

/// The environment variable that overrides the kit's cache directory.
pub const CACHE_DIR_ENV: &str = "AMPLITUDE_KIT_CACHE_DIR";

/// Why a built-in scenario could not be found or written out.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// The argument is not a file and no built-in scenario has that name.
    #[error(
        "no scenario `{name}`: not a file, and no built-in scenario has that name (a path with \
         a `/` or ending in .toml is read as a file); the built-in scenarios are: {}",
        known.join(", ")
    )]
    Unknown {
        /// The name given.
        name: String,
        /// Every built-in name.
        known: Vec<&'static str>,
    },
    /// No cache directory could be derived from the environment.
    #[error(
        "no cache directory for the built-in files: set AMPLITUDE_KIT_CACHE_DIR (or XDG_CACHE_HOME or HOME)"
    )]
    NoCacheDir,
    /// Creating or writing a file of the cache failed.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Every file of the built-in set (scenario files and traces), sorted by path.
pub fn files() -> &'static [EmbeddedFile] {
    FILES
}

/// The names of the built-in scenarios (their file stems, which are also their `name`),
/// sorted.
pub fn names() -> Vec<&'static str> {
    FILES
        .iter()
        .filter_map(EmbeddedFile::scenario_name)
        .collect()
}

/// The built-in scenario called `name`.
pub fn scenario(name: &str) -> Option<&'static EmbeddedFile> {
    FILES.iter().find(|f| f.scenario_name() == Some(name))
}

/// What `--list` shows of a built-in scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Its name (what `run NAME` and `--scenario NAME` take).
    pub name: &'static str,
    /// Its `description` field: the traffic it models.
    pub description: String,
    /// The first sentence after `Should provoke:` in the file's header comment: what a
    /// sender meets in it.
    pub provokes: String,
    /// The scenario's text.
    pub text: &'static str,
}

/// Every built-in scenario's summary, in name order.
pub fn summaries() -> Vec<Summary> {
    FILES
        .iter()
        .filter_map(|f| {
            let name = f.scenario_name()?;
            let description = toml::from_str::<toml::Table>(f.contents)
                .ok()
                .and_then(|t| {
                    t.get("description")
                        .and_then(toml::Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            Some(Summary {
                name,
                description,
                provokes: should_provoke(f.contents).unwrap_or_default(),
                text: f.contents,
            })
        })
        .collect()
}

/// The header comment (the leading `#` lines) as one line of text.
fn header(text: &str) -> String {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first sentence after `Should provoke:` in the header comment.
fn should_provoke(text: &str) -> Option<String> {
    const LABEL: &str = "Should provoke:";
    let header = header(text);
    let rest = header
        .get(header.find(LABEL)? + LABEL.len()..)?
        .trim_start();
    Some(first_sentence(rest).to_owned())
}

/// Up to the first `.` followed by a space or the end, outside parentheses.
fn first_sentence(s: &str) -> &str {
    let mut depth = 0_i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '.' if depth <= 0 => {
                let end = i + c.len_utf8();
                if s.get(end..)
                    .is_none_or(|r| r.is_empty() || r.starts_with(' '))
                {
                    return s.get(..end).unwrap_or(s);
                }
            }
            _ => {}
        }
    }
    s
}

/// The kit's cache directory: `$AMPLITUDE_KIT_CACHE_DIR` when set, else
/// `$XDG_CACHE_HOME/amplitude-kit`, else `$HOME/.cache/amplitude-kit` (`%LOCALAPPDATA%`
/// on Windows), made absolute. Each crate keeps its files under `<this>/<its version>/`.
///
/// # Errors
/// [`BuiltinError::NoCacheDir`] when none of those variables is set.
pub fn kit_cache_dir() -> Result<PathBuf, BuiltinError> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = if let Some(d) = var(CACHE_DIR_ENV) {
        d
    } else if let Some(x) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        x.join("amplitude-kit")
    } else if let Some(h) = var("HOME") {
        h.join(".cache").join("amplitude-kit")
    } else if let Some(l) = var("LOCALAPPDATA") {
        l.join("amplitude-kit")
    } else {
        return Err(BuiltinError::NoCacheDir);
    };
    std::path::absolute(&dir).map_err(|source| BuiltinError::Io { path: dir, source })
}

/// Writes `files` under `dir` (creating directories): each file whose contents differ from
/// what is there, through a temporary file and a rename, so a concurrent reader sees the old
/// or the new file whole. Leaves every other file of `dir` alone (an adapter's installed
/// dependencies, for one). Files ending in `.sh` are made executable on Unix.
///
/// # Errors
/// [`BuiltinError::Io`] naming the file or directory that could not be written.
pub fn materialise(files: &[EmbeddedFile], dir: &Path) -> Result<(), BuiltinError> {
    static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuiltinError::Io { path, source }
    };
    for f in files {
        let path = f.path.split('/').fold(dir.to_path_buf(), |p, c| p.join(c));
        let parent = path.parent().unwrap_or(dir);
        if std::fs::read(&path).is_ok_and(|old| old == f.contents.as_bytes()) {
            continue;
        }
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let tmp = parent.join(format!(
            ".{}.{}-{}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&tmp, f.contents).map_err(io(&tmp))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if f.path.ends_with(".sh") {
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                    .map_err(io(&tmp))?;
            }
        }
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&path)(e));
        }
    }
    Ok(())
}

/// Writes the built-in set into `<cache_root>/<this crate's version>/scenarios/` and returns
/// that directory (the default suite of the conformance runner is its `*.toml`).
///
/// # Errors
/// [`BuiltinError::Io`] when it cannot be written.
pub fn materialise_scenarios(cache_root: &Path) -> Result<PathBuf, BuiltinError> {
    let dir = cache_root.join(env!("CARGO_PKG_VERSION")).join("scenarios");
    materialise(FILES, &dir)?;
    Ok(dir)
}

/// Whether a scenario argument names a file or a built-in scenario: a path that exists,
/// contains a `/` (or the platform's separator) or ends in `.toml` is a file (`Ok(None)`);
/// otherwise it is a built-in name (`Ok(Some(file))`).
///
/// # Errors
/// [`BuiltinError::Unknown`], listing the built-in names, when it is neither.
pub fn lookup(arg: &Path) -> Result<Option<&'static EmbeddedFile>, BuiltinError> {
    let Some(s) = arg.to_str() else {
        return Ok(None);
    };
    if s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) || s.ends_with(".toml") {
        return Ok(None);
    }
    if arg.exists() {
        return Ok(None);
    }
    match scenario(s) {
        Some(f) => Ok(Some(f)),
        None => Err(BuiltinError::Unknown {
            name: s.to_owned(),
            known: names(),
        }),
    }
}

/// The file to read for a scenario argument (see [`lookup`]): the path itself, or the
/// built-in scenario materialised into the kit's cache directory ([`kit_cache_dir`]).
///
/// # Errors
/// [`BuiltinError::Unknown`] for an unknown name; [`BuiltinError::NoCacheDir`] and
/// [`BuiltinError::Io`] when the built-in set cannot be written out.
pub fn resolve(arg: &Path) -> Result<PathBuf, BuiltinError> {
    match lookup(arg)? {
        None => Ok(arg.to_path_buf()),
        Some(f) => Ok(materialise_scenarios(&kit_cache_dir()?)?.join(f.path)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The scenario directory of the source tree (`*.toml`, `traces/*.jsonl`), sorted.
    fn on_disk() -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut out = Vec::new();
        for (sub, ext) in [("", "toml"), ("traces/", "jsonl")] {
            for e in std::fs::read_dir(dir.join(sub)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == ext) {
                    let name = p.file_name().unwrap().to_str().unwrap();
                    out.push(format!("{sub}{name}"));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_embedded_list_is_the_directory_sorted() {
        let listed: Vec<String> = FILES.iter().map(|f| f.path.to_owned()).collect();
        assert_eq!(
            listed,
            on_disk(),
            "update the list in loadgen/src/builtin.rs (sorted)"
        );
    }

    #[test]
    fn first_sentence_skips_parentheses_and_inner_dots() {
        assert_eq!(first_sentence("nothing. Every event."), "nothing.");
        assert_eq!(
            first_sentence("retries (spec §5.5. again) with 1.5 s backoff. More."),
            "retries (spec §5.5. again) with 1.5 s backoff."
        );
        assert_eq!(first_sentence("no period"), "no period");
    }

    #[test]
    fn arguments_are_files_or_builtin_names() {
        assert_eq!(lookup(Path::new("x/steady-trickle")).unwrap(), None);
        assert_eq!(lookup(Path::new("steady-trickle.toml")).unwrap(), None);
        assert_eq!(
            lookup(Path::new("steady-trickle")).unwrap().map(|f| f.path),
            Some("steady-trickle.toml")
        );
        let err = lookup(Path::new("no-such-scenario")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no scenario `no-such-scenario`"), "{msg}");
        for name in names() {
            assert!(msg.contains(name), "{msg}");
        }
    }

    #[test]
    fn materialise_writes_the_set_and_keeps_other_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = materialise_scenarios(root.path()).unwrap();
        assert_eq!(
            dir,
            root.path()
                .join(env!("CARGO_PKG_VERSION"))
                .join("scenarios")
        );
        for f in FILES {
            assert_eq!(
                std::fs::read_to_string(dir.join(f.path)).unwrap(),
                f.contents
            );
        }
        // A changed file is rewritten; a foreign file stays; no temporary file is left.
        std::fs::write(dir.join("steady-trickle.toml"), "edited").unwrap();
        std::fs::write(dir.join("mine.txt"), "keep").unwrap();
        materialise_scenarios(root.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("steady-trickle.toml")).unwrap(),
            scenario("steady-trickle").unwrap().contents
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("mine.txt")).unwrap(),
            "keep"
        );
        let stray: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
    }
}
