//! Work across mailboxes on all cores, results in listing order.
//!
//! Mailboxes are independent, so each worker thread takes the next unclaimed index from a
//! shared counter and processes that mailbox. Results go through a small reorder buffer,
//! so what is printed (the `-v` lines) comes out in directory listing order, the order of
//! the reference, whatever the scheduling.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How many worker threads to use: twice the available cores (a cold-cache walk waits on
/// the disk, so a few extra outstanding requests help), at least 2, at most 16.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).clamp(2, 16)
}

/// Whether to draw a progress counter: only when stderr is a terminal, never in a journal.
pub fn progress_wanted() -> bool {
    std::io::stderr().is_terminal()
}

struct Reorder<T, E> {
    next: usize,
    pending: BTreeMap<usize, T>,
    emit: E,
}

/// Runs `work` on every item with `threads` threads and hands the results to `emit` in
/// item order (one at a time). With `progress`, the calling thread draws
/// `<done>/<total> mailboxes` on stderr while the workers run.
pub fn run_ordered<I, T, W, E>(items: &[I], threads: usize, progress: bool, work: W, emit: E)
where
    I: Sync,
    T: Send,
    W: Fn(&I) -> T + Sync,
    E: FnMut(T) + Send,
{
    let next_item = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let finished_workers = AtomicUsize::new(0);
    let threads = threads.clamp(1, items.len().max(1));
    let order = Mutex::new(Reorder {
        next: 0,
        pending: BTreeMap::new(),
        emit,
    });
    let main = std::thread::current();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next_item.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = work(item);
                    let mut order = order.lock().unwrap_or_else(PoisonError::into_inner);
                    order.pending.insert(index, result);
                    loop {
                        let next = order.next;
                        let Some(result) = order.pending.remove(&next) else {
                            break;
                        };
                        (order.emit)(result);
                        order.next += 1;
                    }
                    drop(order);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                if finished_workers.fetch_add(1, Ordering::AcqRel) + 1 == threads {
                    main.unpark();
                }
            });
        }
        if progress {
            draw_progress(&done, &finished_workers, threads, items.len());
        }
    });
}

fn draw_progress(done: &AtomicUsize, finished: &AtomicUsize, threads: usize, total: usize) {
    let mut stderr = std::io::stderr();
    while finished.load(Ordering::Acquire) < threads {
        std::thread::park_timeout(Duration::from_millis(200));
        let n = done.load(Ordering::Relaxed);
        let _ = write!(stderr, "\r{n}/{total} mailboxes");
    }
    // Clear the counter line so the summary starts on a clean line.
    let _ = write!(stderr, "\r\x1b[K");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_in_item_order() {
        let items: Vec<u64> = (0..500).collect();
        let mut seen = Vec::new();
        run_ordered(
            &items,
            4,
            false,
            |&i| {
                // Uneven work so threads finish out of order.
                (0..(i % 7) * 1000).fold(i, |a, b| a ^ b)
                    ^ (0..(i % 7) * 1000).fold(0, |a, b| a ^ b)
            },
            |r| seen.push(r),
        );
        assert_eq!(seen, items);
    }

    #[test]
    fn empty_input() {
        let mut n = 0;
        run_ordered(&[] as &[u8], 4, false, |_| 1, |_| n += 1);
        assert_eq!(n, 0);
    }
}
