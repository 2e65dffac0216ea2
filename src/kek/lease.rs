//! Key leases: how long a data key obtained through a KEK may keep being
//! used by handles that outlive the call that unwrapped or wrapped it.
//!
//! A KEK that caches (an [`EncryptionScope`](crate::scope::EncryptionScope)'s
//! scope key) can hand out a [`KeyLease`] with each data key
//! ([`KeyEncryptionKey::lease`](super::KeyEncryptionKey::lease)). The chunk
//! engine carries it with the chunk key and checks it before it seals or
//! opens each chunk, so every handle — readers, writers, the parallel and
//! range decryptors, encrypted index files and blobs — stops within the
//! cache TTL once the key behind it was destroyed or revoked.
//!
//! * **The check** is a clock read and two atomic loads: the lease's own
//!   renewal point, and the holder's "destroyed" flag (set the moment the
//!   holder learns the key is gone, so handles of that process stop at
//!   once).
//! * **Renewal** happens at the renewal point (the holder's refresh-ahead
//!   point, before the hard deadline): first from the holder's cached state
//!   (no I/O: another user of the scope refreshed it), else by refreshing
//!   the holder, which may read its store and call the CMK. Sync drivers
//!   run that refresh on the calling thread (`pollster`); async
//!   drivers poll it ([`KeyLease::poll_renew`]) before they touch a chunk.
//!   A failed renewal keeps the lease until its hard deadline and retries
//!   after the holder's back-off; past the deadline every chunk fails with
//!   the renewal's error.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(any(feature = "tokio", test))]
use std::sync::Mutex;
use std::sync::{Arc, OnceLock};
#[cfg(any(feature = "tokio", test))]
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error::Error;

/// A boxed, sendable future (renewals are stored and polled later).
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The process clock of leases and caches: nanoseconds since the first
/// call, saturating (so `Duration::MAX` deadlines are "never").
pub(crate) mod clock {
    use super::*;

    fn epoch() -> Instant {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        *EPOCH.get_or_init(Instant::now)
    }

    /// Now, in nanoseconds since the epoch.
    #[inline]
    pub(crate) fn now() -> u64 {
        nanos(Instant::now().saturating_duration_since(epoch()))
    }

    /// `d` in nanoseconds, saturating at `u64::MAX`.
    #[inline]
    pub(crate) fn nanos(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// `t + d`, saturating.
    #[inline]
    pub(crate) fn after(t: u64, d: Duration) -> u64 {
        t.saturating_add(nanos(d))
    }
}

/// When a leased key must be renewed (`soft`) and when it stops (`hard`),
/// on the [`clock`]. `soft <= hard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) soft: u64,
    pub(crate) hard: u64,
}

/// Whoever vouches for a leased key: an encryption scope's cache.
pub(crate) trait LeaseHolder: Send + Sync + 'static {
    /// Whether the holder knows its keys are gone (checked before every
    /// chunk: an atomic load).
    fn is_revoked(&self) -> bool;

    /// The window of key `tag` as the holder knows it now, without I/O.
    /// `Ok(None)`: unknown or expired (renew). `Err`: never again (the key
    /// was destroyed).
    fn window(&self, tag: u32) -> crate::Result<Option<Window>>;

    /// Refreshes the holder for key `tag` (may read a store and call the
    /// CMK) and returns the new window.
    fn renew(self: Arc<Self>, tag: u32) -> BoxFuture<crate::Result<Window>>;

    /// How long to wait before retrying a failed renewal.
    fn backoff(&self) -> Duration;

    /// The error once the lease is past its deadline and `cause` stopped
    /// its renewal.
    fn expired(&self, tag: u32, cause: Error) -> Error;

    /// The error once the holder knows the key is gone.
    fn revoked(&self, tag: u32) -> Error;
}

/// A bound on how long a data key may keep being used by open handles,
/// handed out by a caching KEK with the key
/// ([`KeyEncryptionKey::lease`](super::KeyEncryptionKey::lease)): the
/// scope keys of an [`EncryptionScope`](crate::scope::EncryptionScope).
///
/// The chunk engine checks it before every chunk it seals or opens, in
/// every reader, writer and range decryptor: once the holder knows the key
/// is gone (a destroyed scope) every check fails at once; once the holder
/// could not vouch for the key for a whole cache TTL (its store or CMK
/// unreachable, the CMK revoked) every check fails with its error. Until
/// then the lease renews itself at the holder's refresh point — from the
/// holder's cache when another user refreshed it, else by refreshing the
/// holder: async readers and writers by polling that refresh, sync ones by
/// running it on the calling thread (so for a remote CMK or store, keep
/// the scope fresh from async code, or read on threads that can drive its
/// calls).
///
/// It holds no key material. Checking it costs a clock read and two atomic
/// loads; renewing it (about once per cache refresh period) may cost a
/// store read and a CMK call, made by the holder.
pub struct KeyLease {
    holder: Arc<dyn LeaseHolder>,
    tag: u32,
    soft: AtomicU64,
    hard: AtomicU64,
    /// A renewal being polled by an async driver.
    #[cfg(any(feature = "tokio", test))]
    renewal: Mutex<Option<BoxFuture<crate::Result<Window>>>>,
}

