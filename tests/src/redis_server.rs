//! A real redis-server with the ipcheck module loaded, in its own temp dir on its own port.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::paths::module_path;
use crate::ports::{free_port, wait_for_port};

/// A running redis-server; killed (and its directory removed) on drop.
/// What the service's lookups and write-backs need (docs/ipcheck-command.md, "ACL"): the tests
/// that give the service a user of its own start from this.
pub const LOOKUP_GRANTS: &[&str] = &[
    "%RW~ipcheck:*",
    "+ipcheck.lget",
    "+ipcheck.lset",
    "+ipcheck|get",
    "+ipcheck|set",
    "+ipcheck|key",
];

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra_conf: String,
    module_args: Vec<String>,
    no_module: bool,
}

impl RedisServer {
    /// Starts a server with the module loaded with no arguments.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// A builder for servers that need module arguments or extra config lines.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's working directory (RDB, AOF, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far, for assertions on load errors.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// A fresh synchronous connection.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to the test redis-server")
    }

    /// A connection authenticated as an ACL user.
    pub fn client_as(&self, user: &str, password: &str) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!(
            "redis://{user}:{password}@127.0.0.1:{}/",
            self.port
        ))?
        .get_connection()
    }

    /// Every AOF file the server wrote, as text (Redis 7 keeps a base and incremental files in
    /// a directory).
    pub fn aof_text(&self) -> String {
        let mut out = String::new();
        let dir = self.dir().join("appendonlydir");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(f).unwrap_or_default(),
            ));
        }
        out
    }

    /// Creates (or resets) an ACL user with password `pass`, the service's lookup grants
    /// ([`LOOKUP_GRANTS`]) and the given further rules.
    pub fn service_user(&self, user: &str, more: &[&str]) {
        self.acl_user(user, &[LOOKUP_GRANTS, more].concat());
    }

    /// Creates (or resets) an ACL user with password `pass` and the given rules.
    pub fn acl_user(&self, user: &str, rules: &[&str]) {
        let mut con = self.client();
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg("reset")
            .arg("on")
            .arg(">pass")
            .arg(rules)
            .query(&mut con)
            .unwrap_or_else(|e| panic!("ACL SETUSER {user} {rules:?}: {e}"));
    }

    /// A primary that writes an AOF (fsync on every write, so the file is read back at once) and
    /// a replica of it, synced.
    pub fn with_aof_and_replica() -> (Self, Self) {
        let primary = Self::builder()
            .conf("appendonly yes")
            .conf("appendfsync always")
            .start();
        let replica = Self::builder().replica_of(&primary).start();
        replica.wait_replica_synced();
        (primary, replica)
    }

    /// On a primary with one replica: waits until the replica has acknowledged every write sent
    /// on `con` so far (`WAIT 1`).
    pub fn wait_replica_acked(con: &mut redis::Connection) {
        let n: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(con).unwrap();
        assert_eq!(n, 1, "the replica did not acknowledge");
    }

    /// Waits until this server, a replica, reports its link to the master up and synced.
    pub fn wait_replica_synced(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut con = self.client();
        loop {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut con)
                .unwrap_or_default();
            if info.contains("master_link_status:up") && !info.contains("master_sync_in_progress:1")
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replica never synced: {info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes this server (started with [`RedisServerBuilder::cluster`]) a one-node cluster owning
    /// slots `first..=last`, and waits until the cluster is up.
    pub fn own_slots(&self, first: u16, last: u16) {
        let mut con = self.client();
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(first)
            .arg(last)
            .query(&mut con)
            .expect("CLUSTER ADDSLOTSRANGE");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut con)
                .unwrap_or_default();
            if info.contains("cluster_state:ok") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cluster never ok: {info}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `n` cluster nodes with the module loaded, introduces them to each other, gives each
    /// an equal share of the 16384 slots, and waits until every node knows every node's slots.
    pub fn start_cluster(n: u16) -> Vec<RedisServer> {
        let nodes: Vec<RedisServer> = (0..n).map(|_| Self::builder().cluster().start()).collect();
        let mut first = nodes[0].client();
        for node in &nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .query(&mut first)
                .expect("CLUSTER MEET");
        }
        let share = 16384 / n;
        for (i, node) in (0u16..).zip(&nodes) {
            let last = if i + 1 == n {
                16383
            } else {
                (i + 1) * share - 1
            };
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(i * share)
                .arg(last)
                .query(&mut node.client())
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            let mut con = node.client();
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut con)
                    .unwrap_or_default();
                let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query(&mut con)
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") && slots.len() == usize::from(n) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the cluster never formed: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        nodes
    }

    /// The slot `key` hashes to (`CLUSTER KEYSLOT`, asked of this cluster node).
    pub fn keyslot(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.client())
            .expect("CLUSTER KEYSLOT")
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...) to the server process: `STOP` freezes it
    /// with its connections open, as a stalled host would, `CONT` lets it go on.
    pub fn signal(&self, name: &str) {
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .expect("signal a running server");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid}: {status}");
    }

    /// Stops the server abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server cleanly (`SHUTDOWN`), so it persists per its config.
    pub fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let mut con = self.client();
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut con);
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (after `kill` or `shutdown`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a stopped server");
        let child = spawn(
            self.dir.path(),
            self.port,
            &self.extra_conf,
            self.module_line(),
        )
        .unwrap_or_else(|log| panic!("redis-server did not come back: {log}"));
        self.child = Some(child);
    }

    /// Whether the process is still running (it may have exited on a failed module load).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl RedisServer {
    fn module_line(&self) -> String {
        module_line(self.no_module, &self.module_args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Options for [`RedisServer`].
#[derive(Default)]
pub struct RedisServerBuilder {
    extra_conf: String,
    module_args: Vec<String>,
    no_module: bool,
}

impl RedisServerBuilder {
    fn module_line(&self) -> String {
        module_line(self.no_module, &self.module_args)
    }

    /// No `loadmodule` line, for tests that load the module at run time (`MODULE LOAD`).
    pub fn without_module(mut self) -> Self {
        self.no_module = true;
        self
    }

    /// Arguments after `loadmodule <path>`.
    pub fn module_args(mut self, args: &[&str]) -> Self {
        self.module_args = args.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Replicates from `master` (`replicaof`).
    pub fn replica_of(self, master: &RedisServer) -> Self {
        self.conf(&format!("replicaof 127.0.0.1 {}", master.port()))
    }

    /// Cluster mode (a node with no slots until [`RedisServer::own_slots`]).
    pub fn cluster(self) -> Self {
        self.conf("cluster-enabled yes")
            .conf("cluster-config-file nodes.conf")
            .conf("cluster-require-full-coverage no")
    }

    /// A raw redis.conf line, e.g. `appendonly yes`.
    pub fn conf(mut self, line: &str) -> Self {
        self.extra_conf.push_str(line);
        self.extra_conf.push('\n');
        self
    }

    /// Starts the server, retrying on a lost port race; panics with the log if it cannot start.
    pub fn start(self) -> RedisServer {
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            match spawn(dir.path(), port, &self.extra_conf, self.module_line()) {
                Ok(child) => return self.running(child, port, dir),
                Err(log) => last_log = log,
            }
        }
        panic!("redis-server would not start: {last_log}");
    }

    /// Tries to start the server and returns its log if it exits instead (a refused module load).
    pub fn start_expecting_failure(self) -> Result<RedisServer, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        spawn(dir.path(), port, &self.extra_conf, self.module_line())
            .map(|child| self.running(child, port, dir))
    }

    fn running(self, child: Child, port: u16, dir: tempfile::TempDir) -> RedisServer {
        RedisServer {
            child: Some(child),
            port,
            dir,
            extra_conf: self.extra_conf,
            module_args: self.module_args,
            no_module: self.no_module,
        }
    }
}

/// The `loadmodule` line for a server's config, or nothing.
fn module_line(no_module: bool, args: &[String]) -> String {
    if no_module {
        String::new()
    } else {
        format!("loadmodule {} {}", module_path().display(), args.join(" "))
    }
}

fn write_conf(dir: &Path, port: u16, extra: &str, module_line: String) -> PathBuf {
    let conf = format!(
        "port {port}\nbind 127.0.0.1 -::1\ndir {dir}\nlogfile {dir}/redis.log\n\
         save \"\"\nappendonly no\ndaemonize no\nenable-module-command yes\n\
         enable-debug-command yes\nrepl-diskless-sync-delay 0\n{module_line}\n{extra}",
        dir = dir.display(),
    );
    let path = dir.join("redis.conf");
    fs::write(&path, conf).expect("write redis.conf");
    path
}

/// Whether the server answering on `port` is process `pid` and serving commands (false if it
/// dies or stalls first, or if another test's server won the race for the port).
fn serves_as(port: u16, pid: u32) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return false;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return false;
    };
    let _ = con.set_read_timeout(Some(Duration::from_secs(2)));
    let Ok(info) = redis::cmd("INFO")
        .arg("server")
        .arg("persistence")
        .query::<String>(&mut con)
    else {
        return false;
    };
    // INFO answers while the RDB or AOF is still loading, when every other command is refused.
    let mut lines = info.lines().map(str::trim);
    lines.clone().any(|l| l == format!("process_id:{pid}")) && lines.any(|l| l == "loading:0")
}

/// Spawns redis-server and waits for it to accept connections; on failure returns its log.
fn spawn(dir: &Path, port: u16, extra: &str, module_line: String) -> Result<Child, String> {
    let conf = write_conf(dir, port, extra, module_line);
    let mut child = Command::new("redis-server")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(fs::read_to_string(dir.join("redis.log")).unwrap_or_default());
        }
        // Redis binds its port before it loads modules, so an accepted connection alone does not
        // mean the load worked: wait for an answer, which comes only from the event loop, and
        // make sure it comes from this very process.
        if wait_for_port(port, Duration::from_millis(50)) && serves_as(port, child.id()) {
            return Ok(child);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(fs::read_to_string(dir.join("redis.log")).unwrap_or_default())
}
