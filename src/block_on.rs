//! A minimal executor for the few futures sync code must drive: the sync
//! `tantivy::Directory` methods (the scope KEK's wrap and unwrap, which run
//! in-process once the scope key is cached), the fuzz entry points and
//! unit tests (local KEKs).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on the current thread, parking it while the
/// future waits (woken through its waker). Needs no reactor, so it must
/// not be given futures that wait on one (such as a remote KEK's HTTP
/// call on a tokio runtime).
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_ready_and_woken_futures() {
        assert_eq!(block_on(async { 7 }), 7);
        // pending until another thread wakes it
        let mut fired = false;
        let v = block_on(std::future::poll_fn(|cx| {
            if fired {
                return Poll::Ready(42);
            }
            fired = true;
            let w = cx.waker().clone();
            thread::spawn(move || {
                thread::sleep(std::time::Duration::from_millis(10));
                w.wake();
            });
            Poll::Pending
        }));
        assert_eq!(v, 42);
    }
}
