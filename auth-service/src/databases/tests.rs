//! The presets and the file handling on the public MaxMind test databases
//! (`tests/fixtures/mmdb/`; addresses from their source JSON).

use std::path::{Path, PathBuf};

use ipcheck_core::{Asn, Categories, Category, Country, Needs, Score};

use super::database::Database;
use super::settings::DatabaseSpec;
use super::Databases;
use crate::provider::mapping::Attribute;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/mmdb")
        .join(name)
}

fn spec(name: &str, file: PathBuf, config: &str) -> DatabaseSpec {
    let text = format!(
        "[databases.{name}]\nfile = \"{}\"\n{config}\n",
        file.display()
    );
    let settings = crate::config::parse("test", &text, &[]).expect("valid config");
    settings.databases.into_iter().next().expect("one database")
}

fn open(name: &str, file: &str, config: &str) -> Database {
    Database::open(spec(name, fixture(file), config)).expect("fixture opens")
}

fn cats(list: &[Category]) -> Categories {
    list.iter().fold(Categories::EMPTY, |c, x| c.with(*x))
}

#[test]
fn country_preset_reads_the_country_then_the_registered_country() {
    let db = open("geo", "GeoLite2-Country-Test.mmdb", "preset = \"country\"");
    let (facts, answered) = db.lookup("81.2.69.142".parse().unwrap()).expect("held");
    assert_eq!(facts.attributes.country, Country::parse("GB").ok());
    assert_eq!(answered, Categories::EMPTY);
    // Located in GB, registered in FR: where it is used wins.
    let (facts, _) = db.lookup("2.125.160.217".parse().unwrap()).expect("held");
    assert_eq!(facts.attributes.country, Country::parse("GB").ok());
    let (facts, _) = db.lookup("2001:218::1".parse().unwrap()).expect("held");
    assert_eq!(facts.attributes.country, Country::parse("JP").ok());
    assert!(db.lookup("10.1.2.3".parse().unwrap()).is_none());
    assert_eq!(db.lookups(), [3, 1, 0]);
}

#[test]
fn asn_preset_reads_the_number() {
    let db = open("asn", "GeoLite2-ASN-Test.mmdb", "preset = \"asn\"");
    let (facts, _) = db.lookup("1.0.0.1".parse().unwrap()).expect("held");
    assert_eq!(facts.attributes.asn, Asn::new(15169));
    let (facts, _) = db.lookup("12.81.100.1".parse().unwrap()).expect("held");
    assert_eq!(facts.attributes.asn, Asn::new(7018));
    assert_eq!(facts.attributes.country, None);
}

#[test]
fn anonymous_ip_preset_answers_every_flag_of_a_record_it_holds() {
    let db = open(
        "anon",
        "GeoIP2-Anonymous-IP-Test.mmdb",
        "preset = \"anonymous-ip\"",
    );
    let all = cats(&[
        Category::Vpn,
        Category::Proxy,
        Category::Tor,
        Category::Hosting,
    ]);
    let (facts, answered) = db.lookup("81.2.69.7".parse().unwrap()).expect("held");
    assert_eq!(facts.categories, all);
    assert_eq!(answered, all);
    // Only is_public_proxy is written: the other flags are false, and answered.
    let (facts, answered) = db.lookup("186.30.236.9".parse().unwrap()).expect("held");
    assert_eq!(facts.categories, cats(&[Category::Proxy]));
    assert_eq!(answered, all);
    let (facts, _) = db.lookup("6.1.0.4".parse().unwrap()).expect("held");
    assert_eq!(
        facts.categories,
        cats(&[Category::Proxy]),
        "residential proxy"
    );
    let (facts, _) = db.lookup("1.2.0.1".parse().unwrap()).expect("held");
    assert_eq!(facts.categories, cats(&[Category::Vpn]));
    // Not held: nothing answered, so a policy still needs another source.
    assert!(db.lookup("8.8.8.8".parse().unwrap()).is_none());
    // Without absent_is_false only the flags written are answered.
    let strict = open(
        "anon",
        "GeoIP2-Anonymous-IP-Test.mmdb",
        "preset = \"anonymous-ip\"\nabsent_is_false = false",
    );
    let (_, answered) = strict
        .lookup("186.30.236.9".parse().unwrap())
        .expect("held");
    assert_eq!(answered, cats(&[Category::Proxy]));
}

