//! Leader election between operators: a lease held in a label of the operator's own service,
//! written with the service's version (Swarm's compare-and-swap), so one operator acts and the
//! others stand by, serving the read APIs, until the lease expires.
//!
//! The timings, from the lease's TTL (15 s by default):
//! - the holder renews every TTL/3 (5 s): the label's record changes at each renewal;
//! - the holder writes only within 2/3 of the TTL (10 s) of the start of its last successful
//!   renewal: one failed renewal is survived, two in a row stop its writes, well before the TTL
//!   could have run out for anyone else;
//! - a standby looks every second (or every TTL/3 if that is shorter) and takes the lease only
//!   once it has seen the same record (or no record) for a whole TTL by its own clock, so no
//!   clock needs to agree with another: it starts to act at the earliest one TTL after the
//!   holder's last renewal began, a third of the TTL after the holder stopped writing. Two
//!   standbys racing for it write at the same version: one fails;
//! - a holder that stops (SIGTERM) gives the lease back once its last writes are done: it marks
//!   its record `released`, and a standby takes a released lease at its next look, without
//!   waiting for the TTL.
//!
//! The election itself ([`Elector`]) is pure: it is given what was read and when, and says what
//! to write. [`run`] is the loop around it; [`Leadership`] is what the writers ask.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::swarm::{Swarm, SwarmError};

/// The label of the operator's service that holds the lease.
pub const LEASE_LABEL: &str = "io.swarmpilot.lease";

/// The default time a lease lasts without renewal.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// The lease as the label holds it (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    /// The operator holding it: unique per process.
    pub holder: String,
    /// Counts the holder's renewals, so every renewal changes the record a standby watches.
    pub renewals: u64,
    /// The TTL the holder works with, in seconds (informative: each operator uses its own).
    pub ttl_seconds: u64,
    /// The holder stopped and gave the lease back: anyone may take it at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

impl LeaseRecord {
    /// The record in a service's labels; a malformed one counts as none (it is overwritten).
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<LeaseRecord> {
        serde_json::from_str(labels.get(LEASE_LABEL)?).ok()
    }

    pub fn to_label(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The lease's timings, all derived from its TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTimings {
    pub ttl: Duration,
}

impl LeaseTimings {
    /// How often the holder renews and a standby looks.
    pub fn renew_every(self) -> Duration {
        self.ttl / 3
    }

    /// How long after the start of its last successful renewal the holder may write.
    pub fn write_window(self) -> Duration {
        self.ttl * 2 / 3
    }

    /// How often a standby looks: every second (a read of one service), so it sees a released
    /// lease at once and an expired one within a second; never less often than the holder
    /// renews.
    pub fn look_every(self) -> Duration {
        self.renew_every().min(Duration::from_secs(1))
    }
}

/// What the elector wants written after a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write this record at the version read: a renewal, or taking a free or expired lease.
    Write(LeaseRecord),
    /// Someone else holds a live lease.
    Wait,
}

/// One operator's side of the election. Pure: every input carries its time.
#[derive(Debug)]
pub struct Elector {
    me: String,
    timings: LeaseTimings,
    /// The record last read (`None`: the label was absent) and when it was first seen as it is.
    seen: Option<(Option<LeaseRecord>, Instant)>,
    /// The record this operator last wrote, while it holds the lease.
    held: Option<LeaseRecord>,
    /// Until when this operator may write.
    active_until: Option<Instant>,
}

