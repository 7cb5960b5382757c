//! The generic control loop: which services are reconciled, when, and how many at once.
//!
//! Shaped like kube-runtime's `Controller`: a [`Reconciler`] is a function of (service, its own
//! state) that returns the [`Action`] to take next, and a failed reconcile goes through the
//! reconciler's error policy. Each watched service gets one tokio task that owns the service's
//! state, so a service is never reconciled twice at once and a slow or failing one never holds up
//! another; a semaphore bounds how many reconciles run concurrently. Each reconcile is told what
//! woke it ([`Wake`]); one woken by a change may find nothing to act on (the reconciler's own
//! write) and keep the schedule it interrupted ([`Action::KeepWaiting`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::swarm::{ServiceEvent, ServiceInfo, Swarm};

/// What the loop does after a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long (or at once on a service event).
    Requeue(Duration),
    /// Reconcile again only on a service event or the next resync that still wants the service.
    AwaitChange,
    /// Nothing to act on after a [`Wake::Changed`] (the change was the reconciler's own write):
    /// wait on as before it, so the next reconcile comes when it was due. After any other wake
    /// there is nothing left to wait for, and it is [`Action::AwaitChange`].
    KeepWaiting,
}

/// What woke a service's loop for a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The first reconcile since the loop began watching the service.
    Started,
    /// The delay the last reconcile asked for ([`Action::Requeue`]) elapsed.
    Requeued,
    /// The last reconcile failed, and the delay its error policy asked for elapsed.
    Retry,
    /// A Swarm event or a [`Waker`] said the service may have changed; it may be the
    /// reconciler's own write.
    Changed,
}

/// The identity of a watched service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    pub id: String,
    pub name: String,
}

/// What the control loop drives: one service at a time, with per-service state it owns.
pub trait Reconciler: Send + Sync + 'static {
    /// Per-service memory (metric history, source state); created when a service is first seen.
    type State: Send + 'static;
    type Error: std::fmt::Display + Send + 'static;

    /// Whether this service is the reconciler's business (e.g. it carries a policy label).
    fn wants(&self, service: &ServiceInfo) -> bool;

    fn new_state(&self, service: &ServiceRef) -> Self::State;

    fn reconcile(
        &self,
        service: &ServiceRef,
        state: &mut Self::State,
        wake: Wake,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// What to do after a failed reconcile; `failures` counts consecutive failures from 1.
    fn error_policy(&self, service: &ServiceRef, error: &Self::Error, failures: u32) -> Action;

    /// Called once when a service stops being watched (removed, or its policy label deleted).
    fn forget(&self, _service: &ServiceRef) {}

    /// The Swarm's services were listed successfully (a resync): `services` in all.
    fn synced(&self, _services: usize) {}

    /// Called once when the loop stops, after the last reconcile: the place to wait for work
    /// the reconciler started in the background (within a deadline of its own).
    fn drain(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// How the loop finds services and bounds its work.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// At most this many reconciles run at once.
    pub concurrency: usize,
    /// How often the full service list is re-read, to catch what events missed.
    pub resync: Duration,
    /// The longest pause between attempts to reach a Docker engine that does not answer.
    pub max_backoff: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            resync: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
        }
    }
}

struct Worker {
    service: ServiceRef,
    wake: Arc<Notify>,
    stop: CancellationToken,
}

/// Asks the loop to reconcile a service at once (after an override was written, say).
#[derive(Clone, Debug)]
pub struct Waker(mpsc::UnboundedSender<String>);

impl Waker {
    /// A waker and the receiving end to pass to [`run`].
    pub fn new() -> (Self, mpsc::UnboundedReceiver<String>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self(sender), receiver)
    }

    /// Reconciles the service (by name or ID) as soon as it is not already being reconciled.
    pub fn wake(&self, service: &str) {
        // The loop has stopped when the receiver is gone: nothing left to wake.
        let _ = self.0.send(service.to_owned());
    }
}

