//! Batched inference across services: requests that arrive together are run as one call, so a
//! model is evaluated once for all the services reconciled at the same moment.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

type Request<Req, Resp> = (Req, oneshot::Sender<Resp>);

/// Collects requests for up to `linger` after the first one (or until `max` are waiting), runs
/// them through one call of the batch function on a blocking thread, and routes each answer back.
pub struct Batcher<Req, Resp> {
    requests: mpsc::UnboundedSender<Request<Req, Resp>>,
    /// The batching task, stopped when the batcher is dropped.
    _task: AbortOnDropHandle<()>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts the batching task; `run` must answer one response per request, in order.
    /// Must be called within a tokio runtime.
    pub fn spawn<F>(run: F, linger: Duration, max: usize) -> Self
    where
        F: Fn(Vec<Req>) -> Vec<Resp> + Send + Sync + 'static,
    {
        let (requests, mut incoming) = mpsc::unbounded_channel::<Request<Req, Resp>>();
        let run = Arc::new(run);
        let task = tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + linger;
                while batch.len() < max.max(1) {
                    match tokio::time::timeout_at(deadline, incoming.recv()).await {
                        Ok(Some(request)) => batch.push(request),
                        _ => break,
                    }
                }
                let (inputs, replies): (Vec<Req>, Vec<_>) = batch.into_iter().unzip();
                let run = Arc::clone(&run);
                // A panicking model drops the replies: each caller sees `None`, the loop goes on.
                if let Ok(outputs) = tokio::task::spawn_blocking(move || run(inputs)).await {
                    for (reply, output) in replies.into_iter().zip(outputs) {
                        let _ = reply.send(output);
                    }
                }
            }
        });
        Self {
            requests,
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// The answer to `request`, or `None` if the batch failed to run.
    pub async fn call(&self, request: Req) -> Option<Resp> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((request, reply)).ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::join_all;

    use super::*;

    #[tokio::test]
    async fn requests_arriving_together_run_as_one_batch_and_get_their_own_answers() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let batcher = Batcher::spawn(
            move |inputs: Vec<u32>| {
                counted.fetch_add(1, Ordering::SeqCst);
                inputs.into_iter().map(|x| x * 10).collect()
            },
            Duration::from_millis(200),
            1000,
        );
        let answers = join_all((0..50).map(|i| batcher.call(i))).await;
        assert_eq!(answers, (0..50).map(|i| Some(i * 10)).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_its_bound() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&sizes);
        let batcher = Batcher::spawn(
            move |inputs: Vec<u32>| {
                seen.lock().unwrap().push(inputs.len());
                inputs
            },
            Duration::from_millis(200),
            8,
        );
        let answers = join_all((0..20).map(|i| batcher.call(i))).await;
        assert!(answers.iter().all(Option::is_some));
        let sizes = sizes.lock().unwrap();
        assert!(sizes.iter().all(|&n| n <= 8), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 20);
    }

    #[tokio::test]
    async fn a_panicking_batch_answers_none_and_the_batcher_keeps_working() {
        let batcher = Batcher::spawn(
            |inputs: Vec<u32>| {
                assert!(!inputs.contains(&13), "unlucky");
                inputs
            },
            Duration::from_millis(1),
            1,
        );
        assert_eq!(batcher.call(13).await, None);
        assert_eq!(batcher.call(7).await, Some(7));
    }
}
