//! Never crash Redis: tens of thousands of random IPCHECK argument vectors against a live server,
//! then the server still answers PING, no handler panicked, and no key outside the prefix changed.
//!
//! Seeded: set `IPCHECK_FUZZ_SEED` to replay a failing run (the seed is printed on failure);
//! `IPCHECK_FUZZ_CASES` changes the number of vectors (default 30000).

use std::collections::BTreeMap;

use ipcheck_core::protocol::{parse_get, GET_FIELDS};
use ipcheck_core::{
    decode_stored, encode_stored, Attributes, Entry, Reasons, Score, Source, Verdict,
};
use ipcheck_tests::ipcheck::reply_value;
use ipcheck_tests::RedisServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};

const SUBCOMMANDS: &[&str] = &[
    "get", "set", "del", "key", "stats", "help", "GET", "SeT", "DEL", "Key", "STATS", "HELP",
    "lget", "LGET", "LGet", "lset", "LSET",
];
const WORDS: &[&str] = &[
    "EX",
    "ex",
    "REASON",
    "reason",
    "SOURCE",
    "source",
    "FORCE",
    "force",
    "PERSIST",
    "persist",
    "STALE",
    "stale",
    "COUNTRY",
    "asn",
    "Score",
    "US",
    "AS13335",
    "100",
    "101",
    "PX",
    "NX",
    "GET",
    "allow",
    "BLOCK",
    "Challenge",
    "deny",
    "manual",
    "api",
    "list",
    "vpn,tor",
    "vpn,,tor",
    // A newer writer's reason bits (docs/vocabulary.md), and spellings that are only custom tokens.
    "tor,unknown-20",
    "unknown-31",
    "unknown-3",
    "unknown-32",
    "unknown-020",
    "137438953473",
    "VPN",
    "",
    " ",
    "0",
    "1",
    "-1",
    "31536000",
    "31536001",
    "99999999999999999999",
    "1e3",
    "0x10",
    "86400",
    "+5",
    "00",
    "ipcheck:",
    "ipcheck:192.0.2.1",
    "ipcheck:{192.0.2.1}",
    "{",
    "}",
    "sentinel",
    "*",
    "\r\n",
    "\0",
];
const VERDICTS: &[&str] = &["allow", "block", "challenge", "ALLOW", "Block", "deny", ""];
const OPTIONS: &[&str] = &[
    "EX", "ex", "STALE", "stale", "REASON", "SOURCE", "source", "FORCE", "force", "PERSIST",
    "persist", "PX", "KEEPTTL", "COUNTRY", "country", "ASN", "asn", "SCORE", "score",
];
const IPS: &[&str] = &[
    "192.0.2.1",
    "0.0.0.0",
    "255.255.255.255",
    "1.2.3",
    "010.0.0.1",
    "0x7f.0.0.1",
    "16909060",
    "1.2.3.4.",
    " 1.2.3.4",
    "::",
    "::1",
    "::ffff:192.0.2.1",
    "::FFFF:c000:201",
    "[2001:db8::1]",
    "2001:DB8:1:2:3:4:5:6",
    "fe80::1%eth0",
    "2001:db8:1:2::/64",
    "2001:db8::/32",
    "1.2.3.4/32",
    "1.2.3.4/24",
    "1.2.3.4/33",
    "::/0",
    "2001:db8::1/",
    "[::1",
    "1:2:3:4:5:6:7:8:9",
    "::1.2.3.4",
];

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

fn ipish(rng: &mut StdRng) -> Vec<u8> {
    const ALPHABET: &[u8] = b"0123456789abcdefABCDEF:.[]/%x ";
    let len = rng.random_range(0..48);
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

fn random_arg(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..100) {
        0..=24 => IPS[rng.random_range(0..IPS.len())].as_bytes().to_vec(),
        25..=49 => WORDS[rng.random_range(0..WORDS.len())].as_bytes().to_vec(),
        50..=69 => ipish(rng),
        70..=79 => random_bytes(rng, 16),
        80..=89 => {
            // A valid address with random mutations.
            let mut b = IPS[rng.random_range(0..3)].as_bytes().to_vec();
            let i = rng.random_range(0..b.len());
            b[i] = rng.random();
            b
        }
        90..=98 => format!("ipcheck:{}", String::from_utf8_lossy(&ipish(rng))).into_bytes(),
        _ => {
            // Occasionally huge.
            let len = rng.random_range(1000..70_000);
            vec![b"9:."[rng.random_range(0..3)]; len]
        }
    }
}

