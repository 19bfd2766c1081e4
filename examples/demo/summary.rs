//! The summary at the end of a run: every figure with what it counts.

use crate::traffic::{Totals, percent};

/// The sum of a metric's series in Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        // From +0: an empty sum of floats is -0.
        .fold(0.0, |sum, value| sum + value)
}

/// The summary of a run, one figure a line, each with its definition.
pub(crate) fn lines(totals: &Totals, metrics: &str, transitions: &[String]) -> Vec<String> {
    let t = totals;
    let share = |part: u64| format!("{:>6.2} %", percent(part, t.answered));
    let good = t.ok + t.stale + t.fallback;
    let mut lines = vec![
        "what the clients saw (shares are of the answered):".to_owned(),
        format!("  sent        {:>8}", t.sent),
        format!(
            "  answered    {:>8}           a response, any status, within 15 s",
            t.answered
        ),
        format!(
            "  unanswered  {:>8}           no response within 15 s: must be 0",
            t.unanswered
        ),
        format!(
            "  good        {:>8}  {}  not a 5xx nor a connection error",
            good,
            share(good)
        ),
        format!(
            "    as asked  {:>8}  {}  from a service or a fresh cache entry",
            t.ok,
            share(t.ok)
        ),
        format!(
            "    stale     {:>8}  {}  an expired cache entry, the service failing",
            t.stale,
            share(t.stale)
        ),
        format!(
            "    fallback  {:>8}  {}  the users fallback's answer, breaker open",
            t.fallback,
            share(t.fallback)
        ),
        format!(
            "  shed        {:>8}  {}  a 503 at once: the service at its limit",
            t.shed,
            share(t.shed)
        ),
        format!(
            "  failed      {:>8}  {}  another 5xx, or the connection failed",
            t.failed,
            share(t.failed)
        ),
        format!(
            "  cache hits  {:>8}  {}  answered from the gateway's cache (fresh)",
            t.cache_hits,
            share(t.cache_hits)
        ),
        format!(
            "  latency of the answered: p50 {:.1?}  p99 {:.1?}  p99.9 {:.1?}  max {:.1?}",
            t.p50, t.p99, t.p999, t.max
        ),
        "    (cache hits included: with this many, p50 is mostly the cache's)".to_owned(),
        "what the layers did (from the gateway's and the order instances' metrics):".to_owned(),
    ];
    for (name, metric) in [
        ("retries sent", "bulwark_retry_retries_total"),
        (
            "retries refused by a budget",
            "bulwark_retry_budget_exhausted_total",
        ),
        (
            "calls rejected by an open breaker",
            "bulwark_circuit_rejected_total",
        ),
        ("endpoints ejected", "bulwark_balance_ejections_total"),
        (
            "calls shed by a concurrency limit",
            "bulwark_admission_rejected_total",
        ),
    ] {
        lines.push(format!("  {name:<34} {:>8}", metric_sum(metrics, metric)));
    }
    lines.push("  breaker transitions, in order:".to_owned());
    if transitions.is_empty() {
        lines.push("    none".to_owned());
    }
    // Wrapped to fit 80 columns.
    for transition in transitions {
        match lines.last_mut() {
            Some(last) if last.starts_with("    ") && last.len() + transition.len() < 76 => {
                last.push_str(", ");
                last.push_str(transition);
            }
            _ => lines.push(format!("    {transition}")),
        }
    }
    lines
}
