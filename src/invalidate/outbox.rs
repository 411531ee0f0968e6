//! The invalidation outbox: bumps that could not reach the store, kept and
//! re-applied until they land.
//!
//! A bump that fails or times out may or may not have reached the store (a
//! timed-out `EVALSHA` can still run once a frozen Redis thaws). Either way
//! it goes into the outbox: re-applying a bump only draws another random
//! version, so "maybe applied" is simply applied again.
//!
//! While a tag is pending here, this process serves nothing cached that
//! depends on it (*read fencing*, `detail=pending-invalidation`): the store
//! still holds the old version, and its entries are exactly what the bump
//! was meant to hide. A pending epoch bump fences every entry.
//!
//! The outbox is bounded by distinct pending tags. On overflow nothing is
//! dropped silently: the pending tags are replaced by one epoch bump
//! (everything misses once, when the store returns), logged and counted.
//!
//! Each enqueue takes a sequence number. A drain snapshots the pending tags
//! with the last sequence number of each, bumps them all, and then forgets a
//! tag only if nothing was enqueued for it since the snapshot: the bump it
//! sent was issued after every enqueue it covers, so it covers them. A
//! waiter for sequence number `s` is done once every pending entry starts
//! after `s` (`applied_below`).

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Notify, watch};

use crate::{
    error::Error,
    key::Tag,
    store::{Guarded, Store},
    telemetry,
};

/// Default bound of the outbox: distinct tags pending at once.
pub const DEFAULT_OUTBOX_CAPACITY: usize = 10_000;

/// First wait before a failed drain is retried; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(25);

/// Longest wait between two drain attempts: after the store returns, the
/// outbox drains within this (plus the breaker's cooldown, when it is open).
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// The most tags bumped in one drain call.
const DRAIN_BATCH: usize = 1024;

/// What became of a bump: applied now, or queued in the outbox.
///
/// Returned by [`Invalidator::invalidate`](crate::Invalidator::invalidate)
/// and the other write calls. A queued bump is re-applied with backoff until
/// it lands; meanwhile this process serves nothing cached that depends on
/// its tags. Wait for it with [`applied`](Self::applied).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_tagged_cache::Error> {
/// use tower_tagged_cache::{Invalidator, MemoryStore};
///
/// let invalidator = Invalidator::new(MemoryStore::new());
/// let bump = invalidator.invalidate(["User:42"]).await?;
/// assert!(bump.is_applied(), "the memory store never fails");
/// bump.applied().await; // returns at once
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Invalidation {
    /// `None` when applied at once; else the outbox and the bump's sequence
    /// number in it.
    queued: Option<(Arc<Outbox>, u64)>,
}

impl Invalidation {
    /// A bump that reached the store.
    pub(crate) fn applied_now() -> Self {
        Self { queued: None }
    }

    /// Whether the bump reached the store before the call returned.
    pub fn is_applied(&self) -> bool {
        self.queued.is_none()
    }

    /// Whether the bump is waiting in the outbox (the store failed, timed out
    /// or was skipped by the open circuit breaker).
    pub fn is_queued(&self) -> bool {
        self.queued.is_some()
    }

    /// Waits until the bump is in the store: at once when it was applied,
    /// else when the outbox has re-applied it (or an epoch bump that covers
    /// it, after an overflow). Never fails; bound it with a timeout if the
    /// store may stay away.
    pub async fn applied(&self) {
        if let Some((outbox, seq)) = &self.queued {
            outbox.wait_past(*seq).await;
        }
    }
}

impl fmt::Debug for Invalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.queued {
            None => f.write_str("Invalidation::Applied"),
            Some((_, seq)) => write!(f, "Invalidation::Queued({seq})"),
        }
    }
}

/// One pending bump (a tag's, or the epoch's).
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// The smallest sequence number it may not cover yet.
    first: u64,
    /// The last sequence number enqueued for it.
    last: u64,
}

#[derive(Default, Debug)]
struct State {
    tags: HashMap<Tag, Pending>,
    epoch: Option<Pending>,
    /// The next sequence number.
    next: u64,
}

