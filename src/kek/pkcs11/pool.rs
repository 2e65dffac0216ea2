//! Loading a PKCS#11 module once per process, and a pool of logged-in
//! sessions on one token.
//!
//! * `C_Initialize` runs **once per module per process**, with
//!   `CKF_OS_LOCKING_OK` so the module may be called from many threads. The
//!   loaded module is kept for the life of the process (it is never
//!   finalised: other code in the process may share it). If something else
//!   in the process initialised the module first,
//!   `CKR_CRYPTOKI_ALREADY_INITIALIZED` is accepted.
//! * A PKCS#11 session is single-threaded (cryptoki's `Session` is `Send`
//!   but not `Sync`), so each operation borrows a whole session from the
//!   pool and gives it back when done. The pool opens sessions on demand, up
//!   to a limit, and then makes callers wait for a free one.
//! * Login state belongs to the application and the token, not to one
//!   session: every new session logs in, and `CKR_USER_ALREADY_LOGGED_IN`
//!   counts as success. If every session of the process on the token is
//!   closed the token logs out; the next new session logs in again.
//! * A token under load may fail to open a session or to log in for a
//!   moment (too many sessions, a busy lock, a device error): both steps
//!   are retried under the KEK's [`RetryConfig`](crate::RetryConfig),
//!   within its retry count and time budget. A PIN error is never retried.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::errors;
use crate::retry::Backoff;

/// A token PIN. Zeroized on drop; `Debug` never shows it; not `Clone`.
pub(super) struct Pin(Zeroizing<String>);

impl Pin {
    pub(super) fn new(pin: String) -> Pin {
        Pin(Zeroizing::new(pin))
    }

    fn auth(&self) -> AuthPin {
        // `AuthPin` is a `secrecy` box: it zeroizes its own copy on drop.
        AuthPin::from(self.0.as_str())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([REDACTED])")
    }
}

fn modules() -> MutexGuard<'static, HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The module at `path`, loaded and initialised on first use; later calls
/// (from any thread, for any KEK) get the same context.
pub(super) fn module(path: &Path) -> Result<Pkcs11, CkError> {
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut loaded = modules();
    if let Some(ctx) = loaded.get(&key) {
        return Ok(ctx.clone());
    }
    // Held under the registry lock: two threads cannot both initialise.
    let ctx = Pkcs11::new(&key)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(e),
    }
    loaded.insert(key, ctx.clone());
    Ok(ctx)
}

struct State {
    idle: Vec<Session>,
    /// Sessions that exist: idle plus borrowed.
    open: usize,
}

/// A bounded pool of sessions on one token, all logged in as the user.
pub(super) struct SessionPool {
    ctx: Pkcs11,
    slot: Slot,
    pin: Option<Pin>,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
    /// How opening a session and logging in are retried.
    backoff: Backoff,
}

