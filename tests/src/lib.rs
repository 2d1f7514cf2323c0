//! Process harness for the end-to-end tests: starts real redis-server, ipcheck-auth, nginx and a
//! stand-in for the third-party IP-intelligence API on loopback ports picked at run time, each
//! in its own temporary directory, and stops them when the handle is dropped.
//!
//! The binaries under test are found in the cargo target directory (`CARGO_TARGET_DIR`, else
//! `target/` at the workspace root), debug profile; the README's test command builds them before
//! `cargo test` runs. `IPCHECK_PROFILE=release` picks the release build instead.

pub mod backend;
pub mod client;
pub mod eventually;
pub mod http_stub;
pub mod ipcheck;
pub mod nginx;
pub mod nginx_cases;
pub mod paths;
pub mod ports;
pub mod provider;
pub mod redis_memory;
pub mod redis_server;
pub mod service;
pub mod stack;
pub mod tls;
pub mod worker;

pub use backend::Backend;
pub use client::HttpReply;
pub use eventually::eventually;
pub use nginx::{Nginx, NginxSetup};
pub use paths::workspace_root;
pub use paths::{module_path, service_binary};
pub use ports::free_port;
pub use ports::wait_for_port;
pub use provider::{Attributes as ReplyAttributes, SCORE_PATH};
pub use provider::{Provider, Reply};
pub use redis_server::RedisServer;
pub use service::Service;
pub use stack::Stack;
pub use worker::Worker;