fn pick(rng: &mut StdRng, from: &[&str]) -> Vec<u8> {
    from[rng.random_range(0..from.len())].as_bytes().to_vec()
}

/// An argument vector: an `IPCHECK` call, or the lean read `IPCHECK.LGET` or the lean write
/// `IPCHECK.LSET` (drawn as the pseudo-subcommands `lget` and `lset`, then given their own names:
/// most of those, not all, so that `IPCHECK LGET` and `IPCHECK LSET` are called too).
fn random_vector(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut argv = random_container_vector(rng);
    if argv.len() >= 2 && rng.random_bool(0.9) {
        let name = if argv[1].eq_ignore_ascii_case(b"lget") {
            pick(rng, &["IPCHECK.LGET", "ipcheck.lget", "IpCheck.LGet"])
        } else if argv[1].eq_ignore_ascii_case(b"lset") {
            pick(rng, &["IPCHECK.LSET", "ipcheck.lset", "IpCheck.LSet"])
        } else {
            return argv;
        };
        argv.remove(0);
        argv[0] = name;
    }
    argv
}

/// A lean write's value: what `IPCHECK SET` would store for some entry (a pin among them), that
/// value altered, or anything at all.
fn lean_value(rng: &mut StdRng) -> Vec<u8> {
    let verdict = [Verdict::Allow, Verdict::Block, Verdict::Challenge][rng.random_range(0..3)];
    let reasons = ["", "vpn", "vpn,tor", "my-feed", "tor,unknown-20"][rng.random_range(0..5)];
    let source = ["api", "list", "manual", "feed_2"][rng.random_range(0..4)];
    let mut entry = Entry {
        verdict,
        reasons: Reasons::parse(reasons).unwrap(),
        source: Source::parse(source).unwrap(),
        attributes: Attributes::NONE,
    };
    if rng.random_bool(0.3) {
        entry.attributes.score = Score::new(rng.random_range(0..=100));
    }
    let stale = [0, 60, 604_800, 31_536_000][rng.random_range(0..4)];
    let mut value = encode_stored(&entry, stale).into_bytes();
    match rng.random_range(0..10) {
        0..=5 => {}
        6 => value.extend_from_slice(pick(rng, &[";", ";x", ";;;", "0", ";US;1;2;3"]).as_slice()),
        7 => {
            let i = rng.random_range(0..value.len());
            value[i] = rng.random();
        }
        8 => value.insert(0, b'0'),
        _ => value = random_arg(rng),
    }
    value
}