impl Elector {
    pub fn new(me: impl Into<String>, timings: LeaseTimings) -> Self {
        Elector {
            me: me.into(),
            timings,
            seen: None,
            held: None,
            active_until: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.me
    }

    /// What to write, given the record read at `now`.
    pub fn next(&mut self, read: Option<LeaseRecord>, now: Instant) -> Step {
        match &read {
            // Given back by a holder that stopped (a restarted process is a new holder).
            Some(record) if record.released => {
                self.held = None;
                self.active_until = None;
                if record.holder == self.me {
                    return Step::Wait;
                }
                return Step::Write(self.record(0));
            }
            Some(record) if record.holder == self.me => {
                return Step::Write(self.record(record.renewals + 1));
            }
            // Still the holder after the label was dropped (a redeploy of the operator's own
            // stack): put it back. A standby waits a TTL on an absent record, so this is safe.
            None if self.held.is_some() => {
                let renewals = self.held.as_ref().map_or(0, |r| r.renewals + 1);
                return Step::Write(self.record(renewals));
            }
            Some(_) => {
                // Someone else holds it: stop writing at once.
                self.held = None;
                self.active_until = None;
            }
            None => {}
        }
        let first_seen = match &self.seen {
            Some((seen, since)) if *seen == read => *since,
            _ => now,
        };
        self.seen = Some((read, first_seen));
        if now.duration_since(first_seen) >= self.timings.ttl {
            Step::Write(self.record(0))
        } else {
            Step::Wait
        }
    }

    /// The write of `record`, started at `started`, succeeded.
    pub fn written(&mut self, record: LeaseRecord, started: Instant) {
        self.active_until = Some(started + self.timings.write_window());
        self.seen = Some((Some(record.clone()), started));
        self.held = Some(record);
    }

    /// Whether this operator may write at `now`.
    pub fn active(&self, now: Instant) -> bool {
        self.active_until.is_some_and(|until| now < until)
    }

    pub fn active_until(&self) -> Option<Instant> {
        self.active_until
    }

    /// When to read the lease next after a round that started at `started`.
    pub fn next_look(&self, started: Instant) -> Instant {
        if self.held.is_some() {
            started + self.timings.renew_every()
        } else {
            started + self.timings.look_every()
        }
    }

    /// Stops acting, and returns the record that gives the lease back if this operator holds
    /// it (the one `read` holds, marked released); `None` when another holds it.
    pub fn resign(&mut self, read: Option<&LeaseRecord>) -> Option<LeaseRecord> {
        self.held = None;
        self.active_until = None;
        let record = read.filter(|r| r.holder == self.me && !r.released)?;
        Some(LeaseRecord {
            renewals: record.renewals + 1,
            released: true,
            ..record.clone()
        })
    }

    fn record(&self, renewals: u64) -> LeaseRecord {
        LeaseRecord {
            holder: self.me.clone(),
            renewals,
            ttl_seconds: self.timings.ttl.as_secs(),
            released: false,
        }
    }
}

/// What an operator is in the election, as `/readyz`, `/metrics` and the log say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// No lease configured: the only operator, always acting.
    Sole,
    /// Holds the lease.
    Active,
    /// Another operator holds the lease (or this one has not taken it yet): reads only.
    Standby,
}

/// Whether this operator may write now: shared by the lease loop (which sets it) and every
/// writer (which asks). The deadline is checked at each write, so a lease loop that stalls
/// stops the writes on time by itself.
#[derive(Clone, Debug, Default)]
pub struct Leadership {
    inner: Arc<Mutex<LeadershipState>>,
}

#[derive(Debug, Default)]
struct LeadershipState {
    elected: bool,
    active_until: Option<Instant>,
}

