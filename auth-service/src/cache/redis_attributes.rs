//! Whether writes to Redis carry country, AS number and score (`IPCHECK SET ... COUNTRY ASN
//! SCORE`). A module that predates them refuses those options, and every write-back would fail:
//! the startup verification's SET probe finds such a module (see
//! [`super::redis_verify::set_probe_outcome`]), the service says how to fix it and writes
//! entries without attributes (what that module stores) until a later verification finds the
//! module upgraded. Upgrading the module first, then the services, never hits this.

use std::sync::atomic::{AtomicBool, Ordering};

use ipcheck_core::Attributes;

/// Whether writes carry attributes: on until a verification finds the module without them.
pub struct AttributeWrites {
    on: AtomicBool,
}

impl Default for AttributeWrites {
    fn default() -> Self {
        AttributeWrites {
            on: AtomicBool::new(true),
        }
    }
}

impl AttributeWrites {
    /// What a write sends of `attributes`: all of them, or none while the module lacks them.
    pub fn sent(&self, attributes: Attributes) -> Attributes {
        if self.on.load(Ordering::Relaxed) {
            attributes
        } else {
            Attributes::NONE
        }
    }

    /// Applies a verification's finding; logs when it changes (`redis`: the address, for the log).
    pub fn apply(&self, module_knows_them: bool, redis: &str) {
        let was = self.on.swap(module_knows_them, Ordering::Relaxed);
        if was && !module_knows_them {
            tracing::warn!(redis = %redis, "the loaded ipcheck module predates attributes (IPCHECK SET refuses COUNTRY): entries are written to Redis without country, AS number and score, so other instances decide without them; upgrade the module");
        } else if !was && module_knows_them {
            tracing::info!(redis = %redis, "IPCHECK SET takes COUNTRY, ASN and SCORE again: entries are written with them");
        }
    }
}

#[cfg(test)]
mod tests {
    use ipcheck_core::Score;

    use super::*;

    #[test]
    fn attributes_are_dropped_only_while_the_module_lacks_them() {
        let known = Attributes {
            score: Score::new(87),
            ..Attributes::NONE
        };
        let writes = AttributeWrites::default();
        assert_eq!(writes.sent(known), known);
        writes.apply(false, "x");
        assert_eq!(writes.sent(known), Attributes::NONE);
        writes.apply(true, "x");
        assert_eq!(writes.sent(known), known);
    }
}
