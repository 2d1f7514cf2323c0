//! The lookup against in-memory tiers and a clock moved by hand: fresh, stale, gone; budget and
//! breaker refusals; Redis down; refresh ahead; a cancelled request's call.

mod cold_read;
mod databases;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipcheck_core::{
    freshness, normalize, Aggregation, Asn, Attributes, Categories, Category, Country, Entry,
    Facts, FailureMode, LogLimiter, Policy, Reasons, RedisFailureMode, Score, Source, Verdict,
};
use tokio::sync::{watch, Notify};

use super::lifetimes::Lifetimes;
use super::*;
use crate::budget::Limit;
use crate::cache::local::LocalCache;
use crate::cache::redis::{ErrorKind, RedisError, Stored};
use crate::coalesce::Coalescer;
use crate::detached::Detached;
use crate::metrics::Metrics;
use crate::provider::gate::NoAnswer;
use crate::provider::ProviderError;

const DAY: u64 = 86_400;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// The test's clock: moved only by [`Clock::advance`].
struct Clock(Mutex<Instant>);

impl Clock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

/// A counter whose changes can be awaited.
struct Count(watch::Sender<usize>);

impl Count {
    fn new() -> Count {
        Count(watch::channel(0).0)
    }

    fn bump(&self) {
        self.0.send_modify(|n| *n += 1);
    }

    fn get(&self) -> usize {
        *self.0.borrow()
    }

    async fn reaches(&self, n: usize) {
        let mut rx = self.0.subscribe();
        tokio::time::timeout(s(5), rx.wait_for(|v| *v >= n))
            .await
            .expect("the count was reached")
            .expect("sender alive");
    }
}

/// Redis in memory: entries with an expiry and a stale window, read through core's freshness
/// as the module does.
struct FakeRedis {
    clock: Arc<Clock>,
    entries: Mutex<HashMap<String, (Entry, Instant, u32)>>,
    locks: Mutex<HashMap<String, Instant>>,
    down: AtomicBool,
    /// Its breaker is open: known to be failing, without a call.
    failing: AtomicBool,
    /// Reads made (one per key, a batch's too).
    reads: Count,
    /// While set, a read waits for `release` before answering what it found.
    held: AtomicBool,
    release: Notify,
    writes: Count,
}

impl FakeRedis {
    fn put(&self, key: &str, entry: Entry, fresh: Duration, stale: Duration) {
        let expires = self.clock.now() + fresh + stale;
        let window = u32::try_from(stale.as_secs()).unwrap();
        self.entries
            .lock()
            .unwrap()
            .insert(key.to_owned(), (entry, expires, window));
    }

    fn holds(&self, key: &str) -> Option<Entry> {
        self.entries.lock().unwrap().get(key).map(|e| e.0.clone())
    }

    /// What a read finds now.
    fn lookup(&self, key: &str) -> Result<Option<Stored>, RedisError> {
        self.fail_if_down()?;
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap();
        let Some((entry, expires, window)) = entries.get(key).cloned() else {
            return Ok(None);
        };
        if expires <= now {
            entries.remove(key);
            return Ok(None);
        }
        let left = expires - now;
        let f = freshness(Some(left.as_millis() as i64), window);
        Ok(Some(Stored {
            entry,
            ttl: left,
            fresh: f.fresh,
            fresh_ttl: s(f.fresh_ttl_secs.max(0) as u64),
        }))
    }

    fn fail_if_down(&self) -> Result<(), RedisError> {
        if self.down.load(Ordering::SeqCst) {
            Err(RedisError::bare(ErrorKind::Timeout))
        } else {
            Ok(())
        }
    }
}

impl SharedTier for FakeRedis {
    async fn get(&self, key: &str) -> Result<Option<Stored>, RedisError> {
        self.reads.bump();
        let found = self.lookup(key);
        if self.held.load(Ordering::SeqCst) {
            self.release.notified().await;
        }
        found
    }

