//! Where the artifacts under test live.

use std::path::PathBuf;

/// The cargo target directory the README's test command built into.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

fn artifact(name: &str) -> PathBuf {
    let profile = std::env::var("IPCHECK_PROFILE").unwrap_or_else(|_| "debug".to_owned());
    let path = target_dir().join(profile).join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p ipcheck-redis -p ipcheck-auth)",
        path.display()
    );
    path
}

/// The built Redis module, `libipcheck.so`.
pub fn module_path() -> PathBuf {
    artifact("libipcheck.so")
}

/// The built `ipcheck-auth` binary.
pub fn service_binary() -> PathBuf {
    artifact("ipcheck-auth")
}

/// The workspace root, for shipped files such as `nginx/example.conf`.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
