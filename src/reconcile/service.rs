//! The swarmpilot reconciler: for one service, read its labels, observe its metrics, decide, and
//! write the replica count together with the operator's state label.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::controller::{Action, Backoff, Reconciler, ServiceRef, Wake};
use super::events::{self, Round, Seen};
use super::notify::{Notifications, StateChangeEvent, ATTEMPT_TIMEOUT, DRAIN_DEADLINE};
use super::restore::{self, Owned, Reset};
use super::signals::{self as model_signals, ModelRunner};
use super::status::{
    DecisionInputs, DecisionRecord, ForecasterStatus, MetricStatus, Sample, ServiceStatus,
    StatusStore, Trigger,
};
use super::tasks::observed_tasks;
use super::telemetry::{NoTelemetry, Telemetry};
use crate::decide::signals::StateChange;
use crate::decide::{
    self, clip, Actuation, Condition, ConditionInputs, Decision, History, MetricOutcome,
    MetricResult, MetricSample, Observation, PendingTasks, Rollout, HEADLINE_MAX,
};
use crate::metrics::{policy_sources, MetricReading, Observer, Targets};
use crate::models::ModelCache;
use crate::models::{SignalMemory, Signals};
use crate::policy::{
    check_max_replicas, compose, labels, Diagnostics, Event, EventReason, EventType, Override,
    PolicyCache, PolicySpec, ScaleState, ScalingPolicy, Source,
};
use crate::swarm::{ServiceInfo, Swarm, SwarmError, TaskInfo};

/// How the reconciler behaves, beyond what each policy says.
#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    /// Decide and report, but never write (like every policy in `recommend` mode).
    pub dry_run: bool,
    /// The longest a metric read may take; a slower source counts as failed for that reconcile.
    pub metric_deadline: Duration,
    /// How soon a service whose labels are malformed is looked at again (an edit also wakes it).
    pub invalid_policy_retry: Duration,
    /// How soon to retry after the service changed under a write.
    pub conflict_retry: Duration,
    /// The longest pause after consecutive failures.
    pub max_backoff: Duration,
    /// Only services carrying all these labels are watched (`--selector k=v`), so several
    /// operators, or an operator and a test, can share one Swarm.
    pub selector: BTreeMap<String, String>,
    /// The directory model files may be loaded from (`--model-dir`); `None`: only the shipped
    /// models.
    pub model_dir: Option<std::path::PathBuf>,
    /// How model files are checked before they are loaded (`--model-memory-limit`).
    pub model_check: crate::models::ModelCheck,
    /// The highest `maxReplicas` a policy label may set (`--max-replicas-ceiling`).
    pub max_replicas_ceiling: u32,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            metric_deadline: Duration::from_secs(10),
            invalid_policy_retry: Duration::from_secs(60),
            conflict_retry: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            selector: BTreeMap::new(),
            model_dir: None,
            model_check: crate::models::ModelCheck::default(),
            max_replicas_ceiling: crate::policy::MAX_REPLICAS,
        }
    }
}

/// Why a reconcile failed; every failure is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    /// The override label is malformed: the operator changes nothing rather than guess what the
    /// person who set it wanted.
    #[error("label {label} is malformed, so no change is made until it is fixed or removed: {diagnostics}")]
    Label {
        label: &'static str,
        diagnostics: Diagnostics,
    },
}

impl ReconcileError {
    /// The cause in a few words, for an event (the log has the whole error).
    fn headline(&self) -> String {
        match self {
            ReconcileError::Swarm(error) => format!("Docker engine: {error}"),
            ReconcileError::Label { label, diagnostics } => {
                format!("label {label} is malformed: {diagnostics}")
            }
        }
    }
}

/// What the reconciler remembers of one service between reconciles.
#[derive(Debug, Default)]
pub struct ServiceMemory {
    /// The decision history; `None` until first loaded from the state label.
    history: Option<History>,
    /// The diagnostics last logged, so a malformed label is logged once, not every minute.
    reported: Vec<String>,
    /// Metric history and model state for forecasts and traffic states.
    signals: SignalMemory,
    /// Whether the models' history was asked of Prometheus (once, at the first reconcile).
    backfilled: bool,
    /// The policy last decoded from the labels, decoded again only when they change.
    policy: PolicyCache,
    /// What the last reconcile saw, for telling events from repeats.
    seen: Seen,
    /// The operator's labels, the count and the version after the last reconcile, for telling a
    /// replaced spec (a plain `docker stack deploy`) from a user's scale, and a wake-up by the
    /// operator's own write from a change.
    owned: Option<Owned>,
    /// Failures before the first decision (no history loaded yet to keep them in); they join
    /// the history's ring, and so the state label, at the first decision.
    early: ScaleState,
}