impl State {
    fn len(&self) -> usize {
        self.tags.len() + usize::from(self.epoch.is_some())
    }

    /// Every sequence number below this is applied.
    fn applied_below(&self) -> u64 {
        self.tags
            .values()
            .chain(self.epoch.iter())
            .map(|p| p.first)
            .min()
            .unwrap_or(self.next)
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        seq
    }
}

/// A snapshot of what a drain sends.
struct Batch {
    tags: Vec<(Tag, u64)>,
    epoch: Option<u64>,
}

/// The outbox of one guarded store: shared by its clones (the layer, its
/// invalidators, handles with other deadlines).
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Pending entries: read without the lock on every cached request.
    len: AtomicUsize,
    capacity: usize,
    /// A drain task is running.
    draining: AtomicBool,
    /// `State::applied_below`, for waiters.
    applied_below: watch::Sender<u64>,
    /// Cuts a drain's backoff short: the store answered again.
    kick: Notify,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("pending", &self.pending())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Outbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            draining: AtomicBool::new(false),
            applied_below: watch::Sender::new(0),
            kick: Notify::new(),
        }
    }

    /// The store answered again after failures (the breaker's probe
    /// succeeded): a waiting drain tries at once.
    pub(crate) fn store_is_back(&self) {
        if self.pending() != 0 {
            self.kick.notify_one();
        }
    }

    /// Pending bumps (distinct tags, plus one for a pending epoch bump).
    pub(crate) fn pending(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (no invariant spans two
        // statements that can panic), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the state's size and watermark after a change.
    fn publish(&self, state: &State) {
        self.len.store(state.len(), Ordering::SeqCst);
        self.applied_below.send_replace(state.applied_below());
    }

    /// Whether a cached entry that depends on `tags` (and on the epoch, as
    /// every entry does) may be served: no when one of them has a pending
    /// bump. One atomic load when the outbox is empty.
    #[inline]
    pub(crate) fn fences(&self, tags: &[Tag]) -> bool {
        if self.len.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let state = self.lock();
        state.epoch.is_some() || tags.iter().any(|t| state.tags.contains_key(t))
    }

    /// Queues a bump of `tags` (of the epoch when `epoch`); its sequence
    /// number.
    fn enqueue(&self, tags: &[Tag], epoch: bool) -> u64 {
        let mut state = self.lock();
        let seq = state.take_seq();
        let mut overflowed = false;
        if epoch {
            mark(&mut state.epoch, seq);
        } else {
            for tag in tags {
                if !state.tags.contains_key(tag) && state.tags.len() >= self.capacity {
                    if state.epoch.is_some() {
                        // An epoch bump is pending anyway: the next one
                        // covers what does not fit.
                        mark(&mut state.epoch, seq);
                    } else {
                        overflowed = true;
                    }
                    break;
                }
                state
                    .tags
                    .entry(tag.clone())
                    .and_modify(|p| p.last = seq)
                    .or_insert(Pending {
                        first: seq,
                        last: seq,
                    });
            }
        }
        if overflowed {
            // One epoch bump covers every tag: it takes over their place in
            // line, so their waiters wait for it.
            let first = state.applied_below().min(seq);
            let dropped = state.tags.len();
            state.tags.clear();
            state.epoch = Some(Pending { first, last: seq });
            telemetry::outbox_overflowed(dropped + tags.len(), self.capacity);
        }
        self.publish(&state);
        telemetry::outbox_queued();
        seq
    }

    /// What a drain sends now (`None`: nothing is pending).
    fn batch(&self) -> Option<Batch> {
        let state = self.lock();
        if state.len() == 0 {
            return None;
        }
        if let Some(epoch) = state.epoch {
            // The epoch covers every tag; they go with it.
            let tags = state
                .tags
                .iter()
                .map(|(t, p)| (t.clone(), p.last))
                .collect();
            return Some(Batch {
                tags,
                epoch: Some(epoch.last),
            });
        }
        let tags = state
            .tags
            .iter()
            .take(DRAIN_BATCH)
            .map(|(t, p)| (t.clone(), p.last))
            .collect();
        Some(Batch { tags, epoch: None })
    }

    /// Forgets what `batch` covered: each entry with nothing enqueued since.
    fn landed(&self, batch: &Batch) {
        let mut state = self.lock();
        if let Some(last) = batch.epoch {
            // Every tag enqueued up to the snapshot is covered by the epoch.
            settle(&mut state.epoch, last);
            state.tags.retain(|_, p| {
                if p.last <= last {
                    return false;
                }
                p.first = p.first.max(last + 1);
                true
            });
        }
        for (tag, last) in &batch.tags {
            if let Some(p) = state.tags.get_mut(tag) {
                if p.last == *last {
                    state.tags.remove(tag);
                } else {
                    p.first = p.first.max(last + 1);
                }
            }
        }
        self.publish(&state);
    }

    /// Waits until every bump up to `seq` is applied.
    async fn wait_past(&self, seq: u64) {
        let mut rx = self.applied_below.subscribe();
        // `wait_for` checks the current value first; the sender lives as
        // long as `self`, so it never closes under us.
        let _ = rx.wait_for(|below| *below > seq).await;
    }

    /// Waits until every bump queued before this call is applied.
    pub(crate) fn drained(&self) -> impl Future<Output = ()> + '_ {
        let last = self.lock().next.checked_sub(1);
        async move {
            if let Some(last) = last {
                self.wait_past(last).await;
            }
        }
    }
}