    async fn get_many(&self, keys: &[&str]) -> Vec<Result<Option<Stored>, RedisError>> {
        let mut answers = Vec::with_capacity(keys.len());
        for key in keys {
            answers.push(self.get(key).await);
        }
        answers
    }

    fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    async fn set(
        &self,
        key: &str,
        verdict: Verdict,
        reasons: &Reasons,
        attributes: Attributes,
        fresh: Duration,
        stale: Duration,
    ) -> Result<(), RedisError> {
        self.fail_if_down()?;
        let pinned = self.holds(key).is_some_and(|e| e.source.is_manual());
        if !pinned {
            let entry = Entry {
                verdict,
                reasons: reasons.clone(),
                source: Source::parse("api").unwrap(),
                attributes,
            };
            self.put(key, entry, fresh, stale);
        }
        self.writes.bump();
        Ok(())
    }

    async fn refresh_lock(&self, key: &str, hold: Duration) -> Result<bool, RedisError> {
        self.fail_if_down()?;
        let now = self.clock.now();
        let mut locks = self.locks.lock().unwrap();
        if locks.get(key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        locks.insert(key.to_owned(), now + hold);
        Ok(true)
    }

    fn display(&self) -> &str {
        "fake"
    }

    fn key_prefix(&self) -> &str {
        "ipcheck:"
    }
}

/// What the fake provider does when asked.
#[derive(Clone, Copy)]
enum Answer {
    Facts(Categories),
    /// Categories and attributes.
    Full(Facts),
    Fails,
    OverBudget,
    BreakerOpen,
}

struct FakeSource {
    answer: Mutex<Answer>,
    /// Calls made (a refusal by the budget or the breaker is no call).
    calls: Count,
    /// While set, a call waits for `release`.
    held: AtomicBool,
    release: Notify,
}

impl FakeSource {
    fn answers(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }
}

impl FactSource for &FakeSource {
    async fn ask(&self, _ip: IpAddr) -> Result<ipcheck_core::Facts, NoAnswer> {
        let answer = *self.answer.lock().unwrap();
        match answer {
            Answer::OverBudget => return Err(NoAnswer::OverBudget(Limit::Rate)),
            Answer::BreakerOpen => return Err(NoAnswer::BreakerOpen),
            _ => {}
        }
        self.calls.bump();
        if self.held.load(Ordering::SeqCst) {
            self.release.notified().await;
        }
        match answer {
            Answer::Facts(facts) => Ok(facts.into()),
            Answer::Full(facts) => Ok(facts),
            _ => Err(NoAnswer::Failed(ProviderError::Timeout)),
        }
    }
}

struct World {
    clock: Arc<Clock>,
    local: LocalCache,
    redis: Option<FakeRedis>,
    provider: Option<FakeSource>,
    lifetimes: Lifetimes,
    policy: Policy,
    metrics: Metrics,
    flights: Coalescer<Resolved>,
    calls: Detached<Resolved>,
    refresh_log: Mutex<LogLimiter>,
    lists: crate::lists::ListStore,
    databases: crate::databases::Databases,
    queue: Option<crate::enrich::queue::Queue>,
}

impl Tiers for World {
    type Shared = FakeRedis;
    type Source<'a> = &'a FakeSource;

    fn now(&self) -> Instant {
        self.clock.now()
    }
    fn local(&self) -> &LocalCache {
        &self.local
    }
    fn shared(&self) -> Option<&FakeRedis> {
        self.redis.as_ref()
    }
    fn source(&self) -> Option<&FakeSource> {
        self.provider.as_ref()
    }
    fn lifetimes(&self) -> &Lifetimes {
        &self.lifetimes
    }
    fn default_policy(&self) -> &Policy {
        &self.policy
    }
    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    fn flights(&self) -> &Coalescer<Resolved> {
        &self.flights
    }
    fn calls(&self) -> &Detached<Resolved> {
        &self.calls
    }
    fn refresh_log(&self) -> &Mutex<LogLimiter> {
        &self.refresh_log
    }
    fn lists(&self) -> &crate::lists::ListStore {
        &self.lists
    }
    fn databases(&self) -> Option<&crate::databases::Databases> {
        Some(&self.databases).filter(|d| !d.is_empty())
    }