impl fmt::Debug for KeyLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLease")
            .field("tag", &self.tag)
            .field("revoked", &self.holder.is_revoked())
            .finish_non_exhaustive()
    }
}

impl Clone for KeyLease {
    /// The same lease (same holder and key, the current window), with no
    /// renewal in flight.
    fn clone(&self) -> Self {
        KeyLease {
            holder: Arc::clone(&self.holder),
            tag: self.tag,
            soft: AtomicU64::new(self.soft.load(Ordering::Relaxed)),
            hard: AtomicU64::new(self.hard.load(Ordering::Relaxed)),
            #[cfg(any(feature = "tokio", test))]
            renewal: Mutex::new(None),
        }
    }
}

impl KeyLease {
    /// A lease on key `tag` of `holder`, valid in `window`, that stops as
    /// soon as the holder is revoked.
    pub(crate) fn new(holder: Arc<dyn LeaseHolder>, tag: u32, window: Window) -> KeyLease {
        KeyLease {
            holder,
            tag,
            soft: AtomicU64::new(window.soft),
            hard: AtomicU64::new(window.hard),
            #[cfg(any(feature = "tokio", test))]
            renewal: Mutex::new(None),
        }
    }

    /// Whether the key may be used now, renewing the lease when it is due
    /// (on this thread: may block on the holder's I/O, see the module
    /// docs). Called before each chunk is sealed or opened.
    #[inline]
    pub(crate) fn check(&self) -> crate::Result<()> {
        if !self.holder.is_revoked() && clock::now() < self.soft.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.check_slow()
    }

    #[cold]
    fn check_slow(&self) -> crate::Result<()> {
        let now = match self.adopt_known()? {
            Ok(()) => return Ok(()),
            Err(now) => now,
        };
        let renewed = pollster::block_on(Arc::clone(&self.holder).renew(self.tag));
        self.settle(renewed, now)
    }

