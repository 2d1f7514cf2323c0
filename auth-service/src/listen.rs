//! Where a listener listens (`host:port`, or `unix:/path` for a unix socket), and serving a
//! router there until shutdown.
//!
//! The service has three listeners: `/auth` (with `/healthz` and `/readyz`) for nginx,
//! `/metrics` for the scraper, and the operator's (`/explain`), loopback only. They are apart so
//! whatever may scrape metrics cannot also spend provider quota through `/auth`, and nothing
//! but the machine's own operator can ask the admin listener.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;
use axum::serve::ListenerExt;
use axum::Router;

/// The default `/auth` listener: off 8080, which is every application's default port, so an
/// `ipcheck_auth` upstream left pointing at 8080 cannot silently reach some other app.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9217";
/// The default `/metrics` listener.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9218";
/// The default admin listener (`/explain`).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9220";
/// Mode of a unix socket the service creates: owner and group read/write (put nginx's user in
/// the service's group), nobody else.
pub const UNIX_SOCKET_MODE: u32 = 0o660;

/// A listen address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `host:port`.
    Tcp(SocketAddr),
    /// `unix:/path/to.sock`.
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!(
                    "'{text}': a unix socket needs an absolute path (unix:/run/ipcheck/auth.sock)"
                ));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        text.parse().map(Listen::Tcp).map_err(|_| {
            format!("'{text}' is not an address:port (e.g. {DEFAULT_LISTEN}) or unix:/path/to.sock")
        })
    }
}

impl Listen {
    /// Whether only this machine can connect: a unix socket, or a loopback address.
    pub fn is_local(&self) -> bool {
        match self {
            Listen::Tcp(addr) => addr.ip().is_loopback(),
            Listen::Unix(_) => true,
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Listen {
    /// The TCP port, if this is a TCP address.
    pub fn port(&self) -> Option<u16> {
        match self {
            Listen::Tcp(addr) => Some(addr.port()),
            Listen::Unix(_) => None,
        }
    }
}

/// A bound listener, ready to serve.
pub enum Bound {
    /// A TCP listener.
    Tcp(tokio::net::TcpListener),
    /// A unix socket listener.
    Unix(tokio::net::UnixListener),
}

/// Binds `listen`. A unix socket path left over from an earlier run is removed first, but only
/// if it is a socket: a regular file there is an error, never deleted.
pub async fn bind(listen: &Listen) -> anyhow::Result<Bound> {
    match listen {
        Listen::Tcp(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Bound::Tcp)
            .with_context(|| format!("cannot listen on {listen}")),
        Listen::Unix(path) => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if !meta.file_type().is_socket() {
                    anyhow::bail!(
                        "cannot listen on {listen}: {} exists and is not a socket (remove it or choose another path)",
                        path.display()
                    );
                }
                std::fs::remove_file(path).with_context(|| {
                    format!("cannot remove the stale socket {}", path.display())
                })?;
            }
            let listener = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("cannot listen on {listen}"))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(UNIX_SOCKET_MODE))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
            Ok(Bound::Unix(listener))
        }
    }
}

/// Serves `router` on `bound` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    bound: Bound,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match bound {
        Bound::Tcp(listener) => {
            // Decisions are tiny single writes; never let Nagle hold one back.
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Bound::Unix(listener) => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_shows_both_forms() {
        let tcp: Listen = "127.0.0.1:9217".parse().unwrap();
        assert_eq!(tcp.port(), Some(9217));
        assert_eq!(tcp.to_string(), "127.0.0.1:9217");
        let unix: Listen = "unix:/run/ipcheck/auth.sock".parse().unwrap();
        assert_eq!(unix, Listen::Unix(PathBuf::from("/run/ipcheck/auth.sock")));
        assert_eq!(unix.to_string(), "unix:/run/ipcheck/auth.sock");
        assert!("unix:relative.sock".parse::<Listen>().is_err());
        assert!("nowhere".parse::<Listen>().is_err());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_but_a_file_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.sock");
        let listen = Listen::Unix(path.clone());
        drop(bind(&listen).await.unwrap());
        // The socket file outlives its listener, as after a crash: binding again works.
        assert!(path.exists());
        drop(bind(&listen).await.unwrap());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, UNIX_SOCKET_MODE);
        let file = dir.path().join("data.txt");
        std::fs::write(&file, "keep me").unwrap();
        let e = bind(&Listen::Unix(file.clone())).await.err().unwrap();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }
}