    fn queue(&self) -> Option<&crate::enrich::queue::Queue> {
        self.queue.as_ref()
    }
}

const KEY: &str = "192.0.2.7";

/// A blocking entry with these reasons, written by `source`.
fn entry(reasons: &str, source: &str) -> Entry {
    Entry {
        verdict: Verdict::Block,
        reasons: Reasons::parse(reasons).unwrap(),
        source: Source::parse(source).unwrap(),
        attributes: ipcheck_core::Attributes::NONE,
    }
}

fn tor() -> Categories {
    Categories::EMPTY.with(Category::Tor)
}

/// Redis and a provider answering `tor`; fresh a day, stale a week, local tier a minute.
fn world() -> Arc<World> {
    world_with(true)
}

/// [`world`], with or without the provider.
fn world_with(provider: bool) -> Arc<World> {
    let clock = Arc::new(Clock(Mutex::new(Instant::now())));
    Arc::new(World {
        local: LocalCache::new(1000, s(60)),
        redis: Some(FakeRedis {
            clock: Arc::clone(&clock),
            entries: Mutex::default(),
            locks: Mutex::default(),
            down: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            reads: Count::new(),
            held: AtomicBool::new(false),
            release: Notify::new(),
            writes: Count::new(),
        }),
        provider: provider.then(|| FakeSource {
            answer: Mutex::new(Answer::Facts(tor())),
            calls: Count::new(),
            held: AtomicBool::new(false),
            release: Notify::new(),
        }),
        lifetimes: Lifetimes {
            fresh: s(DAY),
            stale: s(7 * DAY),
            negative: s(30),
            degraded: s(5),
            refresh_ahead: s(3600),
        },
        policy: strict(),
        metrics: Metrics::default(),
        flights: Coalescer::default(),
        calls: Detached::default(),
        refresh_log: Mutex::new(LogLimiter::new(s(10))),
        lists: lists_holding(KEY),
        databases: crate::databases::Databases::default(),
        queue: None,
        clock,
    })
}

fn strict() -> Policy {
    Policy {
        block: tor(),
        on_error: FailureMode::Closed,
        on_redis_error: RedisFailureMode::Closed,
        ..Policy::default()
    }
}

fn lenient() -> Policy {
    Policy {
        block: tor(),
        on_error: FailureMode::Open,
        on_redis_error: RedisFailureMode::Continue,
        ..Policy::default()
    }
}

fn client() -> Client {
    let ip: IpAddr = KEY.parse().unwrap();
    Client {
        ip,
        key: normalize(KEY, Aggregation::default()).unwrap(),
    }
}

impl World {
    fn redis(&self) -> &FakeRedis {
        self.redis.as_ref().unwrap()
    }

    fn provider(&self) -> &FakeSource {
        self.provider.as_ref().unwrap()
    }

