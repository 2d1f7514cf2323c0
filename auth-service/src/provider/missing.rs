//! `ipcheck_provider_attribute_missing_total{attribute}`: provider answers that lacked an
//! attribute (country, AS number, score) some policy decides on.
//!
//! Such an answer is not schema drift: a vendor may not know the country or the score of one
//! address, and the policy then treats the attribute as unknown (docs/facts.md). But a vendor
//! that stopped sending the field would otherwise go unnoticed, with every address quietly
//! passing the policy's country, AS number or score rules; a counter that climbs with
//! `ipcheck_provider_requests_total` shows it.

use std::sync::atomic::{AtomicU64, Ordering};

use ipcheck_core::Attributes;

use super::mapping::{Attribute, FieldMapping};

/// The counters, one per attribute, in [`Attribute::ALL`] order.
#[derive(Debug, Default)]
pub struct MissingAttributes([AtomicU64; Attribute::ALL.len()]);

impl MissingAttributes {
    /// Counts each attribute the mapping expects and `attributes` lack.
    pub fn observe(&self, mapping: &FieldMapping, attributes: &Attributes) {
        for a in mapping.missing(attributes) {
            self.0[a as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many answers lacked `attribute`.
    pub fn get(&self, attribute: Attribute) -> u64 {
        self.0[attribute as usize].load(Ordering::Relaxed)
    }

    /// The Prometheus exposition.
    pub fn render(&self, out: &mut String) {
        crate::exposition::counter_family(
            out,
            "ipcheck_provider_attribute_missing_total",
            "Provider answers without an attribute some policy decides on (treated as unknown, not as drift).",
            "attribute",
            Attribute::ALL
                .into_iter()
                .map(|a| (a.name(), self.get(a))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::preset::Preset;
    use ipcheck_core::Country;

    #[test]
    fn counts_only_expected_attributes() {
        let mut m = Preset::Ipqs.mapping();
        m.expect_attributes(vec![Attribute::Country, Attribute::Score]);
        let counts = MissingAttributes::default();
        counts.observe(&m, &Attributes::NONE);
        let us = Attributes {
            country: Country::parse("US").ok(),
            ..Attributes::NONE
        };
        counts.observe(&m, &us);
        assert_eq!(counts.get(Attribute::Country), 1);
        assert_eq!(counts.get(Attribute::Score), 2);
        assert_eq!(counts.get(Attribute::Asn), 0);
        let mut text = String::new();
        counts.render(&mut text);
        assert!(text.contains("ipcheck_provider_attribute_missing_total{attribute=\"score\"} 2"));
        assert!(text.contains("ipcheck_provider_attribute_missing_total{attribute=\"asn\"} 0"));
    }
}