impl ServiceMemory {
    /// Records a failure as a Warning event: in the history's ring once there is one, in the
    /// early ring before. Returns the ring to show.
    fn failed(&mut self, reason: EventReason, cause: &str, now: DateTime<Utc>) -> Vec<Event> {
        let event = Event {
            at: now,
            first_at: None,
            count: 1,
            type_: EventType::Warning,
            reason,
            message: clip(cause, HEADLINE_MAX),
        };
        let ring = self.history.as_mut().unwrap_or(&mut self.early);
        ring.push_event(event);
        ring.log.clone()
    }
}

/// Observes, decides and actuates one service at a time.
pub struct PolicyReconciler<S: Swarm, T: Targets> {
    swarm: Arc<S>,
    observer: Observer<S, T>,
    status: Arc<StatusStore>,
    telemetry: Arc<dyn Telemetry>,
    models: ModelRunner,
    /// The guarded client for state-change receivers; `None` if it could not be built.
    notify: Option<reqwest::Client>,
    /// The state-change posts in flight, waited for at shutdown.
    notifications: Notifications,
    options: ReconcileOptions,
    /// The services whose labels and count the operator remembers (`ServiceMemory::owned`).
    /// They stay watched after a spec replacement dropped their policy label (a plain `docker
    /// stack deploy` of a stack whose file does not name it), so the worker that remembers
    /// them sees the reset and restores it, even if a resync comes first.
    governed: Mutex<HashSet<String>>,
}

impl<S: Swarm, T: Targets> PolicyReconciler<S, T> {
    pub fn new(
        swarm: Arc<S>,
        observer: Observer<S, T>,
        status: Arc<StatusStore>,
        options: ReconcileOptions,
    ) -> Self {
        // Receivers get the same rule as every outbound address: no redirects, no metadata.
        // Without the guard there are no notifications at all: never an unguarded client.
        let notify = observer
            .outbound()
            .client(ATTEMPT_TIMEOUT)
            .map_err(|error| {
                tracing::error!(%error, "cannot build the notification client; state changes will not be sent to receivers");
            })
            .ok();
        Self {
            swarm,
            observer,
            status,
            telemetry: Arc::new(NoTelemetry),
            models: ModelRunner::new(
                ModelCache::new(options.model_dir.clone()).with_check(options.model_check.clone()),
            ),
            notify,
            notifications: Notifications::default(),
            options,
            governed: Mutex::default(),
        }
    }