    /// Past the local tier's cap, so the next request asks Redis again.
    fn forget_locally(&self) {
        self.clock.advance(s(61));
    }
}

async fn ask(w: &Arc<World>, policy: &Policy) -> (Verdict, String, Tier) {
    let d = decide(w, policy, client()).await;
    (d.decision.verdict, d.decision.reasons.to_text(), d.tier)
}

#[tokio::test]
async fn fresh_then_stale_then_gone() {
    let w = world();
    let tor_block = (Verdict::Block, "tor".to_owned());
    let (v, r, tier) = ask(&w, &strict()).await;
    assert_eq!(((v, r), tier), (tor_block.clone(), Tier::Provider));
    w.redis().writes.reaches(1).await;
    assert_eq!(w.provider().calls.get(), 1);

    // Fresh in Redis for a day: another instance (or this one, past its local copy) uses it.
    w.clock.advance(s(DAY / 2));
    let (v, r, tier) = ask(&w, &strict()).await;
    assert_eq!(((v, r), tier), (tor_block.clone(), Tier::Redis));
    assert_eq!(w.provider().calls.get(), 1, "a fresh entry costs no call");

    // Two days old: stale. Never served while the provider answers...
    w.clock.advance(s(DAY + DAY / 2));
    w.provider().answers(Answer::Facts(Categories::EMPTY));
    let (v, _, tier) = ask(&w, &strict()).await;
    assert_eq!((v, tier), (Verdict::Allow, Tier::Provider));
    assert_eq!(w.provider().calls.get(), 2);
    w.redis().writes.reaches(2).await;

    // ...but when it fails, on strict and lenient alike.
    w.redis()
        .put(KEY, entry("tor", "api"), Duration::ZERO, s(5 * DAY));
    w.forget_locally();
    w.provider().answers(Answer::Fails);
    for policy in [strict(), lenient()] {
        let (v, r, tier) = ask(&w, &policy).await;
        assert_eq!(((v, r), tier), (tor_block.clone(), Tier::Stale));
    }
    // Served stale for negative_ttl from the local tier, then the provider is tried again.
    let calls = w.provider().calls.get();
    w.clock.advance(s(31));
    let (_, _, tier) = ask(&w, &strict()).await;
    assert_eq!(tier, Tier::Stale);
    assert_eq!(w.provider().calls.get(), calls + 1);

    // Gone after its stale window: on_error decides.
    w.clock.advance(s(5 * DAY));
    let (v, r, tier) = ask(&w, &strict()).await;
    assert_eq!(
        (v, r.as_str(), tier),
        (Verdict::Block, "provider-error", Tier::Provider)
    );
    assert!(w.redis().holds(KEY).is_none());
    w.forget_locally();
    let (v, r, _) = ask(&w, &lenient()).await;
    assert_eq!((v, r.as_str()), (Verdict::Allow, "provider-error"));
}

#[tokio::test]
async fn over_budget_no_call_is_made_and_stale_facts_or_on_error_decide() {
    let w = world();
    w.provider().answers(Answer::OverBudget);
    let (v, r, tier) = ask(&w, &strict()).await;
    assert_eq!(
        (v, r.as_str(), tier),
        (Verdict::Block, "provider-error", Tier::None)
    );
    let (v, _, _) = ask(&w, &lenient()).await;
    assert_eq!(v, Verdict::Allow);
    assert_eq!(w.provider().calls.get(), 0);
    // Not remembered: the next request within budget is answered at once.
    w.provider().answers(Answer::Facts(Categories::EMPTY));
    let (v, _, tier) = ask(&w, &strict()).await;
    assert_eq!((v, tier), (Verdict::Allow, Tier::Provider));
    w.redis().writes.reaches(1).await;

    // With a stale entry, the stale facts decide.
    w.clock.advance(s(3 * DAY));
    w.provider().answers(Answer::OverBudget);
    let (v, _, tier) = ask(&w, &strict()).await;
    assert_eq!((v, tier), (Verdict::Allow, Tier::Stale));
    assert_eq!(w.provider().calls.get(), 1);
}

#[tokio::test]
async fn an_open_breaker_is_remembered_for_negative_ttl() {
    let w = world();
    w.provider().answers(Answer::BreakerOpen);
    let (v, r, tier) = ask(&w, &strict()).await;
    assert_eq!(
        (v, r.as_str(), tier),
        (Verdict::Block, "provider-error", Tier::None)
    );
    // Closed again, but the address's failure is remembered for negative_ttl (30 s).
    w.provider().answers(Answer::Facts(Categories::EMPTY));
    w.clock.advance(s(29));
    let (v, _, tier) = ask(&w, &strict()).await;
    assert_eq!((v, tier), (Verdict::Block, Tier::Local));
    w.clock.advance(s(2));
    let (v, _, tier) = ask(&w, &strict()).await;
    assert_eq!((v, tier), (Verdict::Allow, Tier::Provider));
}

#[tokio::test]
async fn without_redis_answers_are_kept_for_degraded_ttl_only() {
    let w = world();
    w.redis().down.store(true, Ordering::SeqCst);
    w.provider().answers(Answer::Facts(Categories::EMPTY));
    // Strict refuses what it cannot check for a pin; lenient goes on with the facts.
    let (v, r, _) = ask(&w, &strict()).await;
    assert_eq!((v, r.as_str()), (Verdict::Block, "redis-error"));
    let (v, _, tier) = ask(&w, &lenient()).await;
    assert_eq!((v, tier), (Verdict::Allow, Tier::Local));
    // Redis back with an operator's pin: it wins once degraded_ttl (5 s) is over.
    w.redis().down.store(false, Ordering::SeqCst);
    w.redis()
        .put(KEY, entry("my-list", "manual"), s(DAY), Duration::ZERO);
    w.clock.advance(s(4));
    assert_eq!(ask(&w, &lenient()).await.0, Verdict::Allow);
    w.clock.advance(s(2));
    let d = decide(&w, &lenient(), client()).await;
    assert_eq!(d.decision.verdict, Verdict::Block);
    assert_eq!(d.pin_reasons.as_deref(), Some("my-list"));
    assert_eq!(d.tier, Tier::Redis);
    assert_eq!(w.provider().calls.get(), 1);
}

#[tokio::test]
async fn a_hit_near_the_end_of_its_fresh_time_refreshes_once_in_the_background() {
    let w = world();
    ask(&w, &strict()).await;
    w.redis().writes.reaches(1).await;
    // Within refresh_ahead (1 h) of the end of its fresh time.
    w.clock.advance(s(DAY - 1800));
    w.provider().answers(Answer::Facts(Categories::EMPTY));
    let (v, _, tier) = ask(&w, &strict()).await;
    assert_eq!(
        (v, tier),
        (Verdict::Block, Tier::Redis),
        "answered from the entry"
    );
    w.redis().writes.reaches(2).await;
    assert_eq!(w.provider().calls.get(), 2);
    let entry = w.redis().holds(KEY).unwrap();
    assert_eq!(
        entry.reasons.as_str(),
        "",
        "the refreshed facts were written"
    );
    // The new answer is fresh for a day again: no more refreshing.
    w.forget_locally();
    let (v, _, tier) = ask(&w, &strict()).await;
    assert_eq!((v, tier), (Verdict::Allow, Tier::Redis));
    tokio::task::yield_now().await;
    assert_eq!(w.provider().calls.get(), 2);
}

#[tokio::test]
async fn no_refresh_while_another_instance_holds_the_lock() {
    let w = world();
    ask(&w, &strict()).await;
    w.redis().writes.reaches(1).await;
    w.clock.advance(s(DAY - 1800));
    // Another instance's lock on the address.
    w.redis()
        .locks
        .lock()
        .unwrap()
        .insert(KEY.to_owned(), w.clock.now() + s(30));
    ask(&w, &strict()).await;
    let m = &w.metrics.refresh;
    let deadline = Instant::now() + s(5);
    while m.get(refresh::Outcome::LockHeld) == 0 {
        assert!(Instant::now() < deadline, "the refresh never ran");
        tokio::task::yield_now().await;
    }
    assert_eq!(w.provider().calls.get(), 1, "no call without the lock");
}

#[tokio::test]
async fn a_call_whose_request_went_away_is_cached_all_the_same() {
    let w = world();
    w.provider().held.store(true, Ordering::SeqCst);
    let request = {
        let w = Arc::clone(&w);
        tokio::spawn(async move { decide(&w, &strict(), client()).await })
    };
    w.provider().calls.reaches(1).await;
    // nginx gives up: the request's future is dropped mid-call.
    request.abort();
    assert!(request.await.unwrap_err().is_cancelled());
    w.provider().release.notify_one();
    w.redis().writes.reaches(1).await;
    assert_eq!(w.redis().holds(KEY).unwrap().reasons.as_str(), "tor");
    // And the next request gets it without another call.
    let (_, _, tier) = ask(&w, &strict()).await;
    assert_eq!(tier, Tier::Local);
    assert_eq!(w.provider().calls.get(), 1);
}

#[tokio::test]
async fn an_answer_older_than_an_invalidation_is_not_kept_locally() {
    let w = world();
    w.provider().held.store(true, Ordering::SeqCst);
    let request = {
        let w = Arc::clone(&w);
        tokio::spawn(async move { decide(&w, &lenient(), client()).await })
    };
    w.provider().calls.reaches(1).await;
    // Meanwhile an operator pins the address, and the invalidation reaches this instance.
    w.redis()
        .put(KEY, entry("my-list", "manual"), s(DAY), Duration::ZERO);
    w.local.remove(&client().key);
    w.provider().release.notify_one();
    // The request that was already asking gets the provider's answer...
    assert_eq!(request.await.unwrap().decision.verdict, Verdict::Block);
    // ...but the next one reads the pin, not a local copy older than it.
    let d = decide(&w, &lenient(), client()).await;
    assert_eq!(
        (d.tier, d.pin_reasons.as_deref()),
        (Tier::Redis, Some("my-list"))
    );
}

/// Lists `tor` (category tor), `bots` (crawler), `dc` (hosting) and `bad` (verdict block), each
/// holding `ip`'s /24; only policies that name them consult them.
fn lists_holding(ip: &str) -> crate::lists::ListStore {
    use crate::config::lists::{ListMeaning, ListSpec};
    let spec = |name: &str, meaning| ListSpec {
        name: name.to_owned(),
        meaning,
        file: None,
        refresh: s(2),
    };
    let store = crate::lists::ListStore::new(&[
        spec("bad", ListMeaning::Verdict(Verdict::Block)),
        spec("bots", ListMeaning::Category(Category::Crawler)),
        spec("dc", ListMeaning::Category(Category::Hosting)),
        spec("tor", ListMeaning::Category(Category::Tor)),
    ]);
    let net: ipnet::IpNet = format!("{ip}/24").parse().unwrap();
    for slot in store.slots() {
        let mut t = crate::lists::table::Table::default();
        t.insert(net, None);
        slot.install(t, crate::lists::Source::File);
    }
    store
}

fn naming(policy: Policy, lists: &[&str]) -> Policy {
    Policy {
        lists: lists.iter().map(|l| (*l).to_owned()).collect(),
        ..policy
    }
}

#[tokio::test]
async fn a_list_that_settles_the_verdict_means_no_redis_read_and_no_provider_call() {
    let w = world();
    w.provider().answers(Answer::Facts(Categories::EMPTY));
    let d = decide(&w, &naming(strict(), &["tor"]), client()).await;
    assert_eq!(
        (d.decision.verdict, d.decision.reasons.to_text(), d.rule),
        (Verdict::Block, "tor".to_owned(), Rule::List)
    );
    assert_eq!(d.list.as_deref(), Some("tor"));
    let d = decide(&w, &naming(strict(), &["bots"]), client()).await;
    assert_eq!(
        (d.decision.verdict, d.decision.reasons.to_text()),
        (Verdict::Allow, "crawler".to_owned())
    );
    let d = decide(&w, &naming(lenient(), &["bots", "bad"]), client()).await;
    assert_eq!(
        (d.decision.verdict, d.decision.reasons.to_text()),
        (Verdict::Block, "denylist".to_owned()),
        "a block list comes before categories"
    );
    assert_eq!(w.provider().calls.get(), 0);
    assert!(w.redis().holds(KEY).is_none());
    assert_eq!(w.lists.slots()[3].decisions(), 1, "tor decided once");
}

#[tokio::test]
async fn a_category_the_policy_only_challenges_is_added_to_the_providers_facts() {
    let w = world();
    let challenge_dc = Policy {
        challenge: Categories::EMPTY.with(Category::Hosting),
        ..lenient()
    };
    // The provider says tor (blocked): a listed hosting network does not stop it from being asked.
    let d = decide(&w, &naming(challenge_dc.clone(), &["dc"]), client()).await;
    assert_eq!(
        (d.decision.verdict, d.decision.reasons.to_text()),
        (Verdict::Block, "tor".to_owned())
    );
    assert_eq!(w.provider().calls.get(), 1);
    // A clean provider answer: the list's category decides, from the facts.
    let other = Client {
        ip: "198.51.100.9".parse().unwrap(),
        key: normalize("198.51.100.9", Aggregation::default()).unwrap(),
    };
    let w = Arc::new(World {
        lists: lists_holding("198.51.100.9"),
        ..Arc::into_inner(world()).unwrap()
    });
    w.provider().answers(Answer::Facts(Categories::EMPTY));
    let d = decide(&w, &naming(challenge_dc, &["dc"]), other).await;
    assert_eq!(
        (d.decision.verdict, d.decision.reasons.to_text(), d.rule),
        (Verdict::Challenge, "hosting".to_owned(), Rule::Facts)
    );
    assert_eq!(d.list.as_deref(), Some("dc"));
    assert_eq!(w.provider().calls.get(), 1);
}

#[tokio::test]
async fn an_address_on_no_list_goes_through_the_tiers_as_before() {
    let w = world();
    let other = Client {
        ip: "203.0.113.1".parse().unwrap(),
        key: normalize("203.0.113.1", Aggregation::default()).unwrap(),
    };
    let d = decide(&w, &naming(strict(), &["tor", "bots", "bad"]), other).await;
    assert_eq!((d.decision.verdict, d.rule), (Verdict::Block, Rule::Facts));
    assert_eq!(d.list, None);
    assert_eq!(w.provider().calls.get(), 1);
}

#[tokio::test]
async fn attributes_are_written_back_and_another_instance_decides_on_them() {
    let w = world();
    let known = Attributes {
        country: Country::parse("US").ok(),
        asn: Asn::new(13335),
        score: Score::new(87),
    };
    w.provider().answers(Answer::Full(Facts {
        categories: Categories::EMPTY,
        attributes: known,
    }));
    let scored = Policy {
        block_score: Score::new(85),
        ..strict()
    };
    let (v, r, tier) = ask(&w, &scored).await;
    assert_eq!(
        (v, r.as_str(), tier),
        (Verdict::Block, "score", Tier::Provider)
    );
    w.redis().writes.reaches(1).await;
    // Stored with the facts, beside the default policy's verdict (strict: tor only, allow).
    let held = w.redis().holds(KEY).expect("written back");
    assert_eq!(held.attributes, known);
    assert_eq!(held.verdict, Verdict::Allow);

    // Another instance, with no provider at all, reads Redis and decides on the same facts.
    let other = world_with(false);
    let entries = w.redis().entries.lock().unwrap().clone();
    *other.redis().entries.lock().unwrap() = entries;
    let (v, r, tier) = ask(&other, &scored).await;
    assert_eq!(
        (v, r.as_str(), tier),
        (Verdict::Block, "score", Tier::Redis)
    );
    let by_asn = Policy {
        challenge_asns: vec![Asn::new(13335).unwrap()],
        ..strict()
    };
    other.forget_locally();
    let (v, r, _) = ask(&other, &by_asn).await;
    assert_eq!((v, r.as_str()), (Verdict::Challenge, "asn"));
    let by_country = Policy {
        allow_countries: vec![Country::parse("DE").unwrap()],
        ..strict()
    };
    other.forget_locally();
    let (v, r, _) = ask(&other, &by_country).await;
    assert_eq!((v, r.as_str()), (Verdict::Block, "country"));
}
