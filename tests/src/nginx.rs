//! A real nginx running the shipped `nginx/example.conf` (with `ipcheck.conf` and
//! `ipcheck-upstream.conf`), in its own prefix directory on run-time ports.
//!
//! The shipped files are copied verbatim except for a few literal substitutions (listen port,
//! service and backend addresses, the gate's port and log, the access log, the micro-cache path, and switches
//! a test flips on purpose);
//! each substitution must match, so a test fails loudly if the shipped file drifts.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths::workspace_root;
use crate::ports::{free_port, wait_for_port};

/// The nginx binary (Debian installs it outside a non-root PATH).
pub fn nginx_binary() -> PathBuf {
    for candidate in [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    PathBuf::from("nginx")
}

/// Where Debian's `libnginx-mod-http-lua` and `libnginx-mod-http-ndk` put their modules.
pub const LUA_MODULES: &str = "/usr/lib/nginx/modules";

/// How to wire the shipped example to the test's processes.
pub struct NginxSetup {
    /// Port of ipcheck-auth on 127.0.0.1.
    pub service_port: u16,
    /// Port of the stand-in backend on 127.0.0.1.
    pub backend_port: u16,
    /// Extra `(file, from, to)` substitutions in the shipped files, each of which must match.
    pub edits: Vec<(&'static str, String, String)>,
    /// Whether `http { }` includes `ipcheck-microcache.conf`.
    pub microcache: bool,
    /// Whether the Lua fast path is on (see [`NginxSetup::with_fastpath`]).
    pub fastpath: bool,
}

impl NginxSetup {
    /// The example wired to a service and a backend.
    pub fn new(service_port: u16, backend_port: u16) -> Self {
        NginxSetup {
            service_port,
            backend_port,
            edits: Vec::new(),
            microcache: false,
            fastpath: false,
        }
    }

    /// Replaces `from` with `to` in one shipped file (`example.conf`, `ipcheck.conf`, ...).
    pub fn edit(mut self, file: &'static str, from: &str, to: &str) -> Self {
        self.edits.push((file, from.to_owned(), to.to_owned()));
        self
    }

    /// Turns on the optional micro-cache the way an operator would: the zone's file included at
    /// http level, and the server's switch set to 1.
    pub fn with_microcache(mut self) -> Self {
        self.microcache = true;
        self.edit(
            "example.conf",
            "set $ipcheck_microcache 0;",
            "set $ipcheck_microcache 1;",
        )
    }

    /// Turns on the optional Lua fast path the way an operator would (docs/fast-path.md): the Lua
    /// module loaded, `ipcheck-fastpath-http.conf` included at http level, and every
    /// `auth_request /_ipcheck;` of the example replaced by the shipped `ipcheck-fastpath.lua`.
    pub fn with_fastpath(mut self) -> Self {
        self.fastpath = true;
        self
    }

    /// Starts nginx; panics with its error log if it will not come up.
    pub fn start(self) -> Nginx {
        Nginx::start(self)
    }
}

/// A running nginx; stopped on drop.
pub struct Nginx {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn substitute(text: &str, from: &str, to: &str, file: &str) -> String {
    assert!(
        text.contains(from),
        "shipped nginx/{file} no longer contains {from:?}"
    );
    text.replace(from, to)
}

impl Nginx {
    /// Starts nginx on ports picked now; a port another process took between the pick and the
    /// bind (tests run in parallel) is retried with fresh ones.
    fn start(setup: NginxSetup) -> Nginx {
        let mut last = String::new();
        for _ in 0..3 {
            match Nginx::try_start(&setup) {
                Ok(nginx) => return nginx,
                Err(log) => last = log,
            }
        }
        panic!("nginx did not start: {last}");
    }

    fn try_start(setup: &NginxSetup) -> Result<Nginx, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf_dir = dir.path().join("ipcheck");
        fs::create_dir_all(&conf_dir).expect("conf dir");
        fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
        let port = free_port();
        let cache_dir = dir.path().join("microcache");
        let fastpath_lua = conf_dir.join("ipcheck-fastpath.lua");
        if setup.fastpath {
            let module = Path::new(LUA_MODULES).join("ngx_http_lua_module.so");
            assert!(
                module.exists(),
                "{} is missing: install libnginx-mod-http-lua (./run-tests.sh does)",
                module.display()
            );
            fs::copy(
                workspace_root().join("nginx/ipcheck-fastpath.lua"),
                &fastpath_lua,
            )
            .expect("copy the shipped ipcheck-fastpath.lua");
        }
        for file in [
            "ipcheck.conf",
            "ipcheck-upstream.conf",
            "ipcheck-microcache.conf",
            "ipcheck-fastpath-http.conf",
            "example.conf",
        ] {
            let shipped = workspace_root().join("nginx").join(file);
            let mut text = fs::read_to_string(&shipped).expect("read shipped nginx config");
            let mut wiring: Vec<(String, String)> = match file {
                "example.conf" => vec![
                    ("listen 8000;".into(), format!("listen 127.0.0.1:{port};")),
                    ("listen [::]:8000;".into(), format!("listen [::1]:{port};")),
                    (
                        "server 127.0.0.1:9000;".into(),
                        format!("server 127.0.0.1:{};", setup.backend_port),
                    ),
                    (
                        "access_log /var/log/nginx/access.log ipcheck;".into(),
                        format!(
                            "access_log {} ipcheck;",
                            dir.path().join("logs/ipcheck-access.log").display()
                        ),
                    ),
                ],
                "ipcheck-upstream.conf" => vec![
                    (
                        "server 127.0.0.1:9217;".into(),
                        format!("server 127.0.0.1:{};", setup.service_port),
                    ),
                    (
                        "127.0.0.1:9219".into(),
                        format!("127.0.0.1:{}", free_port()),
                    ),
                    (
                        "/var/log/nginx/ipcheck-gate.log".into(),
                        dir.path()
                            .join("logs/ipcheck-gate.log")
                            .display()
                            .to_string(),
                    ),
                ],
                "ipcheck-microcache.conf" => vec![(
                    "/var/lib/nginx/ipcheck".into(),
                    cache_dir.display().to_string(),
                )],
                _ => vec![],
            };
            if setup.fastpath && file == "example.conf" {
                wiring.push((
                    "auth_request /_ipcheck;".into(),
                    format!("access_by_lua_file {};", fastpath_lua.display()),
                ));
            }
            wiring.extend(
                setup
                    .edits
                    .iter()
                    .filter(|(f, _, _)| *f == file)
                    .map(|(_, a, b)| (a.clone(), b.clone())),
            );
            for (from, to) in wiring {
                text = substitute(&text, &from, &to, file);
            }
            fs::write(conf_dir.join(file), text).expect("write nginx config");
        }
        let d = dir.path().display();
        let mut http_includes = if setup.microcache {
            "include ipcheck/ipcheck-microcache.conf;".to_owned()
        } else {
            String::new()
        };
        // Debian's packaging loads these through /etc/nginx/modules-enabled, which this private
        // nginx.conf does not include; the NDK first, the Lua module depends on it.
        let modules = if setup.fastpath {
            http_includes.push_str("\n  include ipcheck/ipcheck-fastpath-http.conf;");
            format!("load_module {LUA_MODULES}/ndk_http_module.so;\nload_module {LUA_MODULES}/ngx_http_lua_module.so;\n")
        } else {
            String::new()
        };
        // Running as root, nginx would drop workers to `nobody`, who cannot enter the temp dir.
        let user = if fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
        {
            "user root;"
        } else {
            ""
        };
        let main_conf = format!(
            "{modules}{user}\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log info;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/logs/access.log;\n  client_body_temp_path {d}/client_body;\n\
               proxy_temp_path {d}/proxy_temp;\n  fastcgi_temp_path {d}/fastcgi_temp;\n\
               uwsgi_temp_path {d}/uwsgi_temp;\n  scgi_temp_path {d}/scgi_temp;\n\
               include ipcheck/ipcheck-upstream.conf;\n  {http_includes}\n  include ipcheck/example.conf;\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        fs::write(&conf_path, main_conf).expect("write nginx.conf");
        // Configuration errors found before error_log is open go to stderr: keep them.
        let stderr_path = dir.path().join("logs/stderr.log");
        let stderr = fs::File::create(&stderr_path).expect("nginx stderr file");
        let mut child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("run nginx");
        // nginx writes its pid file only once every listening socket is bound, so the port
        // answering is then this nginx, not a server of another test that holds the port (nginx
        // that lost the port retries its bind for a few seconds and exits).
        let pid_file = dir.path().join("nginx.pid");
        let ours = child.id().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        let up = loop {
            let written = fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == ours);
            if written {
                break wait_for_port(port, Duration::from_secs(10));
            }
            if !matches!(child.try_wait(), Ok(None)) || Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if !up {
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(dir.path().join("logs/error.log")).unwrap_or_default();
            let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
            return Err(format!("{stderr}{log}"));
        }
        Ok(Nginx {
            child: Some(child),
            port,
            dir,
        })
    }

    /// The port nginx listens on, on both 127.0.0.1 and [::1].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// `http://[::1]:<port><path>`.
    pub fn url_v6(&self, path: &str) -> String {
        format!("http://[::1]:{}{}", self.port, path)
    }

    /// The gate's log so far: one line per auth answer that was not a valid ipcheck verdict.
    pub fn gate_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("logs/ipcheck-gate.log")).unwrap_or_default()
    }

    /// The example server's access log so far, in the shipped `ipcheck` format. nginx writes a
    /// request's line after answering it, so a test waits for it rather than reading once.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("logs/ipcheck-access.log")).unwrap_or_default()
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM, not SIGKILL: a killed master would leave its workers holding the port.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}
