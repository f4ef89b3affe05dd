//! Which offset may be stored, when messages of one partition finish out of order.
//!
//! The processor writes messages of different keys concurrently, so message 7 may be written
//! before message 5. Storing 7 then would commit past 5, and a crash would lose it. The tracker
//! keeps, per partition, the offsets still in flight and releases an offset for storing only once
//! every offset before it has finished: the offset stored is always a contiguous prefix.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

/// In-flight offsets of every partition the processor holds.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, PartitionOffsets>,
}

#[derive(Debug, Default)]
struct PartitionOffsets {
    in_flight: BTreeSet<i64>,
    /// Finished offsets held back because an earlier offset is still in flight.
    finished: BTreeSet<i64>,
}

impl OffsetTracker {
    /// Records that `offset` of `partition` has been handed to a writer.
    pub fn begin(&mut self, partition: i32, offset: i64) {
        self.partitions
            .entry(partition)
            .or_default()
            .in_flight
            .insert(offset);
    }

    /// Records that `offset` is written (or dead-lettered). Returns the offset of the last message
    /// that may now be stored — every message of the partition up to it is done — or `None` when
    /// an earlier message is still in flight.
    pub fn finish(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let state = self.partitions.get_mut(&partition)?;
        if !state.in_flight.remove(&offset) {
            return None;
        }
        state.finished.insert(offset);
        // Offsets are handed out in log order, so everything below the oldest one still in flight
        // has finished.
        let bound = state.in_flight.first().copied().unwrap_or(i64::MAX);
        let ready = state.finished.range(..bound).next_back().copied()?;
        state.finished = state.finished.split_off(&(ready + 1));
        Some(ready)
    }

    /// Number of messages handed out and not finished, across partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .map(|state| state.in_flight.len())
            .sum()
    }

    /// Forgets partitions taken away by a rebalance: their in-flight results no longer count.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }
}

/// Finishes `offset` of `partition` and, when that releases an offset, hands it to `store` while
/// the tracker is still locked. Lanes finish concurrently: were the release and the store two
/// steps, a lane could store offset 15 between another lane's release of 10 and its store of 10,
/// and the stored offset would move back (every message between would be processed again after a
/// restart). Returns what `store` returned, if it was called.
pub fn finish_and_store<T>(
    tracker: &Mutex<OffsetTracker>,
    partition: i32,
    offset: i64,
    store: impl FnOnce(i64) -> T,
) -> Option<T> {
    let mut tracker = tracker.lock().unwrap_or_else(PoisonError::into_inner);
    tracker.finish(partition, offset).map(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_released_by_concurrent_lanes_are_stored_in_order() {
        const LANES: i64 = 8;
        const PER_LANE: i64 = 500;
        for _ in 0..20 {
            let tracker = Mutex::new(OffsetTracker::default());
            for offset in 0..LANES * PER_LANE {
                tracker.lock().unwrap().begin(0, offset);
            }
            let stored = Mutex::new(Vec::new());
            std::thread::scope(|scope| {
                for lane in 0..LANES {
                    let (tracker, stored) = (&tracker, &stored);
                    scope.spawn(move || {
                        for offset in (lane..LANES * PER_LANE).step_by(LANES as usize) {
                            finish_and_store(tracker, 0, offset, |ready| {
                                // Gives another lane the chance to overtake between release
                                // and store, as a real store call would.
                                for _ in 0..3 {
                                    std::thread::yield_now();
                                }
                                stored.lock().unwrap().push(ready);
                            });
                        }
                    });
                }
            });
            let stored = stored.into_inner().unwrap();
            assert!(
                stored.windows(2).all(|pair| pair[0] < pair[1]),
                "the stored offset moved back"
            );
            assert_eq!(stored.last(), Some(&(LANES * PER_LANE - 1)));
        }
    }

    #[test]
    fn in_order_completion_releases_each_offset() {
        let mut tracker = OffsetTracker::default();
        tracker.begin(0, 10);
        tracker.begin(0, 11);
        assert_eq!(tracker.finish(0, 10), Some(10));
        assert_eq!(tracker.finish(0, 11), Some(11));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn a_later_offset_waits_for_the_earlier_one() {
        let mut tracker = OffsetTracker::default();
        for offset in [5, 6, 7] {
            tracker.begin(0, offset);
        }
        assert_eq!(tracker.finish(0, 7), None, "5 and 6 are still in flight");
        assert_eq!(tracker.finish(0, 6), None, "5 is still in flight");
        assert_eq!(tracker.finish(0, 5), Some(7), "the whole prefix is done");
    }

    #[test]
    fn gaps_in_the_log_do_not_block() {
        let mut tracker = OffsetTracker::default();
        tracker.begin(0, 3);
        tracker.begin(0, 9);
        assert_eq!(tracker.finish(0, 9), None);
        assert_eq!(tracker.finish(0, 3), Some(9));
    }

    #[test]
    fn partitions_are_independent() {
        let mut tracker = OffsetTracker::default();
        tracker.begin(0, 1);
        tracker.begin(1, 1);
        tracker.begin(1, 2);
        assert_eq!(tracker.finish(1, 2), None);
        assert_eq!(tracker.finish(0, 1), Some(1));
        assert_eq!(tracker.finish(1, 1), Some(2));
    }

    #[test]
    fn revoked_partitions_and_unknown_offsets_release_nothing() {
        let mut tracker = OffsetTracker::default();
        tracker.begin(2, 4);
        tracker.revoke(2);
        assert_eq!(tracker.finish(2, 4), None);
        tracker.begin(0, 1);
        assert_eq!(tracker.finish(0, 99), None);
        assert_eq!(tracker.in_flight(), 1);
    }
}