/// An `IPCHECK` argument vector shaped like a real call half of the time (so the parsers and the
/// keyspace code run, not just Redis's arity check), and anything at all otherwise.
fn random_container_vector(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut argv = vec![b"IPCHECK".to_vec()];
    if rng.random_bool(0.97) {
        argv.push(pick(rng, SUBCOMMANDS));
    } else {
        // Redis itself quotes an unknown subcommand raw in its error, and the client refuses
        // non-UTF-8 error lines, so unknown subcommands stay ASCII.
        argv.push(ipish(rng));
    }
    if rng.random_bool(0.5) {
        let sub = argv[1].to_ascii_lowercase();
        match sub.as_slice() {
            b"get" | b"del" | b"key" => argv.push(random_arg(rng)),
            // The lean read takes the key itself: under the prefix, with or without a hash tag,
            // of any address text (canonical or not), or anything at all.
            b"lget" => argv.push(match rng.random_range(0..4) {
                0 => [b"ipcheck:".to_vec(), pick(rng, IPS)].concat(),
                1 => [b"ipcheck:{".to_vec(), pick(rng, IPS), b"}".to_vec()].concat(),
                2 => [b"ipcheck:".to_vec(), random_arg(rng)].concat(),
                _ => random_arg(rng),
            }),
            b"lset" => {
                argv.push(match rng.random_range(0..5) {
                    0 | 1 => [b"ipcheck:".to_vec(), pick(rng, IPS)].concat(),
                    2 => [b"ipcheck:{".to_vec(), pick(rng, IPS), b"}".to_vec()].concat(),
                    3 => [b"ipcheck:".to_vec(), random_arg(rng)].concat(),
                    _ => random_arg(rng),
                });
                argv.push(lean_value(rng));
                argv.push(pick(
                    rng,
                    &[
                        "1", "60", "86400", "31536000", "0", "-1", "x", "31536001", "07", "",
                    ],
                ));
                if rng.random_bool(0.05) {
                    argv.push(random_arg(rng));
                }
            }
            b"set" if rng.random_bool(0.1) => {
                // Well formed, with attributes, so writes that carry them are reached too (to
                // addresses no other vector touches, so they are there to check at the end).
                argv.push(format!("198.51.100.{}", rng.random_range(0..64)).into_bytes());
                argv.push(VERDICTS[rng.random_range(0..3)].as_bytes().to_vec());
                for (opt, values) in [
                    ("COUNTRY", &["US", "de", "XK"][..]),
                    ("ASN", &["13335", "AS64496", "4294967295"][..]),
                    ("SCORE", &["0", "87", "100"][..]),
                ] {
                    if rng.random_bool(0.6) {
                        argv.push(opt.as_bytes().to_vec());
                        argv.push(pick(rng, values));
                    }
                }
            }
            b"set" => {
                argv.push(if rng.random_bool(0.7) {
                    pick(rng, IPS)
                } else {
                    random_arg(rng)
                });
                argv.push(if rng.random_bool(0.8) {
                    pick(rng, VERDICTS)
                } else {
                    random_arg(rng)
                });
                for _ in 0..rng.random_range(0..5) {
                    let opt = pick(rng, OPTIONS);
                    let value = match opt.to_ascii_uppercase().as_slice() {
                        b"EX" => pick(rng, &["1", "60", "86400", "31536000", "0", "-1", "x", ""]),
                        b"STALE" => pick(
                            rng,
                            &[
                                "0", "1", "604800", "31536000", "31536001", "-1", "x", "", "07",
                            ],
                        ),
                        b"REASON" => pick(
                            rng,
                            &["vpn", "vpn,tor", "tor,vpn", "my-feed", "", "A", "a,,b"],
                        ),
                        b"SOURCE" => pick(rng, &["api", "list", "manual", "feed_2", "", "a b"]),
                        b"COUNTRY" => pick(
                            rng,
                            &[
                                "US", "de", "Xk", "USA", "U", "", "1A", "é", "u\0", ";", "US;1",
                            ],
                        ),
                        b"ASN" => pick(
                            rng,
                            &[
                                "13335",
                                "AS13335",
                                "as1",
                                "4294967295",
                                "4294967296",
                                "0",
                                "AS",
                                "-1",
                                "",
                                "1;2",
                                "013335",
                            ],
                        ),
                        b"SCORE" => pick(
                            rng,
                            &["0", "87", "100", "101", "-1", "1.5", "", "007", "255", "x"],
                        ),
                        _ => Vec::new(),
                    };
                    argv.push(opt);
                    if !value.is_empty() || rng.random_bool(0.5) {
                        argv.push(value);
                    }
                }
            }
            _ => {}
        }
        return argv;
    }
    for _ in 0..rng.random_range(0..9) {
        argv.push(random_arg(rng));
    }
    if rng.random_bool(0.02) {
        argv.truncate(1);
    }
    argv
}

/// Every key outside the prefix, with its value dump and absolute expiry.
fn outside_prefix(con: &mut Connection) -> BTreeMap<Vec<u8>, (Vec<u8>, i64)> {
    snapshot(con, |k| !k.starts_with(b"ipcheck:"))
}

/// Every key `keep` selects, with its value dump and absolute expiry.
fn snapshot(
    con: &mut Connection,
    keep: impl Fn(&[u8]) -> bool,
) -> BTreeMap<Vec<u8>, (Vec<u8>, i64)> {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).unwrap();
    keys.into_iter()
        .filter(|k| keep(k))
        .map(|k| {
            let dump: Vec<u8> = redis::cmd("DUMP").arg(&k).query(con).unwrap();
            // The absolute expiry: exact, and unchanged by the clock ticking.
            let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(con).unwrap();
            (k, (dump, at))
        })
        .collect()
}

