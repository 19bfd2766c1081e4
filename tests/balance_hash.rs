//! Consistent hashing (`LoadBalance::hash_by`): keys stay on their
//! endpoint, move only as far as the set changes, skip ejected endpoints,
//! and spill over from an endpoint past the load bound.
#![cfg(feature = "balance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::channel::mpsc;
use tower::discover::Change;
use tower::{BoxError, Service, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance, OutlierDetection, Strategy};

/// An endpoint that answers with its name.
fn named(
    name: u32,
) -> impl Service<u64, Response = u32, Error = BoxError, Future: Send> + Clone + Send + Sync {
    service_fn(move |_key: u64| async move { Ok::<_, BoxError>(name) })
}

/// Where each of `keys` goes.
async fn placement<S>(lb: &mut S, keys: u64) -> HashMap<u64, u32>
where
    S: Service<u64, Response = u32>,
    S::Error: std::fmt::Debug,
{
    let mut placed = HashMap::new();
    for key in 0..keys {
        let endpoint = lb.ready().await.unwrap().call(key).await.unwrap();
        placed.insert(key, endpoint);
    }
    placed
}

fn changed(before: &HashMap<u64, u32>, after: &HashMap<u64, u32>) -> Vec<(u64, u32, u32)> {
    before
        .iter()
        .filter(|(key, endpoint)| after[key] != **endpoint)
        .map(|(key, endpoint)| (*key, *endpoint, after[key]))
        .collect()
}

#[tokio::test]
async fn adding_one_endpoint_to_a_hundred_moves_at_most_two_percent_of_keys() {
    const KEYS: u64 = 20_000;
    let (changes, stream) = mpsc::unbounded();
    for name in 0..100 {
        changes
            .unbounded_send(Ok::<_, Infallible>(Change::Insert(name, named(name))))
            .unwrap();
    }
    let mut lb = LoadBalance::discover(
        BalanceConfig::default()
            .strategy(Strategy::RoundRobin)
            .seed(1),
        stream,
    )
    .unwrap()
    .hash_by(|key: &u64| Some(*key));
    let before = placement(&mut lb, KEYS).await;
    // Spread over every endpoint: at least half its fair share each.
    let mut per_endpoint: HashMap<u32, u64> = HashMap::new();
    for endpoint in before.values() {
        *per_endpoint.entry(*endpoint).or_default() += 1;
    }
    assert_eq!(per_endpoint.len(), 100);
    assert!(
        per_endpoint.values().all(|&n| n > KEYS / 200),
        "{per_endpoint:?}"
    );

    changes
        .unbounded_send(Ok(Change::Insert(100, named(100))))
        .unwrap();
    let after = placement(&mut lb, KEYS).await;
    let moved = changed(&before, &after);
    let share = moved.len() as f64 / KEYS as f64;
    assert!(share <= 0.02, "{share}: {} keys moved", moved.len());
    assert!(
        share >= 0.005,
        "{share}: the new endpoint took almost nothing"
    );
    // Each moved to the new endpoint: none between old ones.
    assert!(
        moved.iter().all(|&(_, _, to)| to == 100),
        "{:?}",
        &moved[..5]
    );

    // Removing one moves its keys, and those of the endpoint that takes
    // its place: about 2 in 100.
    changes.unbounded_send(Ok(Change::Remove(37))).unwrap();
    let removed = placement(&mut lb, KEYS).await;
    let moved = changed(&after, &removed);
    let share = moved.len() as f64 / KEYS as f64;
    assert!(share <= 0.03, "{share}: {} keys moved", moved.len());
    assert!(removed.values().all(|&e| e != 37));
}

