//! Opening a database file: read whole, then verified before anything uses it.
//!
//! Opening reads only the metadata at the end of the file, so a broken search tree or data
//! pointer would otherwise show only on the lookup that reaches it. [`load`] walks the whole
//! file first (`maxminddb`'s `verify`: every network of the search tree, the separator, every
//! record), so a corrupt file is refused as a whole and the one in use stays. The crate returns
//! errors on bad data; the walk also runs behind `catch_unwind`, so even a crate bug on a hostile
//! file is an error here, never a dead service.

use std::os::unix::fs::MetadataExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::SystemTime;

use maxminddb::Reader;

/// What tells one version of a file from the next: replaced by rename (a new inode) or
/// rewritten in place (a new size or mtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// The identity of the file at `path` now.
pub fn identity(path: &Path) -> std::io::Result<FileIdentity> {
    let m = std::fs::metadata(path)?;
    Ok(FileIdentity {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

/// A verified database, ready for lookups.
pub struct Loaded {
    /// The reader over the whole file in memory.
    pub reader: Reader<Vec<u8>>,
    /// The file version it was read from.
    pub identity: FileIdentity,
    /// When the vendor built it (`build_epoch` in its metadata), seconds since the epoch.
    pub build_epoch: u64,
    /// The vendor's name for its layout (`GeoLite2-Country`, ...).
    pub database_type: String,
    /// Nodes in its search tree, for `/readyz`.
    pub node_count: u32,
    /// When this process loaded it.
    pub loaded_at: SystemTime,
}

/// Reads and verifies the file at `path`; the error says what is wrong with it.
pub fn load(path: &Path) -> Result<Loaded, String> {
    // Taken before the read: if the file is replaced meanwhile, the next check sees a new
    // identity and loads again.
    let identity = identity(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let reader = Reader::from_source(bytes)?;
        reader.verify()?;
        Ok::<_, maxminddb::MaxMindDbError>(reader)
    }));
    let reader = match opened {
        Ok(Ok(reader)) => reader,
        Ok(Err(e)) => {
            return Err(format!(
                "{} is not a usable MaxMind DB (.mmdb) file: {e}",
                path.display()
            ))
        }
        Err(_) => {
            return Err(format!(
                "{} is not a usable MaxMind DB (.mmdb) file: the reader failed on it",
                path.display()
            ))
        }
    };
    let meta = reader.metadata();
    Ok(Loaded {
        build_epoch: meta.build_epoch,
        database_type: meta.database_type.clone(),
        node_count: meta.node_count,
        identity,
        reader,
        loaded_at: SystemTime::now(),
    })
}
