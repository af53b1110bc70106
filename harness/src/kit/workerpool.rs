//! The guide's `WorkerPool` as its `ProcessUsersBatch` uses it, one model for every
//! experiment that puts it on trial (worker-pool, pg-batch): a pool of `workers` tasks built
//! for each call, jobs submitted through a queue of `queue` (submitting blocks while it is
//! full), one result channel per job read in submission order, the pool stopped at the end.

use crate::load::OpError;
use std::future::Future;
use std::sync::Arc;

/// `NewWorkerPool(10, 100, …)` in the guide's ProcessUsersBatch.
pub const GUIDE_WORKERS: usize = 10;
pub const GUIDE_QUEUE: usize = 100;

/// Run `job` on every item through a worker pool as the guide builds one; the sum of what the
/// jobs return (users found). The first failure is returned once every job has finished, as
/// the guide's loop over the result channels does.
pub async fn process_batch<T, F, Fut>(items: &[T], workers: usize, queue: usize, job: F) -> Result<usize, OpError>
where
    T: Copy + Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<usize, OpError>> + Send + 'static,
{
    type Job<T> = (T, tokio::sync::oneshot::Sender<Result<usize, OpError>>);
    let (tx, rx) = tokio::sync::mpsc::channel::<Job<T>>(queue.max(1));
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let handles: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (rx, job) = (rx.clone(), job.clone());
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((item, done)) = next else { break };
                    let _ = done.send(job(item).await);
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(items.len());
    for &item in items {
        let (done, result) = tokio::sync::oneshot::channel();
        if tx.send((item, done)).await.is_err() {
            break;
        }
        results.push(result);
    }
    drop(tx);
    let mut found = 0;
    let mut failure = None;
    for r in results {
        match r.await {
            Ok(Ok(k)) => found += k,
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(OpError::new("worker stopped")),
        }
    }
    for h in handles {
        let _ = h.await;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn every_item_runs_once_with_at_most_workers_in_flight() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let items: Vec<u64> = (0..250).collect();
        let (f, p) = (in_flight.clone(), peak.clone());
        let sum = process_batch(&items, 10, 100, move |i| {
            let (f, p) = (f.clone(), p.clone());
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                Ok(i as usize)
            }
        })
        .await
        .unwrap();
        assert_eq!(sum, (0..250).sum::<usize>());
        assert_eq!(peak.load(Ordering::SeqCst), 10);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_job_fails_the_batch_after_all_ran() {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let items: Vec<u32> = (0..50).collect();
        let out = process_batch(&items, 4, 8, move |i| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                if i == 7 {
                    Err(OpError::new("boom"))
                } else {
                    Ok(1)
                }
            }
        })
        .await;
        assert_eq!(out.unwrap_err().kind, "boom");
        assert_eq!(ran.load(Ordering::SeqCst), 50);
    }
}
