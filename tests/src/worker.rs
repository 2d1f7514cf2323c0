//! `ipcheck-auth worker` under test: the enrichment worker with a config file in its own temp
//! dir, `/metrics` on a port picked at run time, its log captured to a file.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::{free_port, wait_for_port};
use crate::service::{http_request, service_command};

/// A running worker; killed on drop.
pub struct Worker {
    child: Option<Child>,
    metrics_port: u16,
    dir: tempfile::TempDir,
}

impl Worker {
    /// Starts `ipcheck-auth worker --consumer <name>` with this TOML config and these
    /// environment variables, and waits for its startup line; panics with its log if it does
    /// not come.
    pub fn start(config: &str, name: &str, env: &[(&str, &str)]) -> Worker {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("ipcheck.toml");
        fs::write(&config_path, config).expect("write the worker config");
        let log = fs::File::create(dir.path().join("worker.log")).expect("create the worker log");
        let log2 = log.try_clone().expect("clone the log handle");
        let metrics_port = free_port();
        let mut cmd = service_command();
        cmd.envs(env.iter().copied());
        let child = cmd
            .arg("--config")
            .arg(&config_path)
            .arg("worker")
            .arg("--consumer")
            .arg(name)
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("run ipcheck-auth worker");
        let mut worker = Worker {
            child: Some(child),
            metrics_port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(worker.log().contains(" reading ")
            && wait_for_port(metrics_port, Duration::from_millis(50)))
        {
            if let Some(Ok(Some(status))) = worker.child.as_mut().map(Child::try_wait) {
                panic!("the worker exited with {status}:\n{}", worker.log());
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not start:\n{}",
                worker.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        worker
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("worker.log")).unwrap_or_default()
    }

    /// `GET /metrics`: the Prometheus text.
    pub fn metrics(&self) -> String {
        let reply = http_request(self.metrics_port, "GET", "/metrics", &[])
            .unwrap_or_else(|e| panic!("GET /metrics failed: {e}\nworker log:\n{}", self.log()));
        reply.body
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// SIGKILL: no chance to finish or acknowledge anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit; whether it exited successfully.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}