/// Runs `reconciler` over the services of `swarm` until `shutdown` is cancelled; reconciles in
/// flight when it is cancelled run to completion before this returns.
pub async fn run<S: Swarm, R: Reconciler>(
    swarm: Arc<S>,
    reconciler: Arc<R>,
    config: ControllerConfig,
    mut wakes: mpsc::UnboundedReceiver<String>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut events = None;
    let mut backoff = Backoff::new(config.max_backoff);
    let mut resync = tokio::time::interval(config.resync);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        if events.is_none() {
            events = Some(swarm.events());
        }
        let next_event = async {
            match events.as_mut() {
                Some(stream) => stream.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = resync.tick() => {
                match swarm.list_services().await {
                    Ok(services) => {
                        backoff.reset();
                        reconciler.synced(services.len());
                        sync_workers(&services, &mut workers, &mut tasks, &reconciler, &permits, &shutdown);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot list services; retrying");
                        sleep_or_cancel(backoff.next_delay(), &shutdown).await;
                        resync.reset_immediately();
                    }
                }
            }
            event = next_event => match event {
                Some(Ok(event)) => on_event(event, &mut workers, &mut resync),
                Some(Err(error)) => {
                    tracing::warn!(%error, "service event stream failed; reconnecting");
                    events = None;
                    sleep_or_cancel(backoff.next_delay(), &shutdown).await;
                    resync.reset_immediately();
                }
                None => {
                    tracing::warn!("service event stream ended; reconnecting");
                    events = None;
                    sleep_or_cancel(backoff.next_delay(), &shutdown).await;
                    resync.reset_immediately();
                }
            },
            Some(service) = wakes.recv() => {
                match workers.iter().find(|(id, worker)| **id == service || worker.service.name == service) {
                    Some((_, worker)) => worker.wake.notify_one(),
                    None => resync.reset_immediately(),
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }

    for worker in workers.values() {
        worker.stop.cancel();
    }
    while tasks.join_next().await.is_some() {}
    reconciler.drain().await;
}

fn on_event(
    event: ServiceEvent,
    workers: &mut HashMap<String, Worker>,
    resync: &mut tokio::time::Interval,
) {
    match event {
        ServiceEvent::Updated { id, .. } => match workers.get(&id) {
            Some(worker) => worker.wake.notify_one(),
            // An update may have added a policy label: let the resync decide.
            None => resync.reset_immediately(),
        },
        ServiceEvent::Created { .. } => resync.reset_immediately(),
        ServiceEvent::Removed { id, .. } => {
            if let Some(worker) = workers.remove(&id) {
                worker.stop.cancel();
            }
        }
    }
}

fn sync_workers<R: Reconciler>(
    services: &[ServiceInfo],
    workers: &mut HashMap<String, Worker>,
    tasks: &mut JoinSet<()>,
    reconciler: &Arc<R>,
    permits: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) {
    let wanted: HashMap<&str, &ServiceInfo> = services
        .iter()
        .filter(|service| reconciler.wants(service))
        .map(|service| (service.id.as_str(), service))
        .collect();
    workers.retain(|id, worker| {
        let keep = wanted.contains_key(id.as_str());
        if !keep {
            worker.stop.cancel();
        }
        keep
    });
    for (id, service) in wanted {
        if workers.contains_key(id) {
            continue;
        }
        let worker = Worker {
            service: ServiceRef {
                id: service.id.clone(),
                name: service.name.clone(),
            },
            wake: Arc::new(Notify::new()),
            stop: shutdown.child_token(),
        };
        tasks.spawn(work(
            worker.service.clone(),
            Arc::clone(reconciler),
            Arc::clone(permits),
            Arc::clone(&worker.wake),
            worker.stop.clone(),
        ));
        workers.insert(id.to_owned(), worker);
    }
}

/// One service's loop: reconcile, then wait for the requeue delay, a wake-up, or the stop.
async fn work<R: Reconciler>(
    service: ServiceRef,
    reconciler: Arc<R>,
    permits: Arc<Semaphore>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut state = reconciler.new_state(&service);
    let mut failures = 0u32;
    let mut woken = Wake::Started;
    // The reconcile that is due, and when; `None`: only a change wakes the loop.
    let mut due: Option<(Instant, Wake)> = None;
    loop {
        if woken != Wake::Changed {
            // This reconcile is the one that was due.
            due = None;
        }
        // What the loop does next, and what the reconcile after a requeue delay is woken by.
        let (action, requeued) = {
            let Ok(_permit) = permits.acquire().await else {
                break;
            };
            if stop.is_cancelled() {
                break;
            }
            match reconciler.reconcile(&service, &mut state, woken).await {
                Ok(action) => {
                    if action != Action::KeepWaiting {
                        failures = 0;
                    }
                    (action, Wake::Requeued)
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let action = reconciler.error_policy(&service, &error, failures);
                    (action, Wake::Retry)
                }
            }
        };
        match action {
            Action::Requeue(delay) => due = Some((Instant::now() + delay, requeued)),
            Action::AwaitChange => due = None,
            Action::KeepWaiting => {}
        }
        let delay = async {
            match due {
                Some((at, wake)) => {
                    tokio::time::sleep_until(at).await;
                    wake
                }
                None => std::future::pending().await,
            }
        };
        woken = tokio::select! {
            _ = stop.cancelled() => break,
            _ = wake.notified() => Wake::Changed,
            due = delay => due,
        };
    }
    reconciler.forget(&service);
}

async fn sleep_or_cancel(delay: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(delay) => {}
    }
}

/// Exponential backoff from 500 ms, doubling up to a ceiling.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);

    pub fn new(max: Duration) -> Self {
        Self {
            next: Self::FIRST,
            max,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let current = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        current
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay after `failures` consecutive failures, without keeping state.
    pub fn after(failures: u32, max: Duration) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        (Self::FIRST * 2u32.pow(exponent)).min(max)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use tokio_stream_shim::ReceiverStream;

    use super::*;
    use crate::swarm::{ContainerStats, EventStream, NodeInfo, SwarmError, SwarmResult, TaskInfo};

    /// A tiny stand-in for tokio-stream's ReceiverStream, to keep the dependency list short.
    mod tokio_stream_shim {
        use std::pin::Pin;
        use std::task::{Context, Poll};

        use futures_util::Stream;
        use tokio::sync::mpsc;

        pub struct ReceiverStream<T>(pub mpsc::UnboundedReceiver<T>);

        impl<T> Stream for ReceiverStream<T> {
            type Item = T;
            fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
                self.0.poll_recv(cx)
            }
        }
    }

    #[derive(Default)]
    struct FakeSwarm {
        services: Mutex<Vec<ServiceInfo>>,
        list_failures_left: Mutex<u32>,
        event_receivers: Mutex<Vec<mpsc::UnboundedReceiver<SwarmResult<ServiceEvent>>>>,
    }

    fn service(name: &str) -> ServiceInfo {
        ServiceInfo {
            id: format!("id-{name}"),
            name: name.to_owned(),
            version: 1,
            labels: BTreeMap::new(),
            replicas: Some(1),
            ..Default::default()
        }
    }

    impl FakeSwarm {
        fn with(names: &[&str]) -> (Arc<Self>, mpsc::UnboundedSender<SwarmResult<ServiceEvent>>) {
            let (sender, receiver) = mpsc::unbounded_channel();
            let swarm = FakeSwarm {
                services: Mutex::new(names.iter().map(|name| service(name)).collect()),
                event_receivers: Mutex::new(vec![receiver]),
                ..Default::default()
            };
            (Arc::new(swarm), sender)
        }
    }

    fn unused<T>() -> SwarmResult<T> {
        Err(SwarmError::Engine("not used by the controller".into()))
    }

    impl Swarm for FakeSwarm {
        async fn list_services(&self) -> SwarmResult<Vec<ServiceInfo>> {
            let mut failures = self.list_failures_left.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(SwarmError::Engine("connection refused".into()));
            }
            Ok(self.services.lock().unwrap().clone())
        }
        async fn inspect_service(&self, _: &str) -> SwarmResult<ServiceInfo> {
            unused()
        }
        async fn update_replicas(&self, _: &str, _: u64, _: u64) -> SwarmResult<()> {
            unused()
        }
        async fn scale(
            &self,
            _: &str,
            _: u64,
            _: u64,
            _: &BTreeMap<String, String>,
        ) -> SwarmResult<()> {
            unused()
        }
        async fn update_labels(
            &self,
            _: &str,
            _: u64,
            _: &BTreeMap<String, String>,
            _: &[String],
        ) -> SwarmResult<()> {
            unused()
        }
        async fn list_tasks(&self, _: &str) -> SwarmResult<Vec<TaskInfo>> {
            unused()
        }
        async fn container_stats(&self, _: &str) -> SwarmResult<ContainerStats> {
            unused()
        }
        async fn nodes(&self) -> SwarmResult<Vec<NodeInfo>> {
            unused()
        }
        async fn ping(&self) -> SwarmResult<()> {
            Ok(())
        }
        fn events(&self) -> EventStream {
            match self.event_receivers.lock().unwrap().pop() {
                Some(receiver) => Box::pin(ReceiverStream(receiver)),
                None => Box::pin(futures_util::stream::pending()),
            }
        }
    }

    /// Records every reconcile; each service takes `work` of (virtual) time and asks for `action`,
    /// or [`Action::KeepWaiting`] after a change when `keeps_waiting_on_changes`.
    struct Recorder {
        work: HashMap<String, Duration>,
        action: Action,
        keeps_waiting_on_changes: bool,
        started: Mutex<Vec<String>>,
        /// What woke each reconcile, and when.
        woken: Mutex<Vec<(Wake, Instant)>>,
        /// How many reconciles fail before they succeed.
        failures_left: Mutex<u32>,
        finished: Mutex<Vec<String>>,
        forgotten: Mutex<Vec<String>>,
    }

    impl Recorder {
        fn new(action: Action) -> Self {
            Recorder {
                work: HashMap::new(),
                action,
                keeps_waiting_on_changes: false,
                started: Mutex::default(),
                woken: Mutex::default(),
                failures_left: Mutex::default(),
                finished: Mutex::default(),
                forgotten: Mutex::default(),
            }
        }

        fn count(list: &Mutex<Vec<String>>, name: &str) -> usize {
            list.lock()
                .unwrap()
                .iter()
                .filter(|entry| *entry == name)
                .count()
        }
    }

    impl Reconciler for Recorder {
        type State = ();
        type Error = String;

        fn wants(&self, _: &ServiceInfo) -> bool {
            true
        }
        fn new_state(&self, _: &ServiceRef) {}
        async fn reconcile(
            &self,
            service: &ServiceRef,
            _: &mut (),
            wake: Wake,
        ) -> Result<Action, String> {
            self.started.lock().unwrap().push(service.name.clone());
            self.woken.lock().unwrap().push((wake, Instant::now()));
            {
                let mut failures_left = self.failures_left.lock().unwrap();
                if *failures_left > 0 {
                    *failures_left -= 1;
                    return Err("engine gone".into());
                }
            }
            if wake == Wake::Changed && self.keeps_waiting_on_changes {
                return Ok(Action::KeepWaiting);
            }
            if let Some(work) = self.work.get(&service.name) {
                tokio::time::sleep(*work).await;
            }
            self.finished.lock().unwrap().push(service.name.clone());
            Ok(self.action)
        }
        fn error_policy(&self, _: &ServiceRef, _: &String, failures: u32) -> Action {
            Action::Requeue(Backoff::after(failures, Duration::from_secs(30)))
        }
        fn forget(&self, service: &ServiceRef) {
            self.forgotten.lock().unwrap().push(service.name.clone());
        }
    }

    struct Running {
        shutdown: CancellationToken,
        handle: tokio::task::JoinHandle<()>,
        waker: Waker,
    }

    impl Running {
        async fn stop(self) {
            self.shutdown.cancel();
            self.handle.await.unwrap();
        }
    }

    fn start<R: Reconciler>(swarm: Arc<FakeSwarm>, reconciler: Arc<R>) -> Running {
        let shutdown = CancellationToken::new();
        let config = ControllerConfig {
            concurrency: 4,
            resync: Duration::from_secs(30),
            max_backoff: Duration::from_secs(8),
        };
        let (waker, wakes) = Waker::new();
        let handle = tokio::spawn(run(swarm, reconciler, config, wakes, shutdown.clone()));
        Running {
            shutdown,
            handle,
            waker,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_service_never_delays_another() {
        let (swarm, _events) = FakeSwarm::with(&["slow", "fast"]);
        let mut recorder = Recorder::new(Action::Requeue(Duration::from_secs(10)));
        recorder
            .work
            .insert("slow".into(), Duration::from_secs(1000));
        let recorder = Arc::new(recorder);
        let running = start(swarm, Arc::clone(&recorder));

        tokio::time::sleep(Duration::from_secs(55)).await;
        assert_eq!(Recorder::count(&recorder.started, "slow"), 1);
        assert_eq!(Recorder::count(&recorder.finished, "slow"), 0);
        assert_eq!(
            Recorder::count(&recorder.finished, "fast"),
            6,
            "fast is reconciled every 10s"
        );
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_event_reconciles_at_once() {
        let (swarm, events) = FakeSwarm::with(&["web"]);
        let recorder = Arc::new(Recorder::new(Action::AwaitChange));
        let running = start(swarm, Arc::clone(&recorder));

        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(Recorder::count(&recorder.finished, "web"), 1);
        events
            .send(Ok(ServiceEvent::Updated {
                id: "id-web".into(),
                name: "web".into(),
            }))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(Recorder::count(&recorder.finished, "web"), 2);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_the_reconciler_keeps_waiting_on_leaves_the_next_reconcile_when_it_was_due() {
        let (swarm, events) = FakeSwarm::with(&["web"]);
        let mut recorder = Recorder::new(Action::Requeue(Duration::from_secs(10)));
        recorder.keeps_waiting_on_changes = true;
        let recorder = Arc::new(recorder);
        let started = Instant::now();
        let running = start(swarm, Arc::clone(&recorder));

        tokio::time::sleep(Duration::from_secs(4)).await;
        let updated = ServiceEvent::Updated {
            id: "id-web".into(),
            name: "web".into(),
        };
        events.send(Ok(updated)).unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        running.waker.wake("web");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let woken: Vec<(Wake, u64)> = recorder
            .woken
            .lock()
            .unwrap()
            .iter()
            .map(|(wake, at)| (*wake, (*at - started).as_secs()))
            .collect();
        assert_eq!(
            woken,
            [
                (Wake::Started, 0),
                (Wake::Changed, 4),
                (Wake::Changed, 7),
                (Wake::Requeued, 10),
            ],
            "the changes kept the schedule of the first reconcile"
        );
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_reconcile_is_retried_as_such_and_keeping_waiting_after_it_awaits_a_change() {
        let (swarm, _events) = FakeSwarm::with(&["web"]);
        // Nothing is due after the retry: the loop waits for a change, it does not spin.
        let recorder = Recorder::new(Action::KeepWaiting);
        *recorder.failures_left.lock().unwrap() = 1;
        let recorder = Arc::new(recorder);
        let running = start(swarm, Arc::clone(&recorder));
        let woken = || -> Vec<Wake> {
            let woken = recorder.woken.lock().unwrap();
            woken.iter().map(|(wake, _)| *wake).collect()
        };

        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(woken(), [Wake::Started, Wake::Retry]);
        running.waker.wake("web");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(woken(), [Wake::Started, Wake::Retry, Wake::Changed]);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_by_name_reconciles_at_once() {
        let (swarm, _events) = FakeSwarm::with(&["web"]);
        let recorder = Arc::new(Recorder::new(Action::AwaitChange));
        let running = start(swarm, Arc::clone(&recorder));

        tokio::time::sleep(Duration::from_secs(1)).await;
        running.waker.wake("web");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(Recorder::count(&recorder.finished, "web"), 2);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_the_reconcile_in_flight_finish() {
        let (swarm, _events) = FakeSwarm::with(&["web"]);
        let mut recorder = Recorder::new(Action::Requeue(Duration::from_secs(15)));
        recorder.work.insert("web".into(), Duration::from_secs(5));
        let recorder = Arc::new(recorder);
        let running = start(swarm, Arc::clone(&recorder));

        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(Recorder::count(&recorder.finished, "web"), 0);
        running.stop().await;
        assert_eq!(
            Recorder::count(&recorder.finished, "web"),
            1,
            "the update in flight completed"
        );
        assert_eq!(
            Recorder::count(&recorder.started, "web"),
            1,
            "nothing new started after shutdown"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_removed_service_is_forgotten() {
        let (swarm, events) = FakeSwarm::with(&["web", "api"]);
        let recorder = Arc::new(Recorder::new(Action::Requeue(Duration::from_secs(15))));
        let running = start(Arc::clone(&swarm), Arc::clone(&recorder));

        tokio::time::sleep(Duration::from_secs(1)).await;
        swarm
            .services
            .lock()
            .unwrap()
            .retain(|service| service.name != "api");
        events
            .send(Ok(ServiceEvent::Removed {
                id: "id-api".into(),
                name: "api".into(),
            }))
            .unwrap();
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(Recorder::count(&recorder.forgotten, "api"), 1);
        assert_eq!(Recorder::count(&recorder.started, "api"), 1);
        assert!(Recorder::count(&recorder.started, "web") > 5);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_engine_is_retried_with_backoff() {
        let (swarm, _events) = FakeSwarm::with(&["web"]);
        *swarm.list_failures_left.lock().unwrap() = 3;
        let recorder = Arc::new(Recorder::new(Action::AwaitChange));
        let running = start(swarm, Arc::clone(&recorder));

        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            Recorder::count(&recorder.finished, "web"),
            1,
            "reconciled once the engine answered"
        );
        running.stop().await;
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let mut backoff = Backoff::new(Duration::from_secs(3));
        let delays: Vec<_> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 3000, 3000]);
        assert_eq!(
            Backoff::after(1, Duration::from_secs(30)),
            Duration::from_millis(500)
        );
        assert_eq!(
            Backoff::after(40, Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }
}
