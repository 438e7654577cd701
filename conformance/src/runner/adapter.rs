//! The official-SDK adapters (`conformance/adapters/<name>/`), embedded in the binary and
//! written out to a per-version cache directory before use, so that `--adapter NAME` works
//! from any directory and after `cargo install`
//! (docs/adr/006-built-in-scenarios-and-adapters.md). The adapter's `install.sh` then
//! creates its `.venv/` or `node_modules/` there, next to the files, as it would in the
//! checkout.

use amplitude_loadgen::builtin::{kit_cache_dir, materialise, EmbeddedFile};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// An SDK adapter the binary carries: its name (what `--adapter` takes) and its tracked files
/// (never an installed `.venv/` or `node_modules/`).
#[derive(Debug, Clone, Copy)]
pub struct Adapter {
    /// `amplitude-js`, `browser-sdk`, `legacy-node-sdk`, `node-sdk` or `python-sdk`.
    pub name: &'static str,
    /// Its files, paths relative to the adapter's directory.
    pub files: &'static [EmbeddedFile],
    /// Adapters whose directories it uses (written out beside it, e.g. `amplitude-js` runs
    /// the browser harness of `browser-sdk`).
    pub uses: &'static [&'static str],
}

macro_rules! adapter {
    ($name:literal $(uses $($dep:literal),+)?: $($file:literal),* $(,)?) => {
        Adapter {
            name: $name,
            files: &[$(EmbeddedFile {
                path: $file,
                contents: include_str!(concat!("../../adapters/", $name, "/", $file)),
            }),*],
            uses: &[$($($dep),+)?],
        }
    };
}

/// Every adapter the binary carries, sorted by name.
pub static ADAPTERS: &[Adapter] = &[
    adapter!("amplitude-js" uses "browser-sdk": "install.sh", "run.sh"),
    adapter!("browser-sdk": "adapter.mjs", "install.sh", "package-lock.json", "package.json",
        "page-amplitude-js.js", "page-browser-sdk.js", "run.sh"),
    adapter!("legacy-node-sdk": "adapter.mjs", "install.sh", "package-lock.json", "package.json", "run.sh"),
    adapter!("node-sdk": "adapter.mjs", "install.sh", "package-lock.json", "package.json", "run.sh"),
    adapter!("python-sdk": "adapter.py", "install.sh", "requirements.txt", "run.sh"),
];

/// The adapter called `name`.
///
/// # Errors
/// When there is none, naming the adapters there are.
pub(crate) fn adapter(name: &str) -> anyhow::Result<&'static Adapter> {
    ADAPTERS.iter().find(|a| a.name == name).with_context(|| {
        let names: Vec<&str> = ADAPTERS.iter().map(|a| a.name).collect();
        format!(
            "no adapter `{name}`; the adapters are: {}",
            names.join(", ")
        )
    })
}

/// Writes adapter `name`'s files into `<cache_root>/<this crate's version>/adapters/<name>/`
/// (only the files that differ; installed dependencies there are kept), and those of the
/// adapters it uses beside it, and returns that directory.
///
/// # Errors
/// An unknown adapter, or a file that cannot be written.
pub fn materialise_adapter(name: &str, cache_root: &Path) -> anyhow::Result<PathBuf> {
    let a = adapter(name)?;
    let base = cache_root.join(env!("CARGO_PKG_VERSION")).join("adapters");
    for dep in a.uses {
        materialise(adapter(dep)?.files, &base.join(dep))?;
    }
    let dir = base.join(a.name);
    materialise(a.files, &dir)?;
    Ok(dir)
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes adapter `name` into the kit's cache directory (`$AMPLITUDE_KIT_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/amplitude-kit`, else `~/.cache/amplitude-kit`; see
/// [`kit_cache_dir`]), installs its dependencies there (its `install.sh`, output discarded;
/// idempotent) and returns its sender command.
///
/// # Errors
/// An unknown adapter, no cache directory, a file that cannot be written, or a failing
/// `install.sh`.
pub fn prepare_adapter(name: &str) -> anyhow::Result<String> {
    let dir = materialise_adapter(name, &kit_cache_dir()?)?;
    let install = dir.join("install.sh");
    let status = std::process::Command::new("bash")
        .arg(&install)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {}", install.display()))?;
    anyhow::ensure!(status.success(), "{} failed ({status})", install.display());
    Ok(format!(
        "exec bash {}",
        shell_quote(&dir.join("run.sh").to_string_lossy())
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn materialise_writes_the_adapter_files_into_the_versioned_cache() {
        let root = tempfile::tempdir().unwrap();
        for a in ADAPTERS {
            let dir = materialise_adapter(a.name, root.path()).unwrap();
            assert_eq!(
                dir,
                root.path()
                    .join(env!("CARGO_PKG_VERSION"))
                    .join("adapters")
                    .join(a.name)
            );
            for f in a.files {
                assert_eq!(
                    std::fs::read_to_string(dir.join(f.path)).unwrap(),
                    f.contents
                );
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(dir.join("run.sh"))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o111, 0o111, "run.sh is executable");
            }
            // The adapters it uses are written out beside it.
            for dep in a.uses {
                let used = adapter(dep).unwrap();
                for f in used.files {
                    assert!(
                        dir.join("..").join(dep).join(f.path).is_file(),
                        "{dep}/{}",
                        f.path
                    );
                }
            }
            // A second run keeps what install.sh put there.
            std::fs::create_dir_all(dir.join(".venv")).unwrap();
            std::fs::write(dir.join(".venv/stamp"), "installed").unwrap();
            materialise_adapter(a.name, root.path()).unwrap();
            assert!(dir.join(".venv/stamp").is_file());
        }
        let err = materialise_adapter("ruby-sdk", root.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no adapter `ruby-sdk`; the adapters are: amplitude-js, browser-sdk, legacy-node-sdk, node-sdk, python-sdk"
        );
    }

    #[test]
    fn the_embedded_files_are_the_tracked_ones() {
        // Everything in the adapter's directory except installed dependencies and caches.
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters");
        for a in ADAPTERS {
            let mut on_disk: Vec<String> = std::fs::read_dir(base.join(a.name))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !matches!(n.as_str(), ".venv" | "node_modules" | "__pycache__"))
                .collect();
            on_disk.sort();
            let embedded: Vec<&str> = a.files.iter().map(|f| f.path).collect();
            assert_eq!(embedded, on_disk, "{}", a.name);
        }
    }

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
