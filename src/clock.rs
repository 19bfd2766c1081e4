//! One reading of the clock for the layers of one `call` or one `poll`.
//!
//! Reading the monotonic clock costs more than most layers' own work (32 ns
//! on the 2-vCPU VM the benches run on, where a closed breaker costs 15),
//! and a stack asks for it in several layers at almost the same instant:
//! the metrics layer when a call starts and ends, a peak-EWMA balancer when
//! it sends the call and when the answer comes. Inside a [`Section`], the
//! first layer that asks for [`now`] reads the clock and the others get
//! that reading; a section is one synchronous `call` or `poll` of the
//! outermost layer that opens one, so the readings it shares are apart by
//! the layers' bookkeeping only (no await point can come between them).
//! Outside any section, [`now`] reads the clock.
//!
//! Written by hand: the readings are tokio's [`Instant`] (so that tests on
//! tokio's paused clock see the layers' durations), which no caching clock
//! crate reads.

use std::cell::Cell;

use tokio::time::Instant;

thread_local! {
    /// `None` outside a section; in one, the reading once taken.
    static SHARED: Cell<Option<Option<Instant>>> = const { Cell::new(None) };
}

/// The time now: the reading of the section under way, if one was taken,
/// or a new one.
#[inline]
pub(crate) fn now() -> Instant {
    SHARED.with(|shared| match shared.get() {
        Some(Some(at)) => at,
        Some(None) => {
            let at = Instant::now();
            shared.set(Some(Some(at)));
            at
        }
        None => Instant::now(),
    })
}

/// A section, open until dropped: the layers reached meanwhile share one
/// reading of the clock. Opened inside another section, it is part of that
/// one. A guard rather than a closure, so that the future a `call` builds
/// in a section is built where its caller keeps it, not returned through
/// the closure and copied.
#[cfg(feature = "metrics")]
#[must_use = "the section closes when dropped"]
pub(crate) struct Section {
    /// Whether this guard opened the section (and closes it).
    opened: bool,
}

#[cfg(feature = "metrics")]
impl Section {
    /// Opens a section, unless one is open.
    #[inline]
    pub(crate) fn open() -> Section {
        let opened = SHARED.with(|shared| {
            let closed = shared.get().is_none();
            if closed {
                shared.set(Some(None));
            }
            closed
        });
        Section { opened }
    }
}

#[cfg(feature = "metrics")]
impl Drop for Section {
    /// Closes the section if this guard opened it, even on a panic.
    #[inline]
    fn drop(&mut self) {
        if self.opened {
            SHARED.with(|shared| shared.set(None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_shares_one_reading_and_outside_each_call_reads() {
        let (first, later, nested) = {
            let _section = Section::open();
            let first = now();
            // The clock moves on; the section keeps its reading.
            while Instant::now() == first {}
            let nested = {
                let _inner = Section::open();
                now()
            };
            // The inner guard did not close the outer section.
            (first, now(), nested)
        };
        assert_eq!((later, nested), (first, first));
        // Closed again: a new section takes a reading of its own, and so
        // does each call outside one.
        let again = {
            let _section = Section::open();
            now()
        };
        assert!(again > first);
        let outside = now();
        while Instant::now() == outside {}
        assert!(now() > outside);
    }

    #[test]
    fn a_panic_inside_closes_the_section() {
        let caught = std::panic::catch_unwind(|| {
            let _section = Section::open();
            panic!("inside")
        });
        assert!(caught.is_err());
        assert_eq!(SHARED.with(Cell::get), None);
    }
}
