//! Where the interop suites find Python and their scripts. Two environments, because the
//! official C++ client (PyPI `rocketmq`) and the 5.x client (PyPI `rocketmq-python-client`)
//! install the same `rocketmq` package directory and cannot share one.

use std::path::PathBuf;

/// `tests/interop` of the repository.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// The interpreter for the remoting suites: `$APOGEE_PYTHON` when set, else the repository's
/// `.venv` that `scripts/test` makes, else `python3`.
#[allow(dead_code)] // Each suite that includes this module uses the interpreters it needs.
pub fn interpreter() -> String {
    chosen("APOGEE_PYTHON", ".venv")
}

/// The interpreter for the gRPC suites: `$APOGEE_PYTHON_GRPC` when set, else the repository's
/// `.venv-grpc` that `scripts/test` makes, else `python3`.
#[allow(dead_code)] // Each suite that includes this module uses the interpreters it needs.
pub fn grpc_interpreter() -> String {
    chosen("APOGEE_PYTHON_GRPC", ".venv-grpc")
}

fn chosen(variable: &str, venv_dir: &str) -> String {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(venv_dir).join("bin/python");
    std::env::var(variable).unwrap_or_else(|_| {
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".to_owned()
        }
    })
}
