//! What went wrong with a Redis call, sorted into the kinds an operator acts on differently.
//!
//! A timeout or a refused connection means Redis is down or slow (wait, page someone); a missing
//! module, a missing ACL permission, a wrong password or a key the module refuses means the
//! deployment is misconfigured (fix a file). The kind is a metric label and decides the state the
//! tier reports ([`super::redis_health`]).

use std::fmt;

use thiserror::Error;

/// The kind of a failed Redis call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The deadline passed.
    Timeout,
    /// No connection: refused, dropped, or not made.
    Refused,
    /// `ERR unknown command 'IPCHECK'`: the module is not loaded.
    ModuleMissing,
    /// `NOPERM`: the ACL user may not run the subcommand or touch the key.
    NoPerm,
    /// `WRONGPASS` / `NOAUTH`: the credentials in `redis.url` are wrong or missing.
    Auth,
    /// The module refused the address: in cluster mode it is not canonical under the module's
    /// prefixes, i.e. the service's `aggregation` differs from the module's.
    KeyRefused,
    /// A reply that is not what `IPCHECK` sends.
    Reply,
    /// Anything else.
    Error,
    /// Not asked: the circuit breaker is open. No call was made, so it is not among
    /// [`ErrorKind::ALL`] (the kinds of failed calls).
    BreakerOpen,
}

impl ErrorKind {
    /// Every kind, in metric order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Timeout,
        ErrorKind::Refused,
        ErrorKind::ModuleMissing,
        ErrorKind::NoPerm,
        ErrorKind::Auth,
        ErrorKind::KeyRefused,
        ErrorKind::Reply,
        ErrorKind::Error,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
            ErrorKind::ModuleMissing => "module_missing",
            ErrorKind::NoPerm => "noperm",
            ErrorKind::Auth => "auth",
            ErrorKind::KeyRefused => "key_refused",
            ErrorKind::Reply => "reply",
            ErrorKind::Error => "error",
            ErrorKind::BreakerOpen => "breaker_open",
        }
    }

    /// Whether waiting cannot help: a file must be fixed (module, ACL, password, prefixes).
    pub fn is_misconfiguration(self) -> bool {
        matches!(
            self,
            ErrorKind::ModuleMissing | ErrorKind::NoPerm | ErrorKind::Auth | ErrorKind::KeyRefused
        )
    }

    /// Sorts a redis-rs error.
    pub fn of(e: &redis::RedisError) -> ErrorKind {
        let detail = e.detail().unwrap_or("");
        match e.code() {
            Some("NOPERM") => return ErrorKind::NoPerm,
            Some("WRONGPASS") | Some("NOAUTH") => return ErrorKind::Auth,
            Some("ERR") if is_unknown_ipcheck(detail) => return ErrorKind::ModuleMissing,
            Some("ERR") if detail.contains("is not canonical") => return ErrorKind::KeyRefused,
            _ => {}
        }
        match e.kind() {
            redis::ErrorKind::AuthenticationFailed => ErrorKind::Auth,
            redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType => ErrorKind::Reply,
            redis::ErrorKind::Io | redis::ErrorKind::ClusterConnectionNotFound => {
                if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Refused
                }
            }
            _ if e.is_connection_refusal() || e.is_connection_dropped() => ErrorKind::Refused,
            _ => ErrorKind::Error,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `unknown command 'IPCHECK', with args beginning with: ...` (any case).
fn is_unknown_ipcheck(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    lower.starts_with("unknown command") && lower.contains("'ipcheck'")
}

/// A Redis call that gave no answer: its kind, and what Redis or the connection said.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind}{}{detail}", if detail.is_empty() { "" } else { ": " })]
pub struct RedisError {
    /// The kind (metric label).
    pub kind: ErrorKind,
    /// The server's or the connection's message (never holds the password: redis-rs does not
    /// put the URL in its errors).
    pub detail: String,
}

impl RedisError {
    /// An error of `kind` with nothing more to say.
    pub fn bare(kind: ErrorKind) -> Self {
        RedisError {
            kind,
            detail: String::new(),
        }
    }

    /// The metric label.
    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

impl From<&redis::RedisError> for RedisError {
    fn from(e: &redis::RedisError) -> Self {
        RedisError {
            kind: ErrorKind::of(e),
            detail: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> redis::RedisError {
        // How redis-rs builds an error from an error reply line.
        let line = format!("-{code} {detail}\r\n");
        match redis::parse_redis_value(line.as_bytes()) {
            Ok(redis::Value::ServerError(e)) => e.into(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_replies_are_sorted() {
        let kind = |code, detail| ErrorKind::of(&server(code, detail));
        assert_eq!(
            kind(
                "ERR",
                "unknown command 'IPCHECK', with args beginning with: 'GET' '1.2.3.4' "
            ),
            ErrorKind::ModuleMissing
        );
        assert_eq!(
            kind(
                "NOPERM",
                "User x has no permissions to run the 'ipcheck|set' command"
            ),
            ErrorKind::NoPerm
        );
        assert_eq!(
            kind(
                "WRONGPASS",
                "invalid username-password pair or user is disabled."
            ),
            ErrorKind::Auth
        );
        assert_eq!(kind("NOAUTH", "Authentication required."), ErrorKind::Auth);
        assert_eq!(
            kind(
                "ERR",
                "address '2001:db8::/64' is not canonical; in cluster mode send '2001:db8::/56'"
            ),
            ErrorKind::KeyRefused
        );
        assert_eq!(kind("ERR", "something else"), ErrorKind::Error);
        assert_eq!(kind("LOADING", "Redis is loading"), ErrorKind::Error);
    }

    #[test]
    fn connection_errors_are_refused_or_timeout() {
        let refused: redis::RedisError =
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert_eq!(ErrorKind::of(&refused), ErrorKind::Refused);
        let timed_out: redis::RedisError =
            std::io::Error::from(std::io::ErrorKind::TimedOut).into();
        assert_eq!(ErrorKind::of(&timed_out), ErrorKind::Timeout);
        assert!(ErrorKind::Auth.is_misconfiguration());
        assert!(!ErrorKind::Timeout.is_misconfiguration());
    }
}
