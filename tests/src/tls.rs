//! A throwaway certificate authority and a Redis server certificate for `127.0.0.1`, made with
//! the `openssl` command line tool in a temp dir, for the TLS tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A test CA and a server certificate it signed; removed on drop.
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    /// Generates the CA and a certificate for `127.0.0.1` (as an IP subject alternative name,
    /// which TLS clients check for an address).
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("run openssl (install the openssl package)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("write server.ext");
        run(&["genrsa", "-out", "ca.key", "2048"]);
        run(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=ipcheck test CA",
            "-out",
            "ca.crt",
        ]);
        run(&["genrsa", "-out", "server.key", "2048"]);
        run(&[
            "req",
            "-new",
            "-key",
            "server.key",
            "-subj",
            "/CN=127.0.0.1",
            "-out",
            "server.csr",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        TestCerts { dir }
    }

    /// The CA certificate (PEM), what a client must trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn path(&self, name: &str) -> String {
        let p: &Path = self.dir.path();
        p.join(name).display().to_string()
    }

    /// redis.conf lines that add a TLS listener on `port` (the plain port stays open for the
    /// test's own checks); clients need no certificate of their own.
    pub fn redis_conf(&self, port: u16) -> String {
        format!(
            "tls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\ntls-auth-clients no",
            self.path("server.crt"),
            self.path("server.key"),
            self.path("ca.crt"),
        )
    }
}
