//! The whole thing on loopback: redis-server with the module, the stand-in provider,
//! ipcheck-auth running the shipped example config, the stand-in backend, and nginx running the
//! shipped example server. What end-to-end tests and the demo stand up.

use std::fs;
use std::net::{IpAddr, SocketAddr};

use crate::backend::Backend;
use crate::client::{request_from, HttpReply};
use crate::nginx::{Nginx, NginxSetup};
use crate::paths::workspace_root;
use crate::provider::Provider;
use crate::redis_server::RedisServer;
use crate::service::Service;

/// The environment variable the example config names for the provider key.
pub const KEY_VAR: &str = "IPASIS_API_KEY";
/// The key the stack's service is given; tests assert it never leaks.
pub const SECRET: &str = "e2e-secret-key-7f3a9c";

/// The shipped `auth-service/ipcheck.example.toml`, wired to this stack's Redis and provider,
/// with `local_ttl` set as given. Each substitution must match, so drift fails loudly.
pub fn example_service_config(redis: &RedisServer, provider: &Provider, local_ttl: &str) -> String {
    let path = workspace_root().join("auth-service/ipcheck.example.toml");
    let mut text = fs::read_to_string(path).expect("read the shipped example config");
    for (from, to) in [
        (
            "url = \"redis://127.0.0.1:6379/\"",
            format!("url = \"{}\"", redis.url()),
        ),
        (
            "url = \"https://api.ipasis.com/v1/lookup?ip={ip}\"",
            format!("url = \"{}\"", provider.url_template()),
        ),
        (
            "local_ttl = \"60s\"",
            format!("local_ttl = \"{local_ttl}\""),
        ),
    ] {
        assert!(
            text.contains(from),
            "example config no longer contains {from:?}"
        );
        text = text.replacen(from, &to, 1);
    }
    text
}

/// Every process of a deployment, stopped on drop.
pub struct Stack {
    /// nginx running `nginx/example.conf` (declared first: dropped first).
    pub nginx: Nginx,
    /// ipcheck-auth with the example config.
    pub service: Service,
    /// The stand-in application.
    pub backend: Backend,
    /// The stand-in IP-intelligence API.
    pub provider: Provider,
    /// redis-server with the module.
    pub redis: RedisServer,
}

impl Stack {
    /// Starts everything with the given `local_ttl` and nginx edits.
    pub fn start_with(local_ttl: &str, nginx: impl FnOnce(NginxSetup) -> NginxSetup) -> Stack {
        Self::start_on(RedisServer::start(), local_ttl, nginx)
    }

    /// Starts everything on this Redis (e.g. one that persists its data), with the given
    /// `local_ttl` and nginx edits.
    pub fn start_on(
        redis: RedisServer,
        local_ttl: &str,
        nginx: impl FnOnce(NginxSetup) -> NginxSetup,
    ) -> Stack {
        let provider = Provider::start();
        let backend = Backend::start();
        let service = Service::builder(&example_service_config(&redis, &provider, local_ttl))
            .env(KEY_VAR, SECRET)
            .start();
        let nginx = nginx(NginxSetup::new(service.port(), backend.port())).start();
        Stack {
            nginx,
            service,
            backend,
            provider,
            redis,
        }
    }

    /// Starts everything as shipped (local_ttl 60 s, no micro-cache).
    pub fn start() -> Stack {
        Self::start_with("60s", |n| n)
    }

    /// `GET path` through nginx, as the client `source` (any 127.0.0.0/8 address, or ::1).
    pub fn get_as(&self, source: &str, path: &str, headers: &[(&str, &str)]) -> HttpReply {
        get_via(&self.nginx, source, path, headers)
    }
}

/// `GET path` through this nginx from the client address `source`.
pub fn get_via(nginx: &Nginx, source: &str, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    let source: IpAddr = source.parse().expect("test source address");
    let dest = match source {
        IpAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], nginx.port())),
        IpAddr::V6(_) => SocketAddr::new("::1".parse().expect("::1"), nginx.port()),
    };
    request_from(source, dest, "GET", path, headers).unwrap_or_else(|e| {
        panic!(
            "GET {path} as {source} failed: {e}\nnginx log:\n{}",
            nginx.error_log()
        )
    })
}