impl Leadership {
    /// A leadership decided by an election (standby until the lease is taken).
    pub fn elected() -> Leadership {
        let leadership = Leadership::default();
        leadership.lock().elected = true;
        leadership
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeadershipState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set(&self, active_until: Option<Instant>) {
        self.lock().active_until = active_until;
    }

    pub fn role(&self) -> Role {
        let state = self.lock();
        match (state.elected, state.active_until) {
            (false, _) => Role::Sole,
            (true, Some(until)) if Instant::now() < until => Role::Active,
            (true, _) => Role::Standby,
        }
    }

    /// Whether this operator may change a service now.
    pub fn may_write(&self) -> bool {
        self.role() != Role::Standby
    }
}

/// Runs the election for `me` on the lease label of `service` until `shutdown`, keeping
/// `leadership` up to date. Returns the elector, for [`release`] once the writers have stopped.
pub async fn run<S: Swarm>(
    swarm: Arc<S>,
    service: String,
    mut elector: Elector,
    leadership: Leadership,
    shutdown: CancellationToken,
) -> Elector {
    tracing::info!(service = %service, holder = %elector.id(), ttl = ?elector.timings.ttl, "standby until the lease is taken");
    let mut was_active = false;
    loop {
        let started = Instant::now();
        round(&*swarm, &service, &mut elector, started).await;
        leadership.set(elector.active_until());
        let active = elector.active(Instant::now());
        if active != was_active {
            if active {
                tracing::info!(service = %service, holder = %elector.id(), "took the lease: acting");
            } else {
                tracing::warn!(service = %service, holder = %elector.id(), "lost the lease: standing by");
            }
            was_active = active;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return elector,
            _ = tokio::time::sleep_until(elector.next_look(started)) => {}
        }
    }
}

/// Gives the lease back, so a standby takes over at its next look rather than after the TTL:
/// called on shutdown once the reconcile loop has finished its writes. Stops `leadership`
/// writing first. A few tries, since a renewal of ours may have raced with the read.
pub async fn release<S: Swarm>(
    swarm: &S,
    service: &str,
    mut elector: Elector,
    leadership: &Leadership,
) {
    leadership.set(None);
    for _ in 0..3 {
        let info = match swarm.inspect_service(service).await {
            Ok(info) => info,
            Err(error) => {
                tracing::warn!(service, %error, "cannot read the lease to give it back; it expires after its TTL");
                return;
            }
        };
        let Some(record) = elector.resign(LeaseRecord::from_labels(&info.labels).as_ref()) else {
            return;
        };
        let set = BTreeMap::from([(LEASE_LABEL.to_owned(), record.to_label())]);
        match swarm.update_labels(&info.id, info.version, &set, &[]).await {
            Ok(()) => {
                tracing::info!(service, holder = %elector.id(), "gave the lease back");
                return;
            }
            Err(SwarmError::Conflict { .. }) => continue,
            Err(error) => {
                tracing::warn!(service, %error, "cannot give the lease back; it expires after its TTL");
                return;
            }
        }
    }
    tracing::warn!(service, "the lease kept changing; it expires after its TTL");
}

/// One read, and the write the elector asks for.
async fn round<S: Swarm>(swarm: &S, service: &str, elector: &mut Elector, started: Instant) {
    let info = match swarm.inspect_service(service).await {
        Ok(info) => info,
        Err(error) => {
            tracing::warn!(service, %error, "cannot read the lease");
            return;
        }
    };
    // A standby counts the TTL from when the read returned, never from when it was sent: a read
    // slowed down on a busy manager may return a renewal the holder began after this round did,
    // and counting from the round's start would end the TTL before the holder stops writing.
    let read_at = Instant::now();
    let Step::Write(record) = elector.next(LeaseRecord::from_labels(&info.labels), read_at) else {
        return;
    };
    let set = BTreeMap::from([(LEASE_LABEL.to_owned(), record.to_label())]);
    match swarm.update_labels(&info.id, info.version, &set, &[]).await {
        // The holder's write window counts from before its read: it stops early, never late.
        Ok(()) => elector.written(record, started),
        Err(SwarmError::Conflict { .. }) => {
            tracing::debug!(service, "the lease changed under the write; reading again")
        }
        Err(error) => tracing::warn!(service, %error, "cannot write the lease"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(15);

    fn timings() -> LeaseTimings {
        LeaseTimings { ttl: TTL }
    }

    #[test]
    fn timings_leave_a_third_of_the_ttl_between_the_last_write_and_a_takeover() {
        let t = timings();
        assert_eq!(t.renew_every(), Duration::from_secs(5));
        assert_eq!(t.write_window(), Duration::from_secs(10));
        assert!(t.renew_every() < t.write_window() && t.write_window() < t.ttl);
    }

    #[test]
    fn a_free_lease_is_taken_after_one_ttl_and_renewed() {
        let start = Instant::now();
        let mut a = Elector::new("a", timings());
        assert_eq!(a.next(None, start), Step::Wait);
        assert_eq!(a.next(None, start + TTL / 2), Step::Wait);
        let Step::Write(record) = a.next(None, start + TTL) else {
            panic!("an absent lease seen for a TTL is taken");
        };
        assert_eq!((record.holder.as_str(), record.renewals), ("a", 0));
        assert!(!a.active(start + TTL));
        a.written(record.clone(), start + TTL);
        assert!(a.active(start + TTL));
        // Renewed with a new count at each read of its own record.
        assert_eq!(
            a.next(Some(record.clone()), start + TTL + TTL / 3),
            Step::Write(LeaseRecord {
                renewals: 1,
                ..record
            })
        );
    }

    #[test]
    fn the_holder_stops_writing_before_anyone_can_take_over() {
        let start = Instant::now();
        let mut a = Elector::new("a", timings());
        let mut b = Elector::new("b", timings());
        let held = LeaseRecord {
            holder: "a".into(),
            renewals: 7,
            ttl_seconds: 15,
            released: false,
        };
        a.written(held.clone(), start);
        // b sees the record right after the write and for as long as nobody renews it.
        let mut now = start;
        while b.next(Some(held.clone()), now) == Step::Wait {
            now += Duration::from_millis(100);
        }
        // b would write at `now`; a stopped well before.
        assert!(now >= start + TTL);
        assert!(!a.active(start + timings().write_window()));
        assert!(a.active(start + timings().write_window() - Duration::from_millis(1)));
    }

    #[test]
    fn a_renewing_holder_is_never_taken_over_and_a_standby_never_writes() {
        let start = Instant::now();
        let mut b = Elector::new("b", timings());
        // A record renewed every 5 s: it never stays the same for a TTL.
        for i in 0..100u64 {
            let record = LeaseRecord {
                holder: "a".into(),
                renewals: i,
                ttl_seconds: 15,
                released: false,
            };
            let at = start + Duration::from_secs(5 * i);
            assert_eq!(b.next(Some(record), at), Step::Wait, "round {i}");
            assert!(!b.active(at));
        }
    }

    #[test]
    fn a_holder_that_sees_another_holder_stops_at_once() {
        let start = Instant::now();
        let mut a = Elector::new("a", timings());
        let mine = LeaseRecord {
            holder: "a".into(),
            renewals: 0,
            ttl_seconds: 15,
            released: false,
        };
        a.written(mine, start);
        let theirs = LeaseRecord {
            holder: "b".into(),
            renewals: 0,
            ttl_seconds: 15,
            released: false,
        };
        assert_eq!(
            a.next(Some(theirs), start + Duration::from_secs(1)),
            Step::Wait
        );
        assert!(!a.active(start + Duration::from_secs(1)));
    }

    #[test]
    fn a_holder_puts_back_a_dropped_label_and_a_malformed_one_counts_as_none() {
        let start = Instant::now();
        let mut a = Elector::new("a", timings());
        let mine = LeaseRecord {
            holder: "a".into(),
            renewals: 3,
            ttl_seconds: 15,
            released: false,
        };
        a.written(mine.clone(), start);
        assert_eq!(
            a.next(None, start + Duration::from_secs(5)),
            Step::Write(LeaseRecord {
                renewals: 4,
                ..mine.clone()
            })
        );
        let labels = BTreeMap::from([(LEASE_LABEL.to_owned(), "{not json".to_owned())]);
        assert_eq!(LeaseRecord::from_labels(&labels), None);
        let labels = BTreeMap::from([(LEASE_LABEL.to_owned(), mine.to_label())]);
        assert_eq!(LeaseRecord::from_labels(&labels), Some(mine));
    }

    #[test]
    fn a_released_lease_is_taken_at_once_and_only_its_holder_gives_it_back() {
        let start = Instant::now();
        let mut a = Elector::new("a", timings());
        let mut b = Elector::new("b", timings());
        let mine = LeaseRecord {
            holder: "a".into(),
            renewals: 4,
            ttl_seconds: 15,
            released: false,
        };
        a.written(mine.clone(), start);
        // b cannot give back what a holds.
        assert_eq!(b.resign(Some(&mine)), None);
        let given_back = a.resign(Some(&mine)).expect("the holder gives it back");
        assert!(given_back.released && given_back.renewals == 5);
        assert!(!a.active(start));
        // The label round-trips the flag; a record without it is not released.
        let labels = BTreeMap::from([(LEASE_LABEL.to_owned(), given_back.to_label())]);
        assert_eq!(LeaseRecord::from_labels(&labels), Some(given_back.clone()));
        assert!(!mine.to_label().contains("released"));
        // b takes it at its first look, no TTL waited; a, still running, does not take it back.
        let later = start + Duration::from_secs(1);
        assert!(
            matches!(b.next(Some(given_back.clone()), later), Step::Write(r) if r.holder == "b" && !r.released)
        );
        assert_eq!(a.next(Some(given_back), later), Step::Wait);
    }

    #[test]
    fn a_standby_looks_every_second_and_the_holder_renews_every_third_of_the_ttl() {
        let start = Instant::now();
        let mut a = Elector::new("a", timings());
        assert_eq!(a.next_look(start), start + Duration::from_secs(1));
        assert_eq!(a.next(None, start), Step::Wait);
        let Step::Write(record) = a.next(None, start + TTL) else {
            panic!("an absent lease seen for a TTL is taken");
        };
        a.written(record, start + TTL);
        assert_eq!(a.next_look(start + TTL), start + TTL + TTL / 3);
        let short = LeaseTimings {
            ttl: Duration::from_millis(1500),
        };
        assert_eq!(short.look_every(), Duration::from_millis(500));
    }

    #[test]
    fn leadership_without_election_always_writes_and_an_elected_one_starts_standby() {
        assert_eq!(Leadership::default().role(), Role::Sole);
        assert!(Leadership::default().may_write());
        let elected = Leadership::elected();
        assert_eq!(elected.role(), Role::Standby);
        assert!(!elected.may_write());
        elected.set(Some(Instant::now() + TTL));
        assert_eq!(elected.role(), Role::Active);
        elected.set(Some(Instant::now() - Duration::from_millis(1)));
        assert_eq!(elected.role(), Role::Standby);
    }
}
