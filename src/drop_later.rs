//! Frees values on a background thread. A replay's speed is the speed of the engine's one thread, and
//! freeing the events it is done with (a dozen strings each, allocated by a decoder thread) cost that
//! thread a measurable share of its time; so did freeing the whole engine at the end of a replay.
//! [`drop_later`] hands such a value, usually a batch, to a thread that does nothing else.
//!
//! Only for memory allocated on other threads (or freed at the end): mimalloc hands a block freed on a
//! foreign thread back to the thread that allocated it, so freeing the engine's own per-key state here
//! was no faster (tried; see the commit that added this module).
//!
//! The queue is short and bounded: when the freeing thread falls behind, `drop_later` waits for it, so
//! memory waiting to be freed stays small.

use std::sync::OnceLock;

use crossbeam_channel::{bounded, Sender};

/// Values (batches) waiting to be freed before `drop_later` waits.
const QUEUED: usize = 16;

/// Drops `value` on the freeing thread (started on first use), or here if it could not be started.
pub fn drop_later<T: Send + 'static>(value: T) {
    static QUEUE: OnceLock<Option<Sender<Box<dyn Send>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = bounded::<Box<dyn Send>>(QUEUED);
        let freeing =
            std::thread::Builder::new().name("drop-later".into()).spawn(move || rx.into_iter().for_each(drop));
        freeing.ok().map(|_| tx)
    });
    match queue {
        // The thread never ends, so a send cannot fail; if it did, the value comes back and is dropped here.
        Some(tx) => drop(tx.send(Box::new(value))),
        None => drop(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Counts its drops on the freeing thread.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            if std::thread::current().name() == Some("drop-later") {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn every_value_is_dropped_on_another_thread() {
        let dropped = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            drop_later(vec![Counted(dropped.clone()), Counted(dropped.clone())]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while dropped.load(Ordering::SeqCst) < 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(dropped.load(Ordering::SeqCst), 200);
    }
}