    /// [`KeyLease::check`] for async drivers: never blocks; polls the
    /// holder's renewal instead. Call it before sealing or opening chunks;
    /// the check inside the chunk engine then finds the lease renewed.
    #[cfg(any(feature = "tokio", test))]
    pub(crate) fn poll_renew(&self, cx: &mut Context<'_>) -> Poll<crate::Result<()>> {
        if !self.holder.is_revoked() && clock::now() < self.soft.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        let now = match self.adopt_known() {
            Ok(Ok(())) => return Poll::Ready(Ok(())),
            Ok(Err(now)) => now,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let mut slot = self.renewal.lock().unwrap_or_else(|p| p.into_inner());
        let fut = slot.get_or_insert_with(|| Arc::clone(&self.holder).renew(self.tag));
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                *slot = None;
                Poll::Ready(self.settle(r, now))
            }
        }
    }

    /// [`KeyLease::poll_renew`] as a future.
    #[cfg(any(feature = "blob", test))]
    pub(crate) async fn renew_if_due(&self) -> crate::Result<()> {
        std::future::poll_fn(|cx| self.poll_renew(cx)).await
    }

    /// The holder's cached state, without I/O: `Ok(Ok)` when it vouches
    /// for the key until a point still ahead; `Ok(Err(now))` when a
    /// renewal is needed; `Err` when the key is gone.
    fn adopt_known(&self) -> crate::Result<Result<(), u64>> {
        if self.holder.is_revoked() {
            return Err(self.holder.revoked(self.tag));
        }
        let now = clock::now();
        if let Some(w) = self.holder.window(self.tag)? {
            self.hard.fetch_max(w.hard, Ordering::Relaxed);
            if now < w.soft {
                self.soft.fetch_max(w.soft, Ordering::Relaxed);
                return Ok(Ok(()));
            }
        }
        Ok(Err(now))
    }

    /// Records the outcome of a renewal that started at `now`.
    fn settle(&self, renewed: crate::Result<Window>, now: u64) -> crate::Result<()> {
        let retry_at = clock::after(now, self.holder.backoff());
        match renewed {
            Ok(w) => {
                self.hard.store(w.hard, Ordering::Relaxed);
                // A window still due (another task's refresh is in flight):
                // look again after the back-off, not at every chunk.
                let soft = if w.soft > now {
                    w.soft
                } else {
                    retry_at.min(w.hard)
                };
                self.soft.store(soft, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if self.holder.is_revoked() => Err(e),
            Err(e) => {
                let hard = self.hard.load(Ordering::Relaxed);
                if now < hard {
                    // Serve until the deadline; retry after the back-off.
                    self.soft.store(retry_at.min(hard), Ordering::Relaxed);
                    Ok(())
                } else {
                    Err(self.holder.expired(self.tag, e))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32};

    /// A holder whose window and renewals the test sets.
    struct Fake {
        revoked: AtomicBool,
        window: Mutex<Option<Window>>,
        renew_to: Mutex<Option<Window>>,
        renewals: AtomicU32,
    }

    impl LeaseHolder for Fake {
        fn is_revoked(&self) -> bool {
            self.revoked.load(Ordering::Acquire)
        }
        fn window(&self, _: u32) -> crate::Result<Option<Window>> {
            Ok(*self.window.lock().unwrap())
        }
        fn renew(self: Arc<Self>, _: u32) -> BoxFuture<crate::Result<Window>> {
            Box::pin(async move {
                self.renewals.fetch_add(1, Ordering::SeqCst);
                let w = *self.renew_to.lock().unwrap();
                w.ok_or(Error::ApiMisuse("down"))
            })
        }
        fn backoff(&self) -> Duration {
            Duration::from_millis(20)
        }
        fn expired(&self, _: u32, cause: Error) -> Error {
            cause
        }
        fn revoked(&self, _: u32) -> Error {
            Error::ScopeNotFound {
                scope_id: "s".into(),
            }
        }
    }

    fn fake() -> Arc<Fake> {
        Arc::new(Fake {
            revoked: AtomicBool::new(false),
            window: Mutex::new(None),
            renew_to: Mutex::new(None),
            renewals: AtomicU32::new(0),
        })
    }

    fn in_ms(ms: u64) -> u64 {
        clock::after(clock::now(), Duration::from_millis(ms))
    }

    #[test]
    fn fast_path_then_renewal_then_deadline() {
        let h = fake();
        let lease = KeyLease::new(
            h.clone(),
            1,
            Window {
                soft: in_ms(30),
                hard: in_ms(60),
            },
        );
        lease.check().unwrap();
        assert_eq!(h.renewals.load(Ordering::SeqCst), 0);
        std::thread::sleep(Duration::from_millis(35));
        // due, renewal fails: still served until the hard deadline
        lease.check().unwrap();
        assert_eq!(h.renewals.load(Ordering::SeqCst), 1);
        // within the back-off: no new attempt
        lease.check().unwrap();
        assert_eq!(h.renewals.load(Ordering::SeqCst), 1);
        std::thread::sleep(Duration::from_millis(30));
        assert!(matches!(lease.check(), Err(Error::ApiMisuse("down"))));
        // the holder recovers: the lease comes back
        *h.renew_to.lock().unwrap() = Some(Window {
            soft: in_ms(1000),
            hard: in_ms(2000),
        });
        lease.check().unwrap();
        lease.check().unwrap();
        assert_eq!(h.renewals.load(Ordering::SeqCst), 3);
        // revocation stops it at once, whatever the window
        h.revoked.store(true, Ordering::Release);
        assert!(matches!(lease.check(), Err(Error::ScopeNotFound { .. })));
    }

    #[test]
    fn cached_state_renews_without_io_and_max_durations_do_not_overflow() {
        let h = fake();
        let far = Window {
            soft: clock::after(clock::now(), Duration::MAX),
            hard: u64::MAX,
        };
        assert_eq!(far.soft, u64::MAX);
        *h.window.lock().unwrap() = Some(far);
        let lease = KeyLease::new(h.clone(), 1, Window { soft: 0, hard: 0 });
        lease.check().unwrap();
        lease.clone().check().unwrap();
        assert_eq!(h.renewals.load(Ordering::SeqCst), 0, "renewed from state");
    }

    #[test]
    fn async_renewal_polls_the_holder() {
        let h = fake();
        *h.renew_to.lock().unwrap() = Some(Window {
            soft: in_ms(1000),
            hard: in_ms(2000),
        });
        let lease = KeyLease::new(h.clone(), 1, Window { soft: 0, hard: 0 });
        pollster::block_on(lease.renew_if_due()).unwrap();
        assert_eq!(h.renewals.load(Ordering::SeqCst), 1);
        pollster::block_on(lease.renew_if_due()).unwrap();
        assert_eq!(h.renewals.load(Ordering::SeqCst), 1);
    }
}
