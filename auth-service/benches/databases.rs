//! Criterion micro-benchmark of the local databases on the request path (issue #13): one lookup
//! in each of the public MaxMind test files (country, ASN, anonymous-IP) for an address the file
//! holds and one it does not, the three together as the lookup asks them, and the same country
//! lookup decoding the whole record as JSON instead of only the mapped paths (why
//! `Database::lookup` decodes paths). The baseline is a request with no database configured.
//! Run with `cargo bench -p ipcheck-auth --bench databases`.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use ipcheck_auth::databases::Databases;

fn fixture(name: &str) -> String {
    format!(
        "{}/../tests/fixtures/mmdb/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn open(sections: &[(&str, &str, &str)]) -> Databases {
    let text: String = sections
        .iter()
        .map(|(name, file, preset)| {
            format!(
                "[databases.{name}]\nfile = \"{}\"\npreset = \"{preset}\"\n",
                fixture(file)
            )
        })
        .collect();
    let settings = ipcheck_auth::config::parse("bench", &text, &[]).expect("config");
    Databases::open("bench", &settings.databases, None).expect("fixtures open")
}

fn bench(c: &mut Criterion) {
    let country = ("geo", "GeoLite2-Country-Test.mmdb", "country");
    let asn = ("asn", "GeoLite2-ASN-Test.mmdb", "asn");
    let anon = ("anon", "GeoIP2-Anonymous-IP-Test.mmdb", "anonymous-ip");
    let held: IpAddr = "81.2.69.142".parse().unwrap();
    let not_held: IpAddr = "10.20.30.40".parse().unwrap();
    let none = Databases::default();
    c.bench_function("databases_none", |b| {
        b.iter(|| black_box(none.lookup(black_box(held))))
    });
    for (label, section) in [("country", country), ("asn", asn), ("anonymous_ip", anon)] {
        let one = open(&[section]);
        let ip: IpAddr = if label == "asn" {
            "1.0.0.1".parse().unwrap()
        } else {
            held
        };
        c.bench_function(&format!("{label}_hit"), |b| {
            b.iter(|| black_box(one.lookup(black_box(ip))))
        });
        c.bench_function(&format!("{label}_miss"), |b| {
            b.iter(|| black_box(one.lookup(black_box(not_held))))
        });
    }
    let three = open(&[anon, asn, country]);
    let mix: Vec<IpAddr> = [
        "81.2.69.142",
        "2.125.160.217",
        "1.0.0.1",
        "89.160.20.130",
        "10.20.30.40",
        "2001:218::1",
        "1.2.3.4",
        "216.160.83.57",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    let mut i = 0usize;
    c.bench_function("three_databases_mix", |b| {
        b.iter(|| {
            i = (i + 1) & 7;
            black_box(three.lookup(black_box(mix[i])))
        })
    });
    let reader = maxminddb::Reader::open_readfile(fixture(country.1)).expect("open");
    c.bench_function("country_hit_whole_record_json", |b| {
        b.iter(|| {
            let found = reader.lookup(black_box(held)).expect("lookup");
            black_box(found.decode::<serde_json::Value>().expect("decode"))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
