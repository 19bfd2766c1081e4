//! Telling a call cut off by the crate's own deadline from one its caller
//! dropped.
//!
//! Both reach the layers beneath as a future dropped before its answer.
//! When [`Timeout`](crate::timeout::Timeout) gives up on an attempt, it
//! drops the attempt's future inside [`scope`]; the recording layers
//! beneath (outlier detection, a breaker, metrics) check [`active`] when a
//! future of theirs is dropped unfinished, and count a failure instead of
//! nothing. The flag is a thread-local raised only while that drop runs:
//! drops are synchronous, so everything dropped then, and only that, was
//! cut off by the deadline.
//!
//! Written by hand because tower's futures have no way to tell an inner
//! future why it is dropped, and a shared flag per call would cost an
//! allocation on every call for what only the failure path needs.

use std::cell::Cell;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `drop` (which drops a call's future) as a cut-off by a deadline.
#[cfg(any(feature = "timeout", test))]
pub(crate) fn scope<R>(drop: impl FnOnce() -> R) -> R {
    struct Raised;
    impl Drop for Raised {
        fn drop(&mut self) {
            DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
        }
    }
    DEPTH.with(|depth| depth.set(depth.get().saturating_add(1)));
    let _raised = Raised;
    drop()
}

/// Whether the future being dropped now was cut off by a deadline.
#[cfg(any(bulwark_records, test))]
#[inline]
pub(crate) fn active() -> bool {
    DEPTH.with(|depth| depth.get() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_is_dropped_in_the_scope_is_cut_off() {
        assert!(!active());
        let seen = scope(|| {
            let inner = scope(active);
            (active(), inner)
        });
        assert_eq!(seen, (true, true));
        assert!(!active(), "lowered again after nested scopes");
        let _ = std::panic::catch_unwind(|| scope(|| panic!("a drop that panics")));
        assert!(!active(), "lowered again after a panic");
    }
}