/// Sends `cases` random vectors (a tenth of them through Lua), pipelined, ignoring replies;
/// fails if the connection itself breaks.
fn send_random_vectors(
    con: &mut Connection,
    rng: &mut StdRng,
    cases: usize,
    seed: u64,
    server: &RedisServer,
) {
    let mut sent = 0;
    while sent < cases {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for _ in 0..500.min(cases - sent) {
            let argv = random_vector(rng);
            if rng.random_bool(0.1) {
                // The same vector through Lua, where errors become Lua errors.
                let mut cmd = redis::cmd("EVAL");
                cmd.arg("return redis.pcall(unpack(ARGV))")
                    .arg(0)
                    .arg(&argv);
                pipe.add_command(cmd);
            } else {
                let mut cmd = redis::Cmd::new();
                cmd.arg(&argv);
                pipe.add_command(cmd);
            }
            sent += 1;
        }
        let replies: redis::RedisResult<Vec<redis::RedisResult<Value>>> = pipe.query(con);
        assert!(
            replies.is_ok(),
            "seed {seed}: connection failed after {sent}: {replies:?}\n{}",
            server.log()
        );
    }
}

fn seed_and_cases() -> (u64, usize) {
    let seed: u64 = std::env::var("IPCHECK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cases: usize = std::env::var("IPCHECK_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30_000);
    (seed, cases)
}

#[test]
fn random_argument_vectors_never_crash_or_touch_other_keys() {
    let (seed, cases) = seed_and_cases();
    let mut rng = StdRng::seed_from_u64(seed);
    let server = RedisServer::start();
    let mut con = server.client();
    // Sentinels: keys outside the prefix, some looking like entries, some with TTLs.
    let _: () = redis::cmd("SET")
        .arg("sentinel")
        .arg("untouched")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("192.0.2.1")
        .arg("1")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("other:192.0.2.1")
        .arg("1")
        .arg("EX")
        .arg(9999)
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("ipcheck")
        .arg("f")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let before = outside_prefix(&mut con);

    send_random_vectors(&mut con, &mut rng, cases, seed, &server);

    let pong: String = redis::cmd("PING").query(&mut con).unwrap_or_default();
    assert_eq!(pong, "PONG", "seed {seed}");
    let log = server.log();
    assert!(
        !log.contains("bug caught"),
        "seed {seed}: a handler panicked:\n{log}"
    );
    assert_eq!(
        outside_prefix(&mut con),
        before,
        "seed {seed}: a key outside the prefix changed"
    );
    // Every entry the module wrote reads back (no corrupt value, a stale window never past its
    // limit, never on a manual pin), and its key lives no longer than EX + STALE allow, or, only
    // for a manual pin (PERSIST), for good.
    let keys: Vec<String> = redis::cmd("KEYS").arg("ipcheck:*").query(&mut con).unwrap();
    let mut with_attributes = 0;
    for key in keys.iter().filter(|k| k.as_str() != "ipcheck") {
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut con).unwrap();
        if kind != "string" {
            continue;
        }
        let reply: Value = redis::cmd("IPCHECK")
            .arg("GET")
            .arg(key)
            .query(&mut con)
            .unwrap_or_else(|e| panic!("seed {seed}: {key} does not read back: {e}"));
        let Value::Array(items) = reply else {
            continue; // expired meanwhile
        };
        assert_eq!(
            items.len(),
            2 * GET_FIELDS.len(),
            "seed {seed}: {key}: {items:?}"
        );
        let hit = parse_get(
            items
                .chunks_exact(2)
                .map(|kv| (reply_value(&kv[0]), reply_value(&kv[1]))),
        )
        .unwrap_or_else(|e| panic!("seed {seed}: {key}: {e}: {items:?}"));
        // The stored value is the one encoding of what GET shows (attributes included).
        let raw: Option<Vec<u8>> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        if let Some(raw) = raw {
            let (entry, stale) =
                decode_stored(&raw).unwrap_or_else(|e| panic!("seed {seed}: {key}: {e}: {raw:?}"));
            assert_eq!(entry.attributes, hit.attributes, "seed {seed}: {key}");
            assert_eq!(
                encode_stored(&entry, stale).as_bytes(),
                raw,
                "seed {seed}: {key}"
            );
            // Never an integer: Redis would int-encode it after a load or on a replica.
            assert!(
                std::str::from_utf8(&raw).map_or(true, |v| v.parse::<i64>().is_err()),
                "seed {seed}: {key}: {raw:?}"
            );
        }
        if !hit.attributes.is_empty() {
            with_attributes += 1;
        }
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut con).unwrap();
        // Only an operator's pin (SOURCE manual with PERSIST) may live without expiry.
        let manual = items.get(5) == Some(&Value::BulkString(b"manual".to_vec()));
        if ttl == -1 && manual {
            continue;
        }
        assert!(
            (0..=2 * 31_536_000).contains(&ttl),
            "seed {seed}: {key} ttl {ttl}: {items:?}"
        );
    }

    let stats: Vec<(String, i64)> = redis::cmd("IPCHECK").arg("STATS").query(&mut con).unwrap();
    let stat = |name: &str| stats.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
    eprintln!(
        "seed {seed}: {cases} vectors, {with_attributes} entries with attributes, module counters {stats:?}"
    );
    // The generator must reach writes with COUNTRY, ASN or SCORE.
    assert!(
        with_attributes > 0,
        "seed {seed}: no entry with attributes was written"
    );
    // The generator must reach both the error paths and the working ones.
    assert!(
        stat("errors") > 0,
        "seed {seed}: no malformed calls: {stats:?}"
    );
    assert!(
        stat("sets") > 0 && stat("hits") + stat("misses") > 0,
        "seed {seed}: {stats:?}"
    );
    // The lean write must be reached on both paths too: stores and refusals.
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    let lset = info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_ipcheck.lset:"))
        .unwrap_or_else(|| panic!("seed {seed}: IPCHECK.LSET never called"));
    let field = |name: &str| -> i64 {
        lset.split(',')
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (calls, failed) = (field("calls="), field("failed_calls="));
    assert!(
        failed > 0 && calls > failed,
        "seed {seed}: IPCHECK.LSET {lset}"
    );
    // No bug was caught, not even one the rate-limited log held back.
    assert_eq!(
        (stat("handler_panics"), stat("filter_panics")),
        (0, 0),
        "seed {seed}: {stats:?}"
    );
}

