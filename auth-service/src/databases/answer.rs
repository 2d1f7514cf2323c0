//! What the databases together say about one address, whether that is all a policy needs, and
//! how it joins a provider's answer. Pure: the rules are tested without files.
//!
//! - A database *gives* a category when its record answers it, `true` or `false`
//!   ([`crate::provider::mapping::Mapped::answered`]), and an attribute when it is known. An
//!   address a database does not hold gives nothing.
//! - Several databases: categories are the union; for an attribute the first database in name
//!   order that knows it wins.
//! - With the provider's answer: the provider's attributes first, the databases' filling what it
//!   does not say; categories are the union (a flag either source raises counts).

use ipcheck_core::{Attributes, Categories, Facts, Needs};

/// The databases' answer about one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbAnswer {
    /// The facts they give.
    pub facts: Facts,
    /// The categories they answered, `false` included.
    pub answered: Categories,
}

impl DbAnswer {
    /// Nothing given (no database holds the address, or none is configured).
    pub const NOTHING: DbAnswer = DbAnswer {
        facts: Facts::EMPTY,
        answered: Categories::EMPTY,
    };

    /// Whether no database gave anything.
    pub fn is_nothing(&self) -> bool {
        self.answered.is_empty() && self.facts.attributes.is_empty()
    }

    /// Adds one database's answer (databases are added in name order: an earlier one's
    /// attributes win).
    pub fn add(&mut self, facts: Facts, answered: Categories) {
        self.facts = Facts {
            categories: self.facts.categories.union(facts.categories),
            attributes: self.facts.attributes.or(facts.attributes),
        };
        self.answered = self.answered.union(answered);
    }

    /// Whether these facts are every fact a policy with `needs` decides on, so no provider
    /// answer could change its decision.
    pub fn covers(&self, needs: &Needs) -> bool {
        let a: &Attributes = &self.facts.attributes;
        needs.categories.intersection(self.answered) == needs.categories
            && (!needs.country || a.country.is_some())
            && (!needs.asn || a.asn.is_some())
            && (!needs.score || a.score.is_some())
    }

    /// A provider's (or cached provider) facts, with what the databases know filled in.
    pub fn fill(&self, provider: Facts) -> Facts {
        Facts {
            categories: provider.categories.union(self.facts.categories),
            attributes: provider.attributes.or(self.facts.attributes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::{Asn, Category, Country, Score};

    fn country(c: &str) -> Attributes {
        Attributes {
            country: Country::parse(c).ok(),
            ..Attributes::NONE
        }
    }

    fn needs(categories: Categories, country: bool, asn: bool, score: bool) -> Needs {
        Needs {
            categories,
            country,
            asn,
            score,
        }
    }

    #[test]
    fn coverage_needs_every_category_answered_and_every_attribute_known() {
        let vpn = Categories::EMPTY.with(Category::Vpn);
        let vpn_tor = vpn.with(Category::Tor);
        let mut a = DbAnswer::NOTHING;
        assert!(a.is_nothing());
        assert!(a.covers(&needs(Categories::EMPTY, false, false, false)));
        assert!(!a.covers(&needs(vpn, false, false, false)));
        // An answered `false` covers as well as a `true`.
        a.add(Facts::EMPTY, vpn);
        assert!(a.covers(&needs(vpn, false, false, false)));
        assert!(!a.covers(&needs(vpn_tor, false, false, false)));
        assert!(!a.covers(&needs(vpn, true, false, false)));
        a.add(
            Facts {
                categories: Categories::EMPTY,
                attributes: country("GB"),
            },
            Categories::EMPTY,
        );
        assert!(a.covers(&needs(vpn, true, false, false)));
        assert!(!a.covers(&needs(vpn, true, true, false)));
        assert!(!a.covers(&needs(vpn, true, false, true)));
    }

    #[test]
    fn the_first_database_knowing_an_attribute_wins_and_categories_add_up() {
        let mut a = DbAnswer::NOTHING;
        a.add(
            Facts {
                categories: Categories::EMPTY.with(Category::Vpn),
                attributes: country("GB"),
            },
            Categories::EMPTY.with(Category::Vpn),
        );
        a.add(
            Facts {
                categories: Categories::EMPTY.with(Category::Tor),
                attributes: Attributes {
                    asn: Asn::new(13335),
                    ..country("US")
                },
            },
            Categories::EMPTY.with(Category::Tor),
        );
        assert_eq!(a.facts.attributes.country, Country::parse("GB").ok());
        assert_eq!(a.facts.attributes.asn, Asn::new(13335));
        assert!(a.facts.categories.contains(Category::Vpn));
        assert!(a.facts.categories.contains(Category::Tor));
    }

    #[test]
    fn the_provider_says_first_and_the_databases_fill_the_gaps() {
        let mut a = DbAnswer::NOTHING;
        a.add(
            Facts {
                categories: Categories::EMPTY.with(Category::Hosting),
                attributes: Attributes {
                    asn: Asn::new(64512),
                    ..country("GB")
                },
            },
            Categories::EMPTY.with(Category::Hosting),
        );
        let provider = Facts {
            categories: Categories::EMPTY.with(Category::Vpn),
            attributes: Attributes {
                score: Score::new(90),
                ..country("FR")
            },
        };
        let f = a.fill(provider);
        assert_eq!(f.attributes.country, Country::parse("FR").ok());
        assert_eq!(f.attributes.asn, Asn::new(64512));
        assert_eq!(f.attributes.score, Score::new(90));
        assert_eq!(
            f.categories,
            Categories::EMPTY
                .with(Category::Vpn)
                .with(Category::Hosting)
        );
    }
}