    fn governed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set is only ever inserted into or removed from: a panic elsewhere leaves it whole.
        self.governed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reports every reconcile and failure to `telemetry` (the operator's own metrics).
    pub fn with_telemetry(mut self, telemetry: Arc<dyn Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
    }

    fn report_invalid(
        &self,
        service: &ServiceInfo,
        memory: &mut ServiceMemory,
        diagnostics: Vec<String>,
    ) {
        let now = Utc::now();
        let mut events = None;
        if memory.reported != diagnostics {
            tracing::warn!(service = %service.name, problems = %diagnostics.join("; "), "policy not applied");
            memory.reported.clone_from(&diagnostics);
            let first = diagnostics.first().map_or("", String::as_str);
            events = Some(memory.failed(EventReason::InvalidPolicy, first, now));
        }
        self.status.update(&service.name, |status| {
            if let Some(events) = events {
                status.events = events;
            }
            status.service_id.clone_from(&service.id);
            status.policy = None;
            status.diagnostics = diagnostics;
            status.current = service.replicas.and_then(|r| u32::try_from(r).ok());
            status.desired = None;
            status.last_reconcile = Some(now);
        });
    }

    /// The policy to apply, or the problems that stop it from applying: what the label says,
    /// and what this operator refuses (the replicas ceiling, servers it does not know).
    fn policy_of(
        &self,
        service: &ServiceInfo,
        cache: &mut PolicyCache,
    ) -> Result<Option<(ScalingPolicy, u32)>, Vec<String>> {
        let lines = |diagnostics: &Diagnostics| -> Vec<String> {
            diagnostics.0.iter().map(ToString::to_string).collect()
        };
        let decoded = cache.decode(&service.name, &service.labels);
        let Some(policy) = decoded.as_ref().map_err(lines)?.clone() else {
            return Ok(None);
        };
        if policy.service() != service.name {
            return Err(vec![format!(
                "spec.service: names service {:?}, but the policy label is on service {:?}",
                policy.service(),
                service.name
            )]);
        }
        let mut refused: Vec<String> = self
            .observer
            .outbound()
            .check_policy(&policy.spec)
            .iter()
            .map(ToString::to_string)
            .collect();
        if let Err(over) = check_max_replicas(&policy.spec, self.options.max_replicas_ceiling) {
            refused.push(over.to_string());
        }
        if !refused.is_empty() {
            return Err(refused);
        }
        let Some(replicas) = service.replicas else {
            return Err(vec![
                "the service is in global mode: only replicated services can be scaled".to_owned(),
            ]);
        };
        let current = u32::try_from(replicas).map_err(|_| {
            vec![format!(
                "the service has {replicas} replicas, more than swarmpilot can count"
            )]
        })?;
        Ok(Some((policy, current)))
    }

    async fn reconcile_service(
        &self,
        service: &ServiceRef,
        memory: &mut ServiceMemory,
        wake: Wake,
    ) -> Result<Action, ReconcileError> {
        let started = Instant::now();
        let info = match self.swarm.inspect_service(&service.id).await {
            Ok(info) => info,
            Err(SwarmError::NotFound(_)) => {
                self.status.remove(&service.name);
                return Ok(Action::AwaitChange);
            }
            Err(error) => return Err(self.engine_failed("inspect_service", error)),
        };
        let Some(trigger) = restore::trigger(wake, memory.owned.as_ref(), &info) else {
            // Deciding again would read the same inputs: the next reconcile comes when it was due.
            tracing::debug!(service = %info.name, version = info.version, "woken by the operator's own write; no reconcile");
            if let Some(owned) = memory.owned.as_mut() {
                owned.settled(info.version);
            }
            return Ok(Action::KeepWaiting);
        };
        let reset = memory
            .owned
            .as_ref()
            .and_then(|before| restore::external_reset(before, &info.labels));
        if let Some(reset) = reset {
            if let Some(action) = self.restore(&info, memory, reset, trigger).await? {
                return Ok(action);
            }
        }
        let (policy, current) = match self.policy_of(&info, &mut memory.policy) {
            Ok(Some(found)) => found,
            Ok(None) => {
                // No policy and no replaced spec (`swarmpilot delete` keeps the state label):
                // the service is no longer the operator's, and the next resync lets it go.
                memory.owned = None;
                self.status.remove(&info.name);
                return Ok(Action::AwaitChange);
            }
            Err(diagnostics) => {
                self.report_invalid(&info, memory, diagnostics);
                return Ok(Action::Requeue(self.options.invalid_policy_retry));
            }
        };
        memory.reported.clear();
        let override_ =
            labels::decode_override(&info.labels).map_err(|diagnostics| ReconcileError::Label {
                label: labels::OVERRIDE,
                diagnostics,
            })?;

        let tasks = self
            .swarm
            .list_tasks(&info.id)
            .await
            .map_err(|error| self.engine_failed("list_tasks", error))?;
        let readings = self
            .observer
            .read_policy(&info, &policy.spec, self.options.metric_deadline)
            .await;
        let mut observation = observe(&policy.spec, current, &tasks, &readings);
        let now = Utc::now();
        if !memory.backfilled {
            memory.backfilled = true;
            let backfill = model_signals::backfill(
                &mut memory.signals,
                &policy.spec,
                &self.models,
                self.observer.prometheus(),
                &info,
                now,
            );
            if tokio::time::timeout(self.options.metric_deadline, backfill)
                .await
                .is_err()
            {
                tracing::warn!(service = %info.name, "backfill timed out: the history fills as the metrics are read");
            }
        }
        model_signals::record(&mut memory.signals, &readings);
        let signals =
            model_signals::evaluate(&mut memory.signals, &policy.spec, &self.models, now).await;
        observation.forecast = signals.forecast;
        observation.traffic = signals.traffic;
        observation.rollout = info.rollout;
        if let Some(change) = signals.change {
            self.announce(&info.name, &policy, change);
        }
        let restored = memory.history.is_none();
        let history = match memory.history.take() {
            Some(history) => history,
            None => {
                let mut history = restored_history(&info, current, now);
                for event in std::mem::take(&mut memory.early.log) {
                    history.push_event(event);
                }
                history
            }
        };
        let mut decision = decide::decide(&policy, &observation, &history, override_.as_ref(), now);
        // The headline names the cause; the whole errors and the models' notes are detail.
        decision.detail.extend(
            readings
                .iter()
                .filter_map(|r| r.result.as_ref().err().map(|e| format!("{}: {e}", r.name))),
        );
        let unread = skipped_notes(&readings);
        if !unread.is_empty() {
            // Tasks left out of a value count as missing (HPA's rule), which damps a scale-up:
            // the headline says so when it has room, the detail always names each task.
            let suffix = "; some tasks not read, see detail";
            if decision.message.chars().count() + suffix.len() <= HEADLINE_MAX {
                decision.message.push_str(suffix);
            }
            decision.detail.extend(unread);
        }
        decision.detail.extend(signals.notes.iter().cloned());

        // A standby (another operator holds the lease) decides and reports like a dry run.
        let standby = !self.status.leadership().may_write();
        if standby {
            decision
                .detail
                .push("standby: another operator holds the lease and acts".to_owned());
        }
        let may_write = !self.options.dry_run && !standby;
        let write = decision.should_scale() && may_write;
        let mut next_history = history.record(&policy.spec, &decision, write, now);
        let active = override_.as_ref().filter(|o| o.is_active(now));
        let round = Round {
            decision: &decision,
            scaled: write,
            override_: active,
            state_change: signals.change.map(|c| (c.from, c.to)),
            restored,
            now,
        };
        let (happened, seen) = events::events(&round, &memory.seen);
        memory.seen = seen;
        for event in happened {
            next_history.push_event(event);
        }
        let mut owned = Owned::of(&info.labels, current, info.version);
        if write {
            let state = BTreeMap::from([(
                labels::STATE.to_owned(),
                labels::encode_state(&next_history),
            )]);
            owned.wrote(decision.desired, &state, &[]);
            match self
                .swarm
                .scale(&info.id, info.version, u64::from(decision.desired), &state)
                .await
            {
                Ok(()) => {}
                Err(SwarmError::Conflict { .. }) => {
                    tracing::info!(service = %info.name, "service changed since it was read; deciding again");
                    self.telemetry.write_conflict(&info.name);
                    memory.history = Some(history);
                    return Ok(Action::Requeue(self.options.conflict_retry));
                }
                Err(error) => {
                    let failed = Actuation::Failed(clip(&error.to_string(), 80));
                    // The ring keeps what happened, the write failure included; the next
                    // reconcile persists it.
                    let mut kept = history;
                    kept.log = next_history.log;
                    kept.push_event(Event {
                        at: now,
                        first_at: None,
                        count: 1,
                        type_: EventType::Warning,
                        reason: EventReason::FailedRescale,
                        message: clip(
                            &format!("{} -> {}: {error}", decision.current, decision.desired),
                            HEADLINE_MAX,
                        ),
                    });
                    self.status
                        .update(&info.name, |status| status.events = kept.log.clone());
                    memory.history = Some(kept);
                    self.status.update(&info.name, |status| {
                        status.conditions = conditions_now(
                            &policy,
                            &decision,
                            &signals,
                            &failed,
                            info.rollout,
                            status,
                            now,
                        );
                        self.telemetry.conditions(&info.name, &status.conditions);
                    });
                    return Err(self.engine_failed("scale", error));
                }
            }
        }
        // Any update during a rollout, labels included, would replace its rollback target: the
        // events and an expired override wait until it ends.
        let may_write_labels = may_write && info.rollout.is_none();
        if !write && may_write_labels {
            if let Some(state) = self.persist_events(&info, &next_history, now).await {
                owned.wrote(
                    current,
                    &BTreeMap::from([(labels::STATE.to_owned(), state)]),
                    &[],
                );
            }
        }
        memory.history = Some(next_history);
        if decision.override_expired
            && may_write_labels
            && self.remove_expired_override(&info.id).await
        {
            owned.wrote(owned.replicas, &BTreeMap::new(), &[labels::OVERRIDE]);
        }
        memory.owned = Some(owned);

        let span = tracing::Span::current();
        span.record("current", current);
        span.record("desired", decision.desired);
        span.record("reason", tracing::field::debug(decision.reason));
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        tracing::info!(applied = write, detail = %decision.detail.join("; "), "{}", decision.message);
        for reading in &readings {
            if reading.result.is_err() {
                self.telemetry.metric_failed(&info.name, &reading.name);
            }
            if let Some(source) = source_of(&policy.spec, &reading.name) {
                self.telemetry.metric_read(source.kind(), reading.took);
            }
        }
        self.telemetry.reconciled(
            &info.name,
            started.elapsed(),
            decision.reason,
            current,
            decision.desired,
        );
        self.telemetry
            .override_seen(&info.name, override_.as_ref().filter(|o| o.is_active(now)));
        self.telemetry
            .schedule(&info.name, decision.schedule.as_ref());
        self.telemetry.models(
            &info.name,
            signals.forecast_seen,
            ForecasterStatus::of(&signals).as_ref(),
            signals.traffic.map(|t| t.state),
        );
        let actuation = if write {
            Actuation::Scaled
        } else if standby {
            Actuation::Standby
        } else if decision.desired != decision.current {
            Actuation::NotWritten
        } else {
            Actuation::Unchanged
        };
        let log = memory
            .history
            .as_ref()
            .map(|h| h.log.clone())
            .unwrap_or_default();
        if standby {
            // The acting operator writes the state label: read it afresh at each reconcile, so
            // taking over starts from its stabilization and rate-limit memory, and waits a
            // whole window before scaling in, as any operator that starts does.
            memory.history = None;
        }
        let inputs = DecisionInputs {
            values: readings
                .iter()
                .filter_map(|r| Some((r.name.clone(), r.result.as_ref().ok()?.value)))
                .collect(),
            forecast: observation.forecast,
            traffic_state: observation.traffic.map(|t| t.state),
            tasks: Some(u32::try_from(observation.live_tasks()).unwrap_or(u32::MAX)),
        };
        self.record_status(
            &info, &policy, &readings, &decision, inputs, trigger, &signals, override_, &actuation,
            log, now,
        );
        self.telemetry.bounds(
            &info.name,
            policy.spec.min_replicas,
            policy.spec.max_replicas,
        );
        if let Some(status) = self.status.get(&info.name) {
            self.telemetry.conditions(&info.name, &status.conditions);
            self.telemetry.metric_values(&info.name, &status.metrics);
        }
        let pending = PendingTasks::of(&observation);
        self.telemetry
            .tasks_pending(&info.name, pending.as_ref().map_or(0, |p| p.pending));
        self.status
            .update(&info.name, |status| status.pending_tasks = pending);
        Ok(Action::Requeue(policy.spec.interval.as_std()))
    }

    /// Writes the state label when its event ring lags behind the one in memory (a scale
    /// writes it with the replica count; other events are written here), or when the service
    /// went quiet and the label does not know since when: the cooldown before going idle must
    /// survive a restart. While a metric stays above its activation `lastActive` moves at every
    /// reconcile and is not written (a restart then sees the service active again at once).
    /// The metrics' consecutive failed reads are written when they change (at most
    /// `failureThreshold` times per failing streak).
    /// A lost race is harmless: the next reconcile sees the lag again.
    /// Returns the state label written, if one was.
    async fn persist_events(
        &self,
        info: &ServiceInfo,
        history: &History,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let stored = labels::decode_state(&info.labels)
            .ok()
            .flatten()
            .unwrap_or_default();
        let went_quiet = history.last_active != stored.last_active
            && history.last_active.is_some_and(|at| at < now);
        if events::durable(&stored.log) == events::durable(&history.log)
            && !went_quiet
            && stored.failed_reads == history.failed_reads
        {
            return None;
        }
        let value = labels::encode_state(history);
        let state = BTreeMap::from([(labels::STATE.to_owned(), value.clone())]);
        match self
            .swarm
            .update_labels(&info.id, info.version, &state, &[])
            .await
        {
            Ok(()) => Some(value),
            Err(error) => {
                if matches!(error, SwarmError::Conflict { .. }) {
                    self.telemetry.write_conflict(&info.name);
                }
                tracing::info!(service = %info.name, %error, "events not written yet; the next reconcile retries");
                None
            }
        }
    }

    /// Puts back the replica count and the operator's labels a replaced spec dropped, at once
    /// and in one write. `None` when there is nothing to restore (no valid policy among the
    /// remembered labels, `--dry-run`, a standby): the reconcile then goes on as usual.
    async fn restore(
        &self,
        info: &ServiceInfo,
        memory: &mut ServiceMemory,
        reset: Reset,
        trigger: Trigger,
    ) -> Result<Option<Action>, ReconcileError> {
        let started = Instant::now();
        let mut restored = info.clone();
        restored.labels.extend(reset.labels.clone());
        let Ok(Some((policy, current))) = self.policy_of(&restored, &mut memory.policy) else {
            memory.owned = None;
            return Ok(None);
        };
        // A standby leaves the restore to the operator holding the lease.
        if self.options.dry_run || !self.status.leadership().may_write() {
            tracing::info!(service = %info.name, "the spec was replaced by an external update; not restored by a dry run or a standby");
            memory.owned = None;
            return Ok(None);
        }
        if let Some(rollout) = info.rollout {
            // A write now would replace the rollout's rollback target: the restore waits.
            tracing::info!(service = %info.name, %rollout, "the spec was replaced by an external update; restoring once the rollout ends");
            return Ok(Some(Action::Requeue(self.options.conflict_retry)));
        }
        let now = Utc::now();
        let target = u32::try_from(compose::kept_replicas(
            &policy.spec,
            u64::from(reset.replicas),
        ))
        .unwrap_or(current);
        let message = restore::message(current, target, &reset);
        let mut history = match memory.history.take() {
            Some(history) => history,
            None => restored_history(info, current, now),
        };
        history.push_event(Event {
            at: now,
            first_at: None,
            count: 1,
            type_: EventType::Warning,
            reason: EventReason::RestoredAfterExternalUpdate,
            message: clip(&message, HEADLINE_MAX),
        });
        let mut set = reset.labels;
        set.insert(labels::STATE.to_owned(), labels::encode_state(&history));
        let written = self
            .swarm
            .scale(&info.id, info.version, u64::from(target), &set)
            .await;
        memory.history = Some(history);
        match written {
            Ok(()) => {}
            Err(SwarmError::Conflict { .. }) => {
                self.telemetry.write_conflict(&info.name);
                return Ok(Some(Action::Requeue(self.options.conflict_retry)));
            }
            Err(error) => return Err(self.engine_failed("scale", error)),
        }
        let mut owned = Owned::of(&info.labels, current, info.version);
        owned.wrote(target, &set, &[]);
        memory.owned = Some(owned);
        tracing::info!(service = %info.name, current, desired = target, "{message}");
        let log = memory
            .history
            .as_ref()
            .map(|h| h.log.clone())
            .unwrap_or_default();
        self.status.update(&info.name, |status| {
            status.service_id.clone_from(&info.id);
            status.current = Some(target);
            status.desired = Some(target);
            status.events = log;
            status.push_decision(DecisionRecord {
                at: now,
                current,
                desired: target,
                reason: decide::Reason::RestoredAfterExternalUpdate,
                message: clip(&message, HEADLINE_MAX),
                detail: Vec::new(),
                applied: true,
                trigger,
                schedule: None,
                inputs: DecisionInputs::default(),
            });
        });
        self.telemetry.reconciled(
            &info.name,
            started.elapsed(),
            decide::Reason::RestoredAfterExternalUpdate,
            current,
            target,
        );
        Ok(Some(Action::Requeue(policy.spec.interval.as_std())))
    }

    /// Logs, counts and posts a traffic-state change; posting happens in the background.
    fn announce(&self, service: &str, policy: &ScalingPolicy, change: StateChange) {
        tracing::info!(service, from = ?change.from, to = %change.to, "traffic state changed");
        self.telemetry.state_changed(service, change.to);
        let (Some(anomaly), Some(client)) = (&policy.spec.anomaly, &self.notify) else {
            return;
        };
        let event = StateChangeEvent {
            service: service.to_owned(),
            from: change.from,
            to: change.to,
            at: change.at,
            action: anomaly.on_state.get(&change.to).copied(),
        };
        self.notifications
            .send(client, self.observer.outbound(), &anomaly.notify, event);
    }

    fn engine_failed(&self, operation: &str, error: SwarmError) -> ReconcileError {
        self.telemetry.docker_failed(operation);
        error.into()
    }

    /// Removes an expired override label; losing a race here is harmless (the next reconcile
    /// sees the label again and retries), so failures are only logged. Whether the label is gone.
    async fn remove_expired_override(&self, id: &str) -> bool {
        let result = async {
            let info = self.swarm.inspect_service(id).await?;
            if !info.labels.contains_key(labels::OVERRIDE) {
                return Ok(());
            }
            self.swarm
                .update_labels(
                    id,
                    info.version,
                    &BTreeMap::new(),
                    &[labels::OVERRIDE.to_owned()],
                )
                .await
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(service = id, "expired override removed");
                true
            }
            Err(error) => {
                tracing::warn!(service = id, %error, "could not remove the expired override yet");
                false
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record_status(
        &self,
        info: &ServiceInfo,
        policy: &ScalingPolicy,
        readings: &[MetricReading],
        decision: &Decision,
        inputs: DecisionInputs,
        trigger: Trigger,
        signals: &Signals,
        override_: Option<Override>,
        actuation: &Actuation,
        log: Vec<Event>,
        now: DateTime<Utc>,
    ) {
        let applied = *actuation == Actuation::Scaled;
        let metrics: Vec<MetricStatus> = readings
            .iter()
            .map(|reading| {
                let outcome = decision
                    .per_metric
                    .iter()
                    .find(|outcome| outcome.name == reading.name);
                MetricStatus {
                    name: reading.name.clone(),
                    value: reading.result.as_ref().ok().map(|r| r.value),
                    compared: outcome.and_then(|o| match o.result {
                        MetricResult::Recommended { current, .. } => Some(current),
                        MetricResult::Failed { .. } => None,
                    }),
                    target: outcome.map(|o| o.target),
                    error: reading.result.as_ref().err().map(ToString::to_string),
                    recommendation: outcome.and_then(MetricOutcome::replicas),
                    skipped: reading
                        .result
                        .as_ref()
                        .map(|r| r.skipped.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        let load_metric = policy
            .spec
            .forecast
            .as_ref()
            .map(|forecast| forecast.metric.as_str())
            .or_else(|| {
                policy
                    .spec
                    .metrics
                    .first()
                    .map(|metric| metric.name.as_str())
            });
        let load = metrics
            .iter()
            .find(|m| Some(m.name.as_str()) == load_metric);
        let demand = load.and_then(|m| m.value);
        let capacity = load
            .and_then(|m| m.target)
            .map(|target| target.capacity(decision.current));
        self.status.update(&info.name, |status| {
            status.service_id.clone_from(&info.id);
            status.policy = Some(policy.clone());
            status.diagnostics.clear();
            status.current = Some(decision.current);
            status.desired = Some(decision.desired);
            status.metrics = metrics;
            status.traffic_state = signals.traffic.map(|t| t.state);
            status.forecast = signals.forecast_seen;
            status.forecaster = ForecasterStatus::of(signals);
            status.override_ = override_.filter(|o| o.is_active(now));
            status.last_reconcile = Some(now);
            status.last_error = None;
            status.demand_metric = load_metric.map(str::to_owned);
            status.conditions = conditions_now(
                policy,
                decision,
                signals,
                actuation,
                info.rollout,
                status,
                now,
            );
            status.events.clone_from(&log);
            status.push_decision(DecisionRecord {
                at: now,
                current: decision.current,
                desired: decision.desired,
                reason: decision.reason,
                message: decision.message.clone(),
                detail: decision.detail.clone(),
                applied,
                trigger,
                schedule: decision.schedule.clone(),
                inputs,
            });
            status.push_sample(Sample {
                at: now,
                demand,
                replicas: decision.current,
                desired: decision.desired,
                forecast: signals.forecast_seen,
                capacity,
                state: signals.traffic.map(|t| t.state),
            });
        });
    }
}

/// The service's conditions after `decision`, keeping the transition times in `status`.
fn conditions_now(
    policy: &ScalingPolicy,
    decision: &Decision,
    signals: &Signals,
    actuation: &Actuation,
    rollout: Option<Rollout>,
    status: &ServiceStatus,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let inputs = ConditionInputs {
        spec: &policy.spec,
        decision,
        actuation,
        forecast: signals.verdict.as_ref(),
        traffic: signals.traffic.map(|t| t.state),
        rollout,
    };
    decide::conditions(&inputs, &status.conditions, now)
}

/// The history kept in the state label, plus the current count as a recommendation made now, so
/// a restarted operator waits a full stabilization window before scaling in, as a fresh HPA
/// controller does.
fn restored_history(info: &ServiceInfo, current: u32, now: DateTime<Utc>) -> History {
    let mut history = match labels::decode_state(&info.labels) {
        Ok(state) => state.unwrap_or_default(),
        Err(diagnostics) => {
            // The state label only carries rate-limit memory: starting afresh is safe.
            tracing::warn!(service = %info.name, %diagnostics, "ignoring a malformed state label");
            History::default()
        }
    };
    history.recommendations.push((now, current));
    history
}

/// One sentence per metric whose value leaves running tasks out, naming each and why: a task
/// on a node without an agent must show in the decision, not vanish from it.
fn skipped_notes(readings: &[MetricReading]) -> Vec<String> {
    readings
        .iter()
        .filter_map(|reading| {
            let skipped = &reading.result.as_ref().ok()?.skipped;
            (!skipped.is_empty()).then(|| {
                let tasks: Vec<String> = skipped.iter().map(ToString::to_string).collect();
                format!(
                    "{} leaves out {} task(s): {}",
                    reading.name,
                    skipped.len(),
                    tasks.join("; ")
                )
            })
        })
        .collect()
}

/// The source of the metric or signal `name` of the policy.
fn source_of<'a>(spec: &'a PolicySpec, name: &str) -> Option<Source<'a>> {
    policy_sources(spec)
        .into_iter()
        .find(|(found, _)| *found == name)
        .and_then(|(_, source)| source)
}

/// The decision engine's view of the service: its tasks and one sample per metric. A failed
/// read is given to the engine as its short summary; the whole error is the decision's detail.
pub fn observe(
    spec: &PolicySpec,
    current: u32,
    tasks: &[TaskInfo],
    readings: &[MetricReading],
) -> Observation {
    let mut observation = Observation::new(current);
    observation.tasks = observed_tasks(tasks);
    observation.metrics = readings
        .iter()
        .map(|reading| {
            let sample =
                match &reading.result {
                    Ok(value) if value.tasks.is_empty() => MetricSample::value(value.value),
                    Ok(value) => MetricSample::Reading(decide::MetricReading {
                        value: value.value,
                        per_task: Some(
                            value
                                .tasks
                                .iter()
                                .map(|task| (task.task_id.clone(), task.value))
                                .collect(),
                        ),
                    }),
                    Err(error) => MetricSample::failed(error.summary(
                        source_of(spec, &reading.name).map_or("metric source", |s| s.noun()),
                    )),
                };
            (reading.name.clone(), sample)
        })
        .collect();
    observation
}

impl<S: Swarm, T: Targets> Reconciler for PolicyReconciler<S, T> {
    type State = ServiceMemory;
    type Error = ReconcileError;

    fn wants(&self, service: &ServiceInfo) -> bool {
        let selected = self
            .options
            .selector
            .iter()
            .all(|(key, value)| service.labels.get(key) == Some(value));
        selected && (labels::has_policy(&service.labels) || self.governed().contains(&service.id))
    }

    fn new_state(&self, _: &ServiceRef) -> ServiceMemory {
        ServiceMemory::default()
    }

    async fn reconcile(
        &self,
        service: &ServiceRef,
        memory: &mut ServiceMemory,
        wake: Wake,
    ) -> Result<Action, ReconcileError> {
        let span = tracing::info_span!(
            "reconcile",
            service = %service.name,
            current = tracing::field::Empty,
            desired = tracing::field::Empty,
            reason = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let result = self
            .reconcile_service(service, memory, wake)
            .instrument(span)
            .await;
        if memory.owned.is_some() {
            self.governed().insert(service.id.clone());
        } else {
            self.governed().remove(&service.id);
        }
        if let Err(error) = &result {
            // A failure after a decision is in the decision's events already (FailedRescale,
            // FailedGetMetric); one before the first decision would otherwise leave no trace.
            if memory.history.is_none() {
                let events =
                    memory.failed(EventReason::FailedReconcile, &error.headline(), Utc::now());
                self.status
                    .update(&service.name, |status| status.events = events);
            }
        }
        result
    }

    fn error_policy(&self, service: &ServiceRef, error: &ReconcileError, failures: u32) -> Action {
        tracing::warn!(service = %service.name, %error, failures, "reconcile failed");
        self.status.update(&service.name, |status| {
            status.last_error = Some(error.to_string())
        });
        Action::Requeue(Backoff::after(failures, self.options.max_backoff))
    }

    fn synced(&self, _services: usize) {
        self.telemetry.swarm_synced(Utc::now());
    }

    fn forget(&self, service: &ServiceRef) {
        self.governed().remove(&service.id);
        self.status.remove(&service.name);
        self.telemetry.forgotten(&service.name);
    }

    async fn drain(&self) {
        self.notifications.drain(DRAIN_DEADLINE).await;
    }
}
