//! `on_miss = "allow"`: a cold address is answered at once without reading Redis, and handed
//! to the background read, which fills the local tier (a fresh entry, a pin, stale facts for a
//! while) and queues what Redis cannot answer.

use super::*;
use crate::enrich::counts::Read;
use crate::enrich::queue::{Queue, Recent};
use crate::lookup::cold_read::{read_batch, WINDOW};
use tokio::sync::mpsc;

/// The test world with a queue whose offers the test reads, and no list holding [`KEY`].
fn world_with_queue() -> (Arc<World>, mpsc::Receiver<Client>) {
    let (tx, handed) = mpsc::channel(8);
    let queue = Queue::new(tx, Arc::new(Metrics::default()));
    let w = Arc::new(World {
        queue: Some(queue),
        lists: lists_holding("198.51.100.9"),
        ..Arc::into_inner(world()).unwrap()
    });
    (w, handed)
}

fn allow(p: Policy) -> Policy {
    Policy {
        on_miss: ipcheck_core::OnMiss::Allow,
        ..p
    }
}

/// Verdict, reasons, tier and rule.
async fn decided(w: &Arc<World>, policy: &Policy) -> (Verdict, String, Tier, Rule) {
    let d = decide(w, policy, client()).await;
    (
        d.decision.verdict,
        d.decision.reasons.to_text(),
        d.tier,
        d.rule,
    )
}

fn queued() -> (Verdict, String, Tier, Rule) {
    (Verdict::Allow, String::new(), Tier::Queued, Rule::OnMiss)
}

fn reads(w: &World, what: Read) -> u64 {
    w.metrics.enrich.read_count(what)
}

#[tokio::test]
async fn a_cold_address_is_answered_without_reading_redis_and_handed_over() {
    let (w, mut handed) = world_with_queue();
    // Even a pin in Redis is not read on the request path: this instance has not seen it yet.
    w.redis()
        .put(KEY, entry("my-list", "manual"), s(DAY), Duration::ZERO);
    assert_eq!(decided(&w, &allow(strict())).await, queued());
    assert_eq!(w.redis().reads.get(), 0, "the request path read Redis");
    assert_eq!(w.provider().calls.get(), 0);
    assert_eq!(handed.try_recv().ok(), Some(client()));
}

#[tokio::test]
async fn the_background_read_keeps_a_pin_or_fresh_facts_locally_for_the_next_request() {
    let (w, mut handed) = world_with_queue();
    let mut read = Recent::new(WINDOW);
    w.redis()
        .put(KEY, entry("my-list", "manual"), s(DAY), Duration::ZERO);
    assert_eq!(decided(&w, &allow(strict())).await, queued());
    let batch = vec![handed.try_recv().unwrap()];
    assert!(read_batch(&w, &mut read, batch).await.is_empty(), "queued");
    assert_eq!(reads(&w, Read::Hit), 1);
    let d = decide(&w, &allow(strict()), client()).await;
    assert_eq!(
        (d.tier, d.rule, d.pin_reasons.as_deref()),
        (Tier::Local, Rule::Pin, Some("my-list"))
    );
    assert_eq!(w.redis().reads.get(), 1);

    // A worker's facts, once the local copy is gone: the same.
    w.redis().entries.lock().unwrap().clear();
    w.redis().put(KEY, entry("tor", "api"), s(DAY), s(DAY));
    w.forget_locally();
    assert_eq!(decided(&w, &allow(strict())).await, queued());
    let batch = vec![handed.try_recv().unwrap()];
    assert!(read_batch(&w, &mut read, batch).await.is_empty());
    assert_eq!(
        decided(&w, &allow(strict())).await,
        (Verdict::Block, "tor".to_owned(), Tier::Local, Rule::Facts)
    );
    assert_eq!(w.provider().calls.get(), 0);
}

#[tokio::test]
async fn an_answer_older_than_an_invalidation_is_not_kept_locally() {
    let (w, _handed) = world_with_queue();
    w.redis().put(KEY, entry("tor", "api"), s(DAY), s(DAY));
    w.redis().held.store(true, Ordering::SeqCst);
    let reading = {
        let w = Arc::clone(&w);
        tokio::spawn(async move { read_batch(&w, &mut Recent::new(WINDOW), vec![client()]).await })
    };
    w.redis().reads.reaches(1).await;
    // Meanwhile an operator pins the address, and the invalidation reaches this instance.
    w.redis()
        .put(KEY, entry("my-list", "manual"), s(DAY), Duration::ZERO);
    w.local.remove(&client().key);
    w.redis().release.notify_one();
    assert!(reading.await.unwrap().is_empty());
    // The read's older answer was not kept: the next request is cold again, not a local "tor".
    assert_eq!(decided(&w, &allow(strict())).await, queued());
}