/// Marks a pending entry as needed again by `seq`.
fn mark(pending: &mut Option<Pending>, seq: u64) {
    match pending {
        Some(p) => p.last = seq,
        None => {
            *pending = Some(Pending {
                first: seq,
                last: seq,
            })
        }
    }
}

/// Settles a pending entry that a drain up to `last` covered.
fn settle(pending: &mut Option<Pending>, last: u64) {
    if let Some(p) = pending {
        if p.last == last {
            *pending = None;
        } else {
            p.first = p.first.max(last + 1);
        }
    }
}

impl<St: Store> Guarded<St> {
    /// Bumps `tags`; when the store fails, times out or is skipped by the
    /// breaker, queues the bump in the outbox instead (never an error).
    pub(crate) async fn invalidate(&self, tags: &[Tag]) -> Invalidation {
        if tags.is_empty() {
            return Invalidation::applied_now();
        }
        match self.bump(tags).await {
            Ok(()) => Invalidation::applied_now(),
            Err(err) => self.queue(tags, false, &err),
        }
    }

    /// Replaces the epoch, or queues that.
    pub(crate) async fn invalidate_epoch(&self) -> Invalidation {
        match self.bump_epoch().await {
            Ok(()) => Invalidation::applied_now(),
            Err(err) => self.queue(&[], true, &err),
        }
    }

    fn queue(&self, tags: &[Tag], epoch: bool, err: &Error) -> Invalidation {
        telemetry::invalidation_queued(err, tags, epoch);
        let outbox = self.outbox().clone();
        let seq = outbox.enqueue(tags, epoch);
        self.start_draining();
        Invalidation {
            queued: Some((outbox, seq)),
        }
    }

    /// Starts the drain task unless one is running.
    fn start_draining(&self) {
        let outbox = self.outbox();
        if outbox
            .draining
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tokio::spawn(drain(self.clone()));
        }
    }
}

