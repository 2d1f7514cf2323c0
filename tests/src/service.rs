//! The `ipcheck-auth` binary under test, with a config file in its own temp dir, on a port
//! picked at run time (and `/metrics` and the admin listener on others), its log captured to a
//! file for assertions.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::client::{request_bytes_from, request_from, HttpReply};
use crate::paths::service_binary;
use crate::ports::{free_port, wait_for_port};

/// A running service; killed on drop.
pub struct Service {
    child: Option<Child>,
    port: u16,
    metrics_port: u16,
    admin_port: u16,
    dir: tempfile::TempDir,
}

/// Options for [`Service`].
pub struct ServiceBuilder {
    config: String,
    env: Vec<(String, String)>,
}

/// One HTTP/1.1 request to `127.0.0.1:port` on a fresh connection, with a 10 s deadline.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpReply> {
    let dest = SocketAddr::from(([127, 0, 0, 1], port));
    request_from(IpAddr::from([127, 0, 0, 1]), dest, method, path, headers)
}

impl Service {
    /// Starts the service with this TOML config (the `listen` key is overridden by the harness).
    pub fn start(config: &str) -> Self {
        Self::builder(config).start()
    }

    /// A builder, for environment variables.
    pub fn builder(config: &str) -> ServiceBuilder {
        ServiceBuilder {
            config: config.to_owned(),
            env: Vec::new(),
        }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener on 127.0.0.1.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// `GET /metrics` from the metrics listener: the Prometheus text.
    pub fn metrics(&self) -> String {
        let reply = http_request(self.metrics_port, "GET", "/metrics", &[])
            .unwrap_or_else(|e| panic!("GET /metrics failed: {e}\nservice log:\n{}", self.log()));
        assert_eq!(reply.status, 200, "/metrics: {}", reply.body);
        reply.body
    }

    /// The process id, for signals.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the service logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    /// Polls the log until a line contains every one of `parts` (15 s at most); that line.
    pub fn wait_for_log_line(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The config file the service was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ipcheck.toml")
    }

    /// `GET path` with these request headers.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpReply {
        http_request(self.port, "GET", path, headers)
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}\nservice log:\n{}", self.log()))
    }

    /// `GET path` with header values as raw bytes (anything a client can put on the wire).
    pub fn get_raw(&self, path: &str, headers: &[(&str, &[u8])]) -> HttpReply {
        let dest = SocketAddr::from(([127, 0, 0, 1], self.port));
        request_bytes_from(IpAddr::from([127, 0, 0, 1]), dest, "GET", path, headers)
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}\nservice log:\n{}", self.log()))
    }

    /// The port of the admin listener on 127.0.0.1.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// `GET /explain` from the admin listener for an address under a policy (None: the
    /// default one).
    pub fn explain(&self, ip: &str, policy: Option<&str>) -> HttpReply {
        let mut path = format!("/explain?address={}", urlencode(ip));
        if let Some(policy) = policy {
            path.push_str(&format!("&policy={}", urlencode(policy)));
        }
        http_request(self.admin_port, "GET", &path, &[])
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}\nservice log:\n{}", self.log()))
    }

    /// `GET /auth` for a client address given in `X-Real-IP`, as nginx sends it.
    pub fn auth(&self, ip: &str) -> HttpReply {
        self.get("/auth", &[("X-Real-IP", ip)])
    }

    /// `GET /auth` for a client address under a named policy.
    pub fn auth_policy(&self, ip: &str, policy: &str) -> HttpReply {
        self.get("/auth", &[("X-Real-IP", ip), ("X-IPCheck-Policy", policy)])
    }

    /// Sends SIGTERM and waits for the process to exit, up to `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ServiceBuilder {
    /// An environment variable for the service process (e.g. the provider key).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the service and waits until it accepts connections; panics with its log if not.
    pub fn start(self) -> Service {
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let metrics_port = free_port();
            let admin_port = free_port();
            let ports = (port, metrics_port, admin_port);
            match spawn(dir.path(), ports, &self.config, &self.env) {
                Ok(child) => {
                    return Service {
                        child: Some(child),
                        port,
                        metrics_port,
                        admin_port,
                        dir,
                    }
                }
                Err(log) => last_log = log,
            }
        }
        panic!("ipcheck-auth would not start:\n{last_log}");
    }
}

/// The `ipcheck-auth` command with the test's own `IPCHECK_*`/`RUST_LOG` variables removed, so
/// only what a test sets explicitly reaches it; the metrics and admin listeners are off (their
/// default ports are fixed, so parallel tests would fight over them) unless `--metrics-listen`
/// and `--admin-listen` are given.
pub fn service_command() -> Command {
    let mut cmd = Command::new(service_binary());
    for (key, _) in std::env::vars() {
        if key.starts_with("IPCHECK_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("IPCHECK_METRICS_LISTEN", "");
    cmd.env("IPCHECK_ADMIN_LISTEN", "");
    cmd
}

/// Runs `ipcheck-auth --config <config> <args>` (an operator command: `pin`, `unpin`, `pins`,
/// `explain`, `check-config`) to completion.
pub fn run_ops(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    service_command()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run ipcheck-auth")
}

/// Percent-encodes a query value (addresses and policy names need only a few escapes).
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn spawn(
    dir: &Path,
    (port, metrics_port, admin_port): (u16, u16, u16),
    config: &str,
    env: &[(String, String)],
) -> Result<Child, String> {
    let config_path = dir.join("ipcheck.toml");
    fs::write(&config_path, config).expect("write the service config");
    let log = fs::File::create(dir.join("service.log")).expect("create the service log");
    let log2 = log.try_clone().expect("clone the log handle");
    let mut cmd = service_command();
    cmd.arg("--config")
        .arg(&config_path)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin_port}"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run ipcheck-auth: {e}"))?;
    let read_log = || fs::read_to_string(dir.join("service.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}:\n{}", read_log()));
        }
        // The port opens a moment before the startup line is written; tests read that line.
        if wait_for_port(port, Duration::from_millis(50)) && read_log().contains("listening on") {
            return Ok(child);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("did not listen within 10 s:\n{}", read_log()))
}