#[tokio::test]
async fn stale_facts_are_kept_locally_for_negative_ttl_at_most_and_queued() {
    let (w, mut handed) = world_with_queue();
    let mut read = Recent::new(WINDOW);
    w.redis()
        .put(KEY, entry("tor", "api"), Duration::ZERO, s(DAY));
    assert_eq!(decided(&w, &allow(strict())).await, queued());
    let batch = vec![handed.try_recv().unwrap()];
    assert_eq!(read_batch(&w, &mut read, batch).await, vec![client()]);
    assert_eq!(reads(&w, Read::Stale), 1);
    assert_eq!(
        decided(&w, &allow(strict())).await,
        (
            Verdict::Block,
            "tor".to_owned(),
            Tier::Stale,
            Rule::StaleFacts
        )
    );
    // negative_ttl (30 s) later the local copy is gone: cold again, handed over again.
    w.clock.advance(s(30));
    assert_eq!(decided(&w, &allow(strict())).await, queued());
    assert!(handed.try_recv().is_ok());
}

#[tokio::test]
async fn nothing_there_is_queued_and_not_read_again_within_the_window() {
    let (w, _handed) = world_with_queue();
    let mut read = Recent::new(WINDOW);
    // The same address twice in one batch: read once.
    let offers = read_batch(&w, &mut read, vec![client(), client()]).await;
    assert_eq!(offers, vec![client()]);
    assert_eq!(w.redis().reads.get(), 1);
    assert_eq!((reads(&w, Read::Miss), reads(&w, Read::Skipped)), (1, 1));
    // Asked again within the window: neither read nor queued again.
    w.clock.advance(WINDOW - Duration::from_millis(1));
    assert!(read_batch(&w, &mut read, vec![client()]).await.is_empty());
    assert_eq!(w.redis().reads.get(), 1);
    // Past it: a worker's facts (or a pin) are found.
    w.clock.advance(Duration::from_millis(1));
    w.redis().put(KEY, entry("tor", "api"), s(DAY), s(DAY));
    assert!(read_batch(&w, &mut read, vec![client()]).await.is_empty());
    assert_eq!((w.redis().reads.get(), reads(&w, Read::Hit)), (2, 1));
    // Nothing "nothing there" was kept locally: the waiting path is untouched by it.
    assert_eq!(
        decided(&w, &strict()).await,
        (Verdict::Block, "tor".to_owned(), Tier::Local, Rule::Facts)
    );
}

#[tokio::test]
async fn a_redis_error_in_the_background_is_counted_and_nothing_kept_or_queued() {
    let (w, _handed) = world_with_queue();
    let mut read = Recent::new(WINDOW);
    w.redis().down.store(true, Ordering::SeqCst);
    assert!(read_batch(&w, &mut read, vec![client()]).await.is_empty());
    assert_eq!(reads(&w, Read::Error), 1);
    w.redis().down.store(false, Ordering::SeqCst);
    assert_eq!(decided(&w, &allow(strict())).await, queued());
}

#[tokio::test]
async fn while_redis_is_known_to_fail_on_redis_error_decides_and_nothing_is_handed_over() {
    let (w, mut handed) = world_with_queue();
    w.redis().failing.store(true, Ordering::SeqCst);
    assert_eq!(
        decided(&w, &allow(strict())).await,
        (
            Verdict::Block,
            "redis-error".to_owned(),
            Tier::Queued,
            Rule::OnRedisError
        )
    );
    // on_redis_error = continue: as "nothing known".
    assert_eq!(decided(&w, &allow(lenient())).await, queued());
    assert!(handed.try_recv().is_err());
    assert_eq!(w.redis().reads.get(), 0);
}

#[tokio::test]
async fn a_waiting_policy_still_waits_for_the_provider_on_the_same_tiers() {
    let (w, _handed) = world_with_queue();
    assert_eq!(decided(&w, &allow(strict())).await, queued());
    let (v, _, tier) = ask(&w, &strict()).await;
    assert_eq!((v, tier), (Verdict::Block, Tier::Provider));
    assert_eq!(w.provider().calls.get(), 1);
}