#[test]
fn anonymizer_confidence_is_a_score_only_when_mapped() {
    let db = open(
        "plus",
        "GeoIP-Anonymous-Plus-Test.mmdb",
        "preset = \"anonymous-ip\"",
    );
    let (facts, _) = db.lookup("1.2.0.1".parse().unwrap()).expect("held");
    assert_eq!(facts.attributes.score, None);
    let db = open(
        "plus",
        "GeoIP-Anonymous-Plus-Test.mmdb",
        "preset = \"anonymous-ip\"\nfields.score = [\"anonymizer_confidence\"]",
    );
    let (facts, _) = db.lookup("1.2.0.1".parse().unwrap()).expect("held");
    assert_eq!(facts.attributes.score, Score::new(30));
    assert_eq!(facts.categories, cats(&[Category::Vpn]));
    assert!(db.spec.mapping.has_attribute(Attribute::Score));
}

#[test]
fn custom_fields_without_a_preset() {
    let db = open(
        "geo",
        "GeoLite2-Country-Test.mmdb",
        "fields.country = [\"registered_country.iso_code\"]",
    );
    let (facts, _) = db.lookup("2.125.160.217".parse().unwrap()).expect("held");
    assert_eq!(facts.attributes.country, Country::parse("FR").ok());
}

#[test]
fn several_databases_together_cover_a_policy() {
    let specs = [
        spec(
            "anon",
            fixture("GeoIP2-Anonymous-IP-Test.mmdb"),
            "preset = \"anonymous-ip\"",
        ),
        spec(
            "geo",
            fixture("GeoLite2-Country-Test.mmdb"),
            "preset = \"country\"",
        ),
    ];
    let dbs = Databases::open("test", &specs, None).expect("open");
    let answer = dbs.lookup("81.2.69.160".parse().unwrap());
    assert_eq!(answer.facts.attributes.country, Country::parse("GB").ok());
    assert!(answer.facts.categories.contains(Category::Tor));
    let needs = Needs {
        categories: cats(&[Category::Vpn, Category::Tor]),
        country: true,
        asn: false,
        score: false,
    };
    assert!(answer.covers(&needs));
    assert!(!answer.covers(&Needs { asn: true, ..needs }));
    // Held by the country database only: the categories are not answered.
    assert!(!dbs.lookup("89.160.20.130".parse().unwrap()).covers(&needs));
}

#[test]
fn broken_files_are_refused_with_the_file_named() {
    for name in [
        "MaxMind-DB-test-broken-pointers-24.mmdb",
        "MaxMind-DB-test-broken-search-tree-24.mmdb",
        "no-such-file.mmdb",
        "README.md",
    ] {
        let s = spec("bad", fixture(name), "preset = \"country\"");
        let Err(e) = Databases::open("test.toml", &[s], None) else {
            panic!("{name} was not refused");
        };
        let e = e.to_string();
        assert!(
            e.contains("databases.bad.file") && e.contains(name),
            "{name}: {e}"
        );
    }
}

#[test]
fn a_replaced_file_is_taken_and_a_broken_one_refused_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let live = dir.path().join("geo.mmdb");
    let swap = |from: &str| {
        let staged = dir.path().join("staged.mmdb");
        std::fs::copy(fixture(from), &staged).expect("copy");
        std::fs::rename(&staged, &live).expect("rename");
    };
    swap("GeoLite2-ASN-Test.mmdb");
    let db = Database::open(spec(
        "geo",
        live.clone(),
        "preset = \"country\"\nfields.asn = [\"autonomous_system_number\"]",
    ))
    .expect("opens");
    let ip = "81.2.69.142".parse().unwrap();
    assert!(
        db.lookup(ip).is_none(),
        "the ASN test file does not hold it"
    );
    assert!(!db.check(), "unchanged");
    swap("GeoLite2-Country-Test.mmdb");
    assert!(db.check());
    assert_eq!(
        db.lookup(ip).expect("held").0.attributes.country,
        Country::parse("GB").ok()
    );
    swap("MaxMind-DB-test-broken-search-tree-24.mmdb");
    assert!(!db.check());
    assert!(!db.check(), "the same bad file is not read again");
    assert_eq!(db.load_errors.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(db.refused().is_some_and(|why| why.contains("geo.mmdb")));
    assert!(
        db.lookup(ip).is_some(),
        "the previous version still answers"
    );
    swap("GeoLite2-Country-Test.mmdb");
    assert!(db.check());
    assert!(db.refused().is_none());
    assert_eq!(db.reloads.load(std::sync::atomic::Ordering::Relaxed), 2);
}

fn config_error(text: &str) -> String {
    crate::config::parse("test.toml", text, &[])
        .expect_err("refused")
        .to_string()
}

