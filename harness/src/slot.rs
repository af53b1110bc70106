//! `Slot`: what an experiment's setup leaves for its trials, checks and notes (the ids it
//! loaded, the schemas it built, a note per point), set and read through `&self`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// A value behind a lock, set whole by a hook and read by the next ones. A panic while another
/// hook held it does not poison it: every writer replaces or pushes whole values.
#[derive(Debug, Default)]
pub struct Slot<T>(Mutex<T>);

impl<T> Slot<T> {
    pub fn set(&self, value: T) {
        *self.lock() = value;
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value, leaving the default in its place.
    pub fn take(&self) -> T
    where
        T: Default,
    {
        std::mem::take(&mut *self.lock())
    }
}

impl<T: Clone> Slot<T> {
    /// A copy of the value (an `Arc`'s clone for shared data).
    pub fn get(&self) -> T {
        self.lock().clone()
    }
}

impl<T> Slot<Vec<T>> {
    pub fn push(&self, value: T) {
        self.lock().push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::Slot;

    #[test]
    fn a_slot_keeps_what_was_set_and_survives_a_panicking_holder() {
        let slot = std::sync::Arc::new(Slot::<Vec<u32>>::default());
        slot.push(1);
        let s = slot.clone();
        let _ = std::thread::spawn(move || {
            let _held = s.lock();
            panic!("a hook panics while holding the slot");
        })
        .join();
        slot.push(2);
        assert_eq!(slot.get(), vec![1, 2]);
        assert_eq!(slot.take(), vec![1, 2]);
        assert!(slot.get().is_empty());
        slot.set(vec![3]);
        assert_eq!(slot.get(), vec![3]);
    }
}
