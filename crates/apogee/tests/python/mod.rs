//! Where the interop suites find Python and their scripts.

use std::path::PathBuf;

/// `tests/interop` of the repository.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// `$APOGEE_PYTHON` when set, else the repository's `.venv` that `scripts/test` makes, else
/// `python3`.
pub fn interpreter() -> String {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    std::env::var("APOGEE_PYTHON").unwrap_or_else(|_| {
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".to_owned()
        }
    })
}
