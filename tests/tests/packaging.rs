//! What ships besides the binaries: the systemd unit passes `systemd-analyze verify` and keeps
//! the sandbox the README promises, and LICENSE is the license Cargo.toml declares.

use std::path::{Path, PathBuf};
use std::process::Command;

use ipcheck_tests::{service_binary, workspace_root};

const UNIT: &str = "packaging/systemd/ipcheck-auth.service";
/// The installed path the unit starts, replaced by the freshly built binary for `verify`, which
/// refuses a unit whose ExecStart does not exist.
const INSTALLED_EXEC_START: &str = "ExecStart=/usr/local/bin/ipcheck-auth ";

fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `systemd-analyze`, which a missing tool must not turn into a silent pass.
fn systemd_analyze() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join("systemd-analyze"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "systemd-analyze not found: install the `systemd` package \
                 (apt-get install systemd; ./run-tests.sh does it) to check {UNIT}"
            )
        })
}

/// The unit's `Key=value` settings, comments and section headers left out.
fn settings(unit: &str) -> Vec<(&str, &str)> {
    unit.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';', '[']))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .collect()
}

/// The unit as shipped, except that it starts `binary` instead of the installed path.
fn unit_starting(binary: &Path) -> String {
    let unit = read(UNIT);
    assert_eq!(
        unit.matches(INSTALLED_EXEC_START).count(),
        1,
        "{UNIT} must have exactly one line starting with `{INSTALLED_EXEC_START}` \
         (the test swaps that path for the built binary); update the test if the path moved"
    );
    unit.replace(
        INSTALLED_EXEC_START,
        &format!("ExecStart={} ", binary.display()),
    )
}

/// Runs `systemd-analyze verify` on `units` and fails on anything it says about a unit whose
/// name contains `ours` (`what` names the shipped files in the message).
fn verify(units: &[&Path], ours: &str, what: &str) {
    let analyze = systemd_analyze();
    let out = Command::new(&analyze)
        .arg("verify")
        .args(units)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", analyze.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on an unknown key or an unparsable value, only saying so on stderr; lines
    // about other units on this machine are not ours to fix.
    let about_ours: Vec<&str> = stderr.lines().filter(|line| line.contains(ours)).collect();
    assert!(
        out.status.success() && about_ours.is_empty(),
        "systemd-analyze verify {what} ({}):\n{stderr}",
        out.status
    );
}

/// A copy of the shipped unit `path` in `dir` starting the binary this build made, checking first
/// that it starts the installed one once and runs the subcommand `runs` says.
fn built_copy(path: &str, runs: &str, dir: &Path) -> PathBuf {
    let unit = read(path);
    assert_eq!(
        unit.matches(INSTALLED_EXEC_START).count(),
        1,
        "{path} must start `{INSTALLED_EXEC_START}` once (the test swaps that path)"
    );
    assert!(
        unit.contains(runs),
        "{path} must run `ipcheck-auth ...{runs}`"
    );
    let unit = unit.replace(
        INSTALLED_EXEC_START,
        &format!("ExecStart={} ", service_binary().display()),
    );
    let name = Path::new(path).file_name().expect("a unit file name");
    let copy = dir.join(name);
    std::fs::write(&copy, unit).expect("writing the unit copy");
    copy
}

/// Fails unless the unit file `path` sets every `key=value` pair.
fn assert_sets(path: &str, pairs: &[(&str, &str)]) {
    let text = read(path);
    let unit_settings = settings(&text);
    for (key, value) in pairs {
        assert!(
            unit_settings.contains(&(*key, *value)),
            "{path} must set {key}={value}"
        );
    }
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit_path = dir.path().join("ipcheck-auth.service");
    std::fs::write(&unit_path, unit_starting(&service_binary())).expect("writing the unit copy");
    verify(&[&unit_path], "ipcheck-auth", UNIT);
}

#[test]
fn systemd_unit_keeps_the_key_out_and_runs_unprivileged_on_a_read_only_system() {
    let unit = read(UNIT);
    let unit_settings = settings(&unit);
    let has = |key: &str, value: &str| unit_settings.contains(&(key, value));
    for (key, value) in [
        ("EnvironmentFile", "-/etc/ipcheck/ipcheck.env"),
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("CapabilityBoundingSet", ""),
        ("KillSignal", "SIGTERM"),
    ] {
        assert!(has(key, value), "{UNIT} must set {key}={value}");
    }
    // Anything a unit sets with Environment= is readable by every local user (systemctl show).
    for (key, value) in &unit_settings {
        assert_ne!(
            *key, "Environment",
            "{UNIT}: `{key}={value}`: settings and secrets belong in /etc/ipcheck/ipcheck.env"
        );
    }
    let example = read("packaging/systemd/ipcheck.env.example");
    assert!(
        settings(&example)
            .iter()
            .any(|(key, _)| *key == "IPASIS_API_KEY"),
        "ipcheck.env.example must show IPASIS_API_KEY=..."
    );
}

#[test]
fn license_file_is_the_license_cargo_toml_declares() {
    let manifest = read("Cargo.toml");
    let declared = manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("license"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"'))
        .next()
        .expect("Cargo.toml's [workspace.package] declares `license = \"...\"`");
    let license = read("LICENSE");
    let first_line = license.lines().next().unwrap_or_default().trim();
    assert_eq!(
        first_line,
        format!("{declared} License"),
        "LICENSE must be the {declared} license Cargo.toml declares"
    );
}

const FEEDS_UNIT: &str = "packaging/systemd/ipcheck-feeds.service";
const FEEDS_TIMER: &str = "packaging/systemd/ipcheck-feeds.timer";

#[test]
fn feed_timer_and_its_unit_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit_path = built_copy(FEEDS_UNIT, " feed\n", dir.path());
    let timer_path = dir.path().join("ipcheck-feeds.timer");
    std::fs::write(&timer_path, read(FEEDS_TIMER)).expect("writing the timer copy");

    verify(
        &[&timer_path, &unit_path],
        "ipcheck-feeds",
        &format!("{FEEDS_TIMER} {FEEDS_UNIT}"),
    );
    assert_sets(
        FEEDS_UNIT,
        &[
            ("Type", "oneshot"),
            ("EnvironmentFile", "-/etc/ipcheck/ipcheck.env"),
            ("DynamicUser", "yes"),
            ("ProtectSystem", "strict"),
        ],
    );
}

const WORKER_UNIT: &str = "packaging/systemd/ipcheck-worker.service";

#[test]
fn worker_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit_path = built_copy(WORKER_UNIT, " worker --consumer %H ", dir.path());
    verify(&[&unit_path], "ipcheck-worker", WORKER_UNIT);
    assert_sets(
        WORKER_UNIT,
        &[
            ("Type", "exec"),
            ("KillSignal", "SIGTERM"),
            ("EnvironmentFile", "-/etc/ipcheck/ipcheck.env"),
            ("DynamicUser", "yes"),
            ("ProtectSystem", "strict"),
        ],
    );
}

#[test]
fn cron_example_runs_the_feed_command() {
    let cron = read("packaging/cron/ipcheck-feeds");
    let line = cron
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .expect("packaging/cron/ipcheck-feeds has a cron line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert!(
        fields.len() > 6,
        "a cron.d line: 5 time fields, a user, a command: {line}"
    );
    assert!(
        line.contains("/usr/local/bin/ipcheck-auth --config /etc/ipcheck/ipcheck.toml feed"),
        "{line}"
    );
}