/// Re-applies pending bumps until none is left, with backoff before the
/// first try and between failures. Every call goes through the guarded path: an open breaker
/// turns a try away at once.
async fn drain<St: Store>(store: Guarded<St>) {
    let outbox = store.outbox().clone();
    // The bump that queued failed just now: wait before the first try too.
    let mut wait = FIRST_BACKOFF;
    loop {
        if !wait.is_zero() {
            // Woken early when the store is back; else after `wait`.
            let _ = tokio::time::timeout(wait, outbox.kick.notified()).await;
        }
        let Some(batch) = outbox.batch() else {
            outbox.draining.store(false, Ordering::Release);
            // An enqueue that saw the flag still set relies on this task:
            // look once more, and carry on if it queued anything.
            if outbox.pending() == 0
                || outbox
                    .draining
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                return;
            }
            continue;
        };
        let tags: Vec<Tag> = batch.tags.iter().map(|(t, _)| t.clone()).collect();
        let result = match batch.epoch {
            Some(_) => store.bump_epoch().await,
            None => store.bump(&tags).await,
        };
        match result {
            Ok(()) => {
                outbox.landed(&batch);
                telemetry::outbox_applied(tags.len(), batch.epoch.is_some());
                wait = Duration::ZERO;
            }
            Err(_) => wait = (wait * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> Tag {
        s.parse().unwrap()
    }

    #[test]
    fn an_empty_outbox_fences_nothing() {
        let outbox = Outbox::new(8);
        assert!(!outbox.fences(&[tag("User:1")]));
        assert_eq!(*outbox.applied_below.borrow(), 0);
    }

    #[test]
    fn pending_tags_fence_until_a_drain_covers_them() {
        let outbox = Outbox::new(8);
        let s1 = outbox.enqueue(&[tag("User:1"), tag("Users")], false);
        assert!(outbox.fences(&[tag("User:1")]));
        assert!(outbox.fences(&[tag("Org:9"), tag("Users")]));
        assert!(!outbox.fences(&[tag("User:2")]));
        let batch = outbox.batch().unwrap();
        // Enqueued again while the drain is out: the drain's bump may have
        // run before this write committed, so it does not count.
        let s2 = outbox.enqueue(&[tag("User:1")], false);
        outbox.landed(&batch);
        assert!(outbox.fences(&[tag("User:1")]));
        assert!(!outbox.fences(&[tag("Users")]));
        assert_eq!(outbox.pending(), 1);
        assert!(*outbox.applied_below.borrow() > s1, "s1 is covered");
        assert!(*outbox.applied_below.borrow() <= s2, "s2 is not");
        let batch = outbox.batch().unwrap();
        outbox.landed(&batch);
        assert_eq!(outbox.pending(), 0);
        assert!(!outbox.fences(&[tag("User:1")]));
        assert!(*outbox.applied_below.borrow() > s2);
    }

    #[test]
    fn overflow_becomes_one_epoch_bump_that_fences_everything() {
        let outbox = Outbox::new(2);
        let s1 = outbox.enqueue(&[tag("A"), tag("B")], false);
        assert!(!outbox.fences(&[tag("C")]));
        let s2 = outbox.enqueue(&[tag("C")], false);
        assert!(outbox.fences(&[tag("C")]), "nothing is dropped");
        assert!(
            outbox.fences(&[tag("Z")]),
            "an epoch bump fences every entry"
        );
        assert_eq!(outbox.pending(), 1, "the tags were folded into the epoch");
        assert!(
            *outbox.applied_below.borrow() <= s1,
            "s1 waits for the epoch"
        );
        let batch = outbox.batch().unwrap();
        assert_eq!(batch.epoch, Some(s2));
        outbox.landed(&batch);
        assert_eq!(outbox.pending(), 0);
        assert!(*outbox.applied_below.borrow() > s2);
    }

    #[test]
    fn an_epoch_drain_covers_tags_queued_before_it_only() {
        let outbox = Outbox::new(8);
        outbox.enqueue(&[], true);
        outbox.enqueue(&[tag("A")], false);
        let batch = outbox.batch().unwrap();
        outbox.enqueue(&[tag("B")], false);
        outbox.landed(&batch);
        assert!(!outbox.fences(&[tag("A")]));
        assert!(outbox.fences(&[tag("B")]));
    }

    #[test]
    fn batches_are_bounded() {
        let outbox = Outbox::new(DRAIN_BATCH * 2);
        let tags: Vec<Tag> = (0..DRAIN_BATCH + 10)
            .map(|i| tag(&format!("T:{i}")))
            .collect();
        outbox.enqueue(&tags, false);
        let batch = outbox.batch().unwrap();
        assert_eq!(batch.tags.len(), DRAIN_BATCH);
        outbox.landed(&batch);
        assert_eq!(outbox.pending(), 10);
    }
}