impl fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("SessionPool")
            .field("slot", &self.slot.id())
            .field("max_sessions", &self.max)
            .field("open", &st.open)
            .field("idle", &st.idle.len())
            .field("pin", &self.pin.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl SessionPool {
    /// A pool of at most `max` (≥ 1) sessions on `slot`, retrying session
    /// opening and login under `backoff`.
    pub(super) fn new(
        ctx: Pkcs11,
        slot: Slot,
        pin: Option<Pin>,
        max: usize,
        backoff: Backoff,
    ) -> SessionPool {
        SessionPool {
            ctx,
            slot,
            pin,
            max: max.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            backoff,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Borrows a session: an idle one, a new one, or (at the limit) the
    /// next one given back. Blocks the calling thread while waiting, so call
    /// it from a blocking thread only.
    pub(super) fn get(&self) -> Result<PooledSession<'_>, CkError> {
        let mut st = self.lock();
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(PooledSession {
                    pool: self,
                    session: Some(s),
                    discard: false,
                });
            }
            if st.open < self.max {
                st.open += 1;
                break;
            }
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        drop(st);
        match self.open_session() {
            Ok(s) => Ok(PooledSession {
                pool: self,
                session: Some(s),
                discard: false,
            }),
            Err(e) => {
                self.lock().open -= 1;
                self.freed.notify_one();
                Err(e)
            }
        }
    }

    fn open_session(&self) -> Result<Session, CkError> {
        // Read-only sessions suffice: session objects (the transient data
        // key objects) may be created in them, and token objects are only
        // read.
        open_logged_in(
            &self.backoff,
            || self.ctx.open_ro_session(self.slot),
            |s| self.login_once(s),
        )
    }

    /// Logs the application in on `s` (and so on every session of this
    /// process on the token), retrying a transient failure within the
    /// pool's retry budget. Already logged in is success; no PIN means no
    /// login (public objects only, or a token without login).
    pub(super) fn login(&self, s: &Session) -> Result<(), CkError> {
        self.backoff
            .run_blocking(|| self.login_once(s), errors::is_transient)
    }

    /// One `C_Login` on `s`.
    fn login_once(&self, s: &Session) -> Result<(), CkError> {
        let Some(pin) = &self.pin else { return Ok(()) };
        match s.login(UserType::User, Some(&pin.auth())) {
            Ok(()) => Ok(()),
            Err(e) if errors::is_already_logged_in(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The module context.
    pub(super) fn context(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// The slot.
    pub(super) fn slot(&self) -> Slot {
        self.slot
    }

    /// The most sessions this pool opens.
    pub(super) fn max_sessions(&self) -> usize {
        self.max
    }

    fn give_back(&self, session: Session, discard: bool) {
        let mut st = self.lock();
        if discard {
            st.open -= 1;
            drop(st);
            // Closing also destroys any session object left in it.
            drop(session);
        } else {
            st.idle.push(session);
            drop(st);
        }
        self.freed.notify_one();
    }
}

/// Opens a session with `open` and logs in with `login`, both tried again
/// (a new session each time) under `backoff` while they fail transiently.
fn open_logged_in<S>(
    backoff: &Backoff,
    open: impl Fn() -> Result<S, CkError>,
    login: impl Fn(&S) -> Result<(), CkError>,
) -> Result<S, CkError> {
    backoff.run_blocking(
        || {
            let s = open()?;
            login(&s)?;
            Ok(s)
        },
        errors::is_transient,
    )
}

/// A session borrowed from a [`SessionPool`]; given back on drop.
pub(super) struct PooledSession<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
    discard: bool,
}

impl PooledSession<'_> {
    /// Close this session instead of returning it to the pool (after a
    /// device or session error, or when a transient object could not be
    /// destroyed).
    pub(super) fn discard(&mut self) {
        self.discard = true;
    }
}

impl Deref for PooledSession<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        self.session.as_ref().expect("session present until drop")
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool.give_back(s, self.discard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_debug_is_redacted() {
        let p = Pin::new("123456".into());
        assert_eq!(format!("{p:?}"), "Pin([REDACTED])");
    }

    /// The login step of `open_logged_in`, with faults injected: it
    /// fails with `faults` (real cryptoki errors, in order) before it
    /// succeeds; returns the result and the sessions opened.
    fn login_with_faults(faults: Vec<RvError>, config: crate::RetryConfig) -> (bool, usize) {
        use cryptoki::context::Function;
        use std::cell::{Cell, RefCell};
        let opened = Cell::new(0usize);
        let faults = RefCell::new(faults.into_iter());
        let r = open_logged_in(
            &Backoff::new(config),
            || {
                opened.set(opened.get() + 1);
                Ok(opened.get())
            },
            |_| match faults.borrow_mut().next() {
                Some(rv) => Err(CkError::Pkcs11(rv, Function::Login)),
                None => Ok(()),
            },
        );
        (r.is_ok(), opened.get())
    }

    fn quick() -> crate::RetryConfig {
        crate::RetryConfig::default()
            .backoff(
                std::time::Duration::from_millis(1),
                std::time::Duration::from_millis(2),
            )
            .seed(5)
    }

    #[test]
    fn transient_login_failures_are_retried_within_the_bound() {
        // a token under load: busy twice, then the login goes through on a
        // fresh session
        let busy = vec![RvError::DeviceError, RvError::CantLock];
        assert_eq!(login_with_faults(busy, quick()), (true, 3));
        // still failing after max_retries: the last failure is returned
        let always = vec![RvError::SessionCount; 10];
        assert_eq!(
            login_with_faults(always, quick().max_retries(3)),
            (false, 4)
        );
        // and the time budget bounds it whatever the count
        let start = std::time::Instant::now();
        let slow = quick()
            .max_retries(1_000)
            .backoff(
                std::time::Duration::from_millis(10),
                std::time::Duration::from_millis(20),
            )
            .max_total_time(std::time::Duration::from_millis(100));
        let (ok, opened) = login_with_faults(vec![RvError::DeviceError; 1_000], slow);
        assert!(!ok && opened < 20, "{opened}");
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn pin_errors_are_never_retried() {
        for rv in [
            RvError::PinIncorrect,
            RvError::PinLocked,
            RvError::PinExpired,
        ] {
            assert_eq!(login_with_faults(vec![rv], quick()), (false, 1), "{rv:?}");
        }
    }

    #[test]
    fn missing_module_is_an_error_not_a_panic() {
        let e = module(Path::new("/nonexistent/libnothing-pkcs11.so")).unwrap_err();
        assert!(matches!(e, CkError::LibraryLoading(_)), "{e:?}");
        // and a failed load is not cached
        assert!(module(Path::new("/nonexistent/libnothing-pkcs11.so")).is_err());
    }
}
