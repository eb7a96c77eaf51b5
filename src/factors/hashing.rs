//! Where argon2 runs: a few threads of the lowest CPU priority, fed through a
//! bounded queue. A password or recovery-code check costs tens of milliseconds of
//! CPU; a storm of wrong guesses must take only what proxying leaves over, and when
//! the queue is full it is refused at once (503) instead of piling up.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use thread_priority::{set_current_thread_priority, ThreadPriority};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Why hashing work was not done.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashingError {
    #[error("too many password and code checks are waiting; try again shortly")]
    Busy,
    #[error("a hashing job failed")]
    Failed,
}

#[derive(Clone)]
pub struct HashingPool {
    jobs: SyncSender<Job>,
}

impl HashingPool {
    /// `threads` workers (at least one) and room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<HashingPool> {
        let (jobs, waiting) = sync_channel::<Job>(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for i in 0..threads.max(1) {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("portvakt-hash-{i}"))
                .spawn(move || work(&waiting))?;
        }
        Ok(HashingPool { jobs })
    }

    /// Queues `job` now (or refuses it now, when the queue is full); the future
    /// waits for its result without holding a runtime thread.
    pub fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Result<T, HashingError>> + Send + 'static {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have given up (the client went away): nothing to do.
            let _ = done.send(job());
        });
        let queued = match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(HashingError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(HashingError::Failed),
        };
        async move {
            queued?;
            result.await.map_err(|_| HashingError::Failed)
        }
    }
}

fn work(waiting: &Mutex<Receiver<Job>>) {
    if let Err(e) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(error = ?e, "could not lower the priority of a hashing thread");
    }
    loop {
        // Held only while taking a job, never while running one.
        let next = waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv();
        let Ok(job) = next else { return };
        // A job that panics loses its answer (its caller sees `Failed`), not the thread.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The niceness of the calling thread, from the kernel's own record.
    fn niceness() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name (which is in parentheses): nice is the 17th.
        let after = stat.rsplit_once(')').unwrap().1;
        after.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn jobs_run_at_the_lowest_priority() {
        let pool = HashingPool::new(1, 4).unwrap();
        assert_eq!(pool.run(niceness).await, Ok(19));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_panic_loses_only_its_job() {
        let pool = HashingPool::new(1, 1).unwrap();
        let (hold, gate) = std::sync::mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let busy = tokio::spawn(pool.run(move || gate.lock().unwrap().recv().ok()));
        // Let the worker take the first job, then fill the one waiting place.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let queued = tokio::spawn(pool.run(|| 2));
        assert_eq!(pool.run(|| 3).await, Err(HashingError::Busy));
        hold.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Ok(Some(())));
        assert_eq!(queued.await.unwrap(), Ok(2));
        #[allow(clippy::panic)]
        let failed = pool.run(|| -> u8 { panic!("in a job") }).await;
        assert_eq!(failed, Err(HashingError::Failed));
        assert_eq!(pool.run(|| 4).await, Ok(4), "the thread lives on");
    }
}
