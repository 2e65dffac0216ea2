//! How many threads the chunk engine may use: [`Threads`].

use std::num::NonZeroUsize;

/// How many threads an encryption or decryption may use, set once on the
/// [`Encryptor`](crate::Encryptor) or [`Decryptor`](crate::Decryptor).
///
/// The output never depends on it: chunk *i* is sealed with nonce *i*
/// whichever thread seals it, so an envelope is byte for byte the same on
/// one thread or many, and decryption reports the same error (that of the
/// lowest failing chunk) and releases the same verified plaintext.
///
/// The default is one thread: the calling thread, no thread is spawned.
/// With *n* > 1, the calling thread is one of the *n* and `n - 1` scoped
/// threads are spawned per call (none outlives it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Threads {
    /// As many threads as [`std::thread::available_parallelism`] reports
    /// (1 if it cannot tell), looked up at each call.
    AllCores,
    /// Exactly this many threads.
    Fixed(NonZeroUsize),
}

impl Threads {
    /// One thread: the calling thread only.
    pub const ONE: Threads = Threads::Fixed(NonZeroUsize::MIN);

    /// The number of threads this stands for now (at least 1).
    ///
    /// Cost: for [`Threads::AllCores`], one
    /// [`available_parallelism`](std::thread::available_parallelism) call,
    /// which on Linux reads the process's CPU affinity and cgroup quota.
    pub fn count(self) -> usize {
        match self {
            Threads::AllCores => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            Threads::Fixed(n) => n.get(),
        }
    }
}

impl Default for Threads {
    /// [`Threads::ONE`].
    fn default() -> Threads {
        Threads::ONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(Threads::default(), Threads::ONE);
        assert_eq!(Threads::ONE.count(), 1);
        assert_eq!(Threads::Fixed(NonZeroUsize::new(3).unwrap()).count(), 3);
        assert!(Threads::AllCores.count() >= 1);
    }
}
