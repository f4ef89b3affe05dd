//! Which offset may be stored, when messages of one partition finish out of order.
//!
//! The processor writes messages of different keys concurrently, so message 7 may be written
//! before message 5. Storing 7 then would commit past 5, and a crash would lose it. The tracker
//! keeps, per partition, the offsets still in flight and releases an offset for storing only once
//! every offset before it has finished: the offset stored is always a contiguous prefix.
//!
//! A rebalance may take a partition away while its messages are queued or being written. Each
//! assignment of a partition is an epoch: work begun in an earlier epoch neither runs nor
//! releases anything in a later one, even if the partition came back in between (its messages
//! are consumed again from the last commit).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

/// In-flight offsets of every partition the processor holds.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, PartitionOffsets>,
    /// Bumped each time a partition is revoked; outlives the partition's offsets.
    epochs: HashMap<i32, u64>,
}

#[derive(Debug, Default)]
struct PartitionOffsets {
    in_flight: BTreeSet<i64>,
    /// Finished offsets held back because an earlier offset is still in flight.
    finished: BTreeSet<i64>,
}

/// One message handed to a writer: what [`OffsetTracker::finish`] needs back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub partition: i32,
    pub offset: i64,
    epoch: u64,
}

impl OffsetTracker {
    /// Records that `offset` of `partition` has been handed to a writer.
    pub fn begin(&mut self, partition: i32, offset: i64) -> Ticket {
        self.partitions
            .entry(partition)
            .or_default()
            .in_flight
            .insert(offset);
        Ticket {
            partition,
            offset,
            epoch: self.epoch(partition),
        }
    }

    /// Whether the work of `ticket` still belongs to the partition's current assignment.
    pub fn is_current(&self, ticket: Ticket) -> bool {
        ticket.epoch == self.epoch(ticket.partition)
    }

    /// Records that the message of `ticket` is written (or dead-lettered). Returns the offset of
    /// the last message that may now be stored — every message of the partition up to it is
    /// done — or `None` when an earlier message is still in flight, or the partition was revoked
    /// since the ticket was issued.
    pub fn finish(&mut self, ticket: Ticket) -> Option<i64> {
        if !self.is_current(ticket) {
            return None;
        }
        let state = self.partitions.get_mut(&ticket.partition)?;
        if !state.in_flight.remove(&ticket.offset) {
            return None;
        }
        state.finished.insert(ticket.offset);
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

    /// Forgets a partition taken away by a rebalance: the work begun for it is stale from now on.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
        *self.epochs.entry(partition).or_default() += 1;
    }

    /// The partition's assignment epoch: how many times it was revoked from this processor.
    pub fn epoch(&self, partition: i32) -> u64 {
        self.epochs.get(&partition).copied().unwrap_or_default()
    }
}

/// Finishes `ticket` and, when that releases an offset, hands it to `store` while the tracker
/// is still locked. Lanes finish concurrently: were the release and the store two steps, a lane
/// could store offset 15 between another lane's release of 10 and its store of 10, and the
/// stored offset would move back (every message between would be processed again after a
/// restart). Returns what `store` returned, if it was called.
pub fn finish_and_store<T>(
    tracker: &Mutex<OffsetTracker>,
    ticket: Ticket,
    store: impl FnOnce(i64) -> T,
) -> Option<T> {
    let mut tracker = tracker.lock().unwrap_or_else(PoisonError::into_inner);
    tracker.finish(ticket).map(store)
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
            let tickets: Vec<Ticket> = (0..LANES * PER_LANE)
                .map(|offset| tracker.lock().unwrap().begin(0, offset))
                .collect();
            let stored = Mutex::new(Vec::new());
            std::thread::scope(|scope| {
                for lane in 0..LANES {
                    let (tracker, stored, tickets) = (&tracker, &stored, &tickets);
                    scope.spawn(move || {
                        for ticket in tickets.iter().skip(lane as usize).step_by(LANES as usize) {
                            finish_and_store(tracker, *ticket, |ready| {
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
        let first = tracker.begin(0, 10);
        let second = tracker.begin(0, 11);
        assert_eq!(tracker.finish(first), Some(10));
        assert_eq!(tracker.finish(second), Some(11));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn a_later_offset_waits_for_the_earlier_one() {
        let mut tracker = OffsetTracker::default();
        let [five, six, seven] = [5, 6, 7].map(|offset| tracker.begin(0, offset));
        assert_eq!(tracker.finish(seven), None, "5 and 6 are still in flight");
        assert_eq!(tracker.finish(six), None, "5 is still in flight");
        assert_eq!(tracker.finish(five), Some(7), "the whole prefix is done");
    }

    #[test]
    fn gaps_in_the_log_do_not_block() {
        let mut tracker = OffsetTracker::default();
        let three = tracker.begin(0, 3);
        let nine = tracker.begin(0, 9);
        assert_eq!(tracker.finish(nine), None);
        assert_eq!(tracker.finish(three), Some(9));
    }

    #[test]
    fn partitions_are_independent() {
        let mut tracker = OffsetTracker::default();
        let zero_one = tracker.begin(0, 1);
        let one_one = tracker.begin(1, 1);
        let one_two = tracker.begin(1, 2);
        assert_eq!(tracker.finish(one_two), None);
        assert_eq!(tracker.finish(zero_one), Some(1));
        assert_eq!(tracker.finish(one_one), Some(2));
    }

    #[test]
    fn revoked_partitions_and_unknown_offsets_release_nothing() {
        let mut tracker = OffsetTracker::default();
        let revoked = tracker.begin(2, 4);
        tracker.revoke(2);
        assert!(!tracker.is_current(revoked));
        assert_eq!(tracker.finish(revoked), None);
        let kept = tracker.begin(0, 1);
        assert_eq!(tracker.finish(Ticket { offset: 99, ..kept }), None);
        assert_eq!(tracker.in_flight(), 1);
    }

    #[test]
    fn work_of_an_earlier_assignment_releases_nothing_in_a_later_one() {
        let mut tracker = OffsetTracker::default();
        let before = tracker.begin(0, 7);
        tracker.revoke(0);
        // The partition comes back and message 7 is consumed again.
        let again = tracker.begin(0, 7);
        assert_eq!(tracker.finish(before), None, "the stale write released 7");
        assert!(tracker.is_current(again));
        assert_eq!(tracker.finish(again), Some(7));
    }
}