#[test]
fn config_errors_name_the_key() {
    let file = fixture("GeoLite2-Country-Test.mmdb");
    let f = file.display();
    for (section, key, says) in [
        ("preset = \"country\"", "databases.geo.file", "required"),
        (
            "file = \"x\"\npreset = \"city\"",
            "databases.geo.preset",
            "expected country, asn or anonymous-ip",
        ),
        (
            "file = \"x\"\nfields.colour = [\"a\"]",
            "databases.geo.fields.colour",
            "unknown fact",
        ),
        (
            "file = \"x\"\nfields.country = [\"country..iso_code\"]",
            "databases.geo.fields.country",
            "dotted record path",
        ),
        ("file = \"x\"", "databases.geo", "maps nothing"),
        (
            "file = \"x\"\npreset = \"asn\"\ncheck_interval = \"0s\"",
            "databases.geo.check_interval",
            "",
        ),
    ] {
        let e = config_error(&format!("[databases.geo]\n{section}\n"));
        assert!(e.contains(key) && e.contains(says), "{section}: {e}");
    }
    let e = config_error(&format!(
        "[databases.\"a b\"]\nfile = \"{f}\"\npreset = \"asn\"\n"
    ));
    assert!(e.contains("must be 1 to 64"), "{e}");
    // A policy on AS numbers needs a source: a database mapping one is enough.
    let policy = "[policies.default]\nblock_asns = [\"AS64512\"]\n";
    let e = config_error(policy);
    assert!(e.contains("no source gives 'asn'"), "{e}");
    let ok = format!("{policy}[databases.asn]\nfile = \"{f}\"\npreset = \"asn\"\n");
    assert!(crate::config::parse("test.toml", &ok, &[]).is_ok());
}

#[test]
fn a_new_configuration_keeps_unchanged_databases_and_rereads_replaced_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let live = dir.path().join("geo.mmdb");
    std::fs::copy(fixture("GeoLite2-ASN-Test.mmdb"), &live).expect("copy");
    let geo = spec("geo", live.clone(), "preset = \"country\"");
    let asn = spec("asn", fixture("GeoLite2-ASN-Test.mmdb"), "preset = \"asn\"");
    let running = Databases::open("test", &[asn.clone(), geo.clone()], None).expect("open");
    let ip = "81.2.69.142".parse().unwrap();
    assert_eq!(running.lookup(ip).facts.attributes.country, None);
    // As a SIGHUP would: the same settings, the file replaced meanwhile.
    let staged = dir.path().join("staged.mmdb");
    std::fs::copy(fixture("GeoLite2-Country-Test.mmdb"), &staged).expect("copy");
    std::fs::rename(&staged, &live).expect("rename");
    let next = Databases::open("test", &[asn, geo.clone()], Some(&running)).expect("reopen");
    assert!(std::sync::Arc::ptr_eq(&next.all()[1], &running.all()[1]));
    assert_eq!(
        next.lookup(ip).facts.attributes.country,
        Country::parse("GB").ok()
    );
    // A changed mapping is a new database; one that does not load refuses the configuration.
    let changed = spec("geo", live, "preset = \"asn\"");
    let other = Databases::open("test", &[changed], Some(&next)).expect("reopen");
    assert!(!std::sync::Arc::ptr_eq(&other.all()[0], &next.all()[1]));
    let broken = spec(
        "geo",
        fixture("MaxMind-DB-test-broken-pointers-24.mmdb"),
        "preset = \"country\"",
    );
    assert!(Databases::open("test", &[broken], Some(&next)).is_err());
}

mod corrupted {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Bytes flipped anywhere in a good file, or the file cut short: refused with an error,
        /// or (when the damage misses everything verified) looked up without a panic.
        #[test]
        fn damaged_files_are_refused_or_read_never_a_panic(
            flips in prop::collection::vec((any::<usize>(), 1u8..), 1..8),
            cut in prop::option::of(any::<usize>()),
            ips in prop::collection::vec(any::<u32>(), 1..16),
            file in prop::sample::select(vec![
                "GeoLite2-Country-Test.mmdb",
                "GeoIP2-Anonymous-IP-Test.mmdb",
                "GeoLite2-ASN-Test.mmdb",
            ]),
        ) {
            let mut bytes = std::fs::read(fixture(file)).expect("fixture");
            let n = bytes.len();
            for (i, x) in flips {
                bytes[i % n] ^= x;
            }
            if let Some(c) = cut {
                bytes.truncate(c % n);
            }
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("damaged.mmdb");
            std::fs::write(&path, &bytes).expect("write");
            let s = spec(
                "d",
                path,
                "preset = \"anonymous-ip\"\nfields.country = [\"country.iso_code\"]\nfields.asn = [\"autonomous_system_number\"]",
            );
            if let Ok(db) = Database::open(s) {
                for ip in ips {
                    let _ = db.lookup(std::net::IpAddr::from(ip.to_be_bytes()));
                    let _ = db.lookup("81.2.69.142".parse().unwrap());
                }
            }
        }
    }
}