#[tokio::test(start_paused = true)]
async fn the_keys_of_an_ejected_endpoint_spread_and_the_others_stay() {
    const KEYS: u64 = 5_000;
    let failing = Arc::new(AtomicBool::new(false));
    let endpoint = |name: u32| {
        let failing = failing.clone();
        service_fn(move |_key: u64| {
            let fail = name == 3 && failing.load(Ordering::SeqCst);
            async move {
                if fail {
                    Err::<u32, BoxError>("down".into())
                } else {
                    Ok(name)
                }
            }
        })
    };
    let mut lb = LoadBalance::new(
        BalanceConfig::default()
            .strategy(Strategy::RoundRobin)
            .outlier_detection(
                OutlierDetection::default()
                    .consecutive_failures(Some(1))
                    .ejection_time(Duration::from_secs(30), Duration::from_secs(60)),
            ),
        (0..10).map(|name| (name, endpoint(name))),
    )
    .unwrap()
    .hash_by(|key: &u64| Some(*key));
    let before = placement(&mut lb, KEYS).await;
    let key_of_3 = *before.iter().find(|(_, e)| **e == 3).unwrap().0;

    failing.store(true, Ordering::SeqCst);
    let failed = lb.ready().await.unwrap().call(key_of_3).await;
    assert!(failed.is_err(), "the endpoint fails once and is ejected");
    let during = placement(&mut lb, KEYS).await;
    let moved = changed(&before, &during);
    // Exactly the keys of the ejected endpoint moved, over the others.
    let of_3 = before.values().filter(|&&e| e == 3).count();
    assert_eq!(moved.len(), of_3);
    assert!(moved.iter().all(|&(_, from, to)| from == 3 && to != 3));
    let mut to: Vec<u32> = moved.iter().map(|m| m.2).collect();
    to.sort_unstable();
    to.dedup();
    assert!(to.len() >= 8, "spread over {to:?}");
}

#[tokio::test(start_paused = true)]
async fn a_hot_key_spills_over_past_the_load_bound() {
    // Endpoints that hold every request until released.
    let (release, released) = tokio::sync::watch::channel(false);
    let endpoint = |name: u32| {
        let released = released.clone();
        service_fn(move |_key: u64| {
            let mut released = released.clone();
            async move {
                released.wait_for(|r| *r).await.unwrap();
                Ok::<_, BoxError>(name)
            }
        })
    };
    let lb = LoadBalance::new(
        BalanceConfig::default()
            .strategy(Strategy::RoundRobin)
            .hash_balance_factor(Some(125)),
        (0..4).map(|name| (name, endpoint(name))),
    )
    .unwrap()
    .hash_by(|key: &u64| Some(*key));
    // 40 requests in flight, every one with the same key.
    let mut calls = Vec::new();
    for _ in 0..40 {
        let mut lb = lb.clone();
        let call = lb.ready().await.unwrap().call(7);
        calls.push(tokio::spawn(call));
    }
    tokio::task::yield_now().await;
    release.send(true).unwrap();
    let mut per_endpoint: HashMap<u32, usize> = HashMap::new();
    for call in calls {
        *per_endpoint
            .entry(call.await.unwrap().unwrap())
            .or_default() += 1;
    }
    // At most 125 % of the average (10) on any one: the key's endpoint
    // took its share, the rest spilled over.
    assert!(per_endpoint.values().all(|&n| n <= 13), "{per_endpoint:?}");
    assert_eq!(per_endpoint.values().sum::<usize>(), 40);

    // Without a bound, every one goes to the key's endpoint.
    let lb = LoadBalance::new(
        BalanceConfig::default()
            .strategy(Strategy::RoundRobin)
            .hash_balance_factor(None),
        (0..4).map(|name| (name, named(name))),
    )
    .unwrap()
    .hash_by(|key: &u64| Some(*key));
    let mut answers = Vec::new();
    for _ in 0..40 {
        answers.push(
            lb.clone()
                .ready_oneshot()
                .await
                .unwrap()
                .call(7)
                .await
                .unwrap(),
        );
    }
    answers.dedup();
    assert_eq!(answers.len(), 1);
}

#[test]
fn a_balance_factor_below_the_average_is_refused() {
    let error = LoadBalance::new(
        BalanceConfig::default().hash_balance_factor(Some(90)),
        [(0, named(0))],
    )
    .unwrap_err();
    assert_eq!(error.field(), "hash_balance_factor");
}
