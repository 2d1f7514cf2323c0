//! Enrichment through Redis Streams: cold addresses of `on_miss = "allow"` policies are
//! answered at once and queued ([`queue`]); `ipcheck-auth worker` processes ([`worker`]) read
//! the queue as one consumer group, ask the provider under the same breaker and budget as the
//! inline path, and store the facts with `IPCHECK SET` exactly as the inline write-back does,
//! so the next request for the address is decided on facts. Key names, commands and reply
//! parsing live in [`stream`]; docs/enrichment.md is the reference.

pub mod counts;
pub mod queue;
pub mod settings;
pub mod stream;
pub mod worker;