#[test]
fn random_vectors_from_a_read_only_user_change_nothing() {
    // The command filter makes Redis check ACL key patterns against the real key; whatever a
    // user limited to `%R~ipcheck:*` sends, the keyspace must stay exactly as it was.
    let (seed, cases) = seed_and_cases();
    let mut rng = StdRng::seed_from_u64(seed);
    let server = RedisServer::start();
    let mut admin = server.client();
    for (ip, verdict) in [
        ("192.0.2.1", "block"),
        ("0.0.0.0", "allow"),
        ("::", "challenge"),
    ] {
        let _: () = redis::cmd("IPCHECK")
            .arg("SET")
            .arg(ip)
            .arg(verdict)
            .query(&mut admin)
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("sentinel")
        .arg("x")
        .query(&mut admin)
        .unwrap();
    server.acl_user("ro", &["%R~ipcheck:*", "+ipcheck", "+eval", "+eval_ro"]);
    let before = snapshot(&mut admin, |_| true);
    let mut con = server.client_as("ro", "pass").unwrap();
    send_random_vectors(&mut con, &mut rng, cases / 3, seed, &server);
    let pong: String = redis::cmd("PING").query(&mut admin).unwrap_or_default();
    assert_eq!(pong, "PONG", "seed {seed}");
    assert_eq!(
        snapshot(&mut admin, |_| true),
        before,
        "seed {seed}: a read-only user changed the keyspace"
    );
    let sets: Vec<(String, i64)> = redis::cmd("IPCHECK")
        .arg("STATS")
        .query(&mut admin)
        .unwrap();
    let stat = |name: &str| sets.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
    assert_eq!(
        (stat("sets"), stat("deletes")),
        (3, 0),
        "seed {seed}: {sets:?}"
    );
    assert!(
        stat("hits") + stat("misses") > 0,
        "seed {seed}: the user never read: {sets:?}"
    );
}
