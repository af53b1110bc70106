//! `object-pool`: the guide's `UserPool` (a `sync.Pool` of `*User` with `Reset` on `Put`) and
//! its `ProcessUsers`, which takes a pooled user per id, `defer`s its `Put`, loads the user
//! into it and appends a copy to the result.
//!
//! `defer` runs when the function returns, not at the end of the loop body: within one call
//! nothing goes back to the pool, every id takes a fresh object (or one left by an earlier
//! call), all of them are held at once, and each is then copied into a new allocation
//! anyway. Beside it: allocating each user, and a pool whose object goes back after each use.
//!
//! Go's `userCopy := *user` copies the struct and shares its strings (a Go string is a
//! pointer and a length); the port moves the strings into the copy (`mem::take`), which is
//! the same work: one new allocation for the struct, none for the strings. A deep `clone()`
//! would charge the pool variants five string copies Go never makes.
//! The pool is a free list in `sync.Pool`'s manner: `get` pops an object or makes one, `put`
//! resets it and pushes it back, both in constant time whatever the pool holds.
//! (lockfree-object-pool's `LinearObjectPool`, used before, scans its linked pages from the
//! head on every take: holding N objects cost about N²/64 hops per call, a cost of that
//! library, not of pooling, and it decided the time ratio.) The claim is about allocations,
//! so it is decided on allocations per call; time is reported beside it.

use harness::micro::{self, Input, Routine};
use harness::{Engine, Experiment, Meta, Routines, RunCtx, Sweep, Trial, Variant};
use std::fmt::Write as _;
use std::sync::Mutex;

const ID: &str = "object-pool";

/// The guide's `User`, as its service loads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub status: String,
    pub created_at: String,
}

impl User {
    /// The guide's `Reset`: a Go `*u = User{}` drops the strings, so does this.
    pub fn reset(&mut self) {
        *self = User::default();
    }
}

/// The guide's `repo.LoadUser(ctx, id, user)`: fills `user` from a row (here made from the
/// id, so no database is timed: the experiment is about the objects).
pub fn load_user(id: u64, user: &mut User) {
    let _ = write!(user.id, "{:08x}-0000-4000-8000-{:012x}", id >> 16, id);
    let _ = write!(user.username, "user_{id:08}");
    let _ = write!(user.email, "user{id}@example.com");
    user.status.push_str(if id % 5 == 0 { "inactive" } else { "active" });
    let _ = write!(user.created_at, "2025-01-{:02}T00:00:00Z", id % 28 + 1);
}

/// `sync.Pool` of `*User` with the guide's `Reset` on `Put`: a free list behind a lock
/// (uncontended here: the micro engine runs one thread), constant time per get and put.
/// Go's pool is emptied at every garbage collection (into a victim cache the next one
/// drops); this one keeps its objects, which can only favour pooling.
#[derive(Default)]
pub struct Pool {
    free: Mutex<Vec<Box<User>>>,
}

impl Pool {
    /// `Get`: a pooled user, or a new one when the pool is empty (`New`).
    pub fn get(&self) -> Box<User> {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default()
    }

    /// `Put` after the guide's `Reset`.
    pub fn put(&self, mut user: Box<User>) {
        user.reset();
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(user);
    }

    /// Objects the pool holds now.
    pub fn len(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn new_pool() -> Pool {
    Pool::default()
}

/// No pool: a new user per id, returned as it is.
pub fn allocate(ids: &[u64]) -> Vec<Box<User>> {
    let mut users = Vec::with_capacity(ids.len());
    for &id in ids {
        let mut user = Box::new(User::default());
        load_user(id, &mut user);
        users.push(user);
    }
    users
}

/// A pooled user per id, copied out and returned to the pool at the end of each iteration.
pub fn pool_returned(pool: &Pool, ids: &[u64]) -> Vec<Box<User>> {
    let mut users = Vec::with_capacity(ids.len());
    for &id in ids {
        let mut user = pool.get();
        load_user(id, &mut user);
        // Go's `userCopy := *user` is a shallow copy: the copy shares the strings, then Reset
        // drops the pooled object's references. Moving the strings out is the same thing.
        users.push(Box::new(std::mem::take(&mut *user)));
        pool.put(user);
    }
    users
}

/// A deferred call: Go (since 1.18) wraps `defer s.userPool.Put(user)` in a closure holding
/// its evaluated arguments, and a defer inside a loop puts that closure on the heap.
pub type Deferred = Box<dyn FnOnce(&Pool) + Send>;

/// The guide's `ProcessUsers` as written: `defer s.userPool.Put(user)` inside the loop keeps
/// every pooled user until the function returns. Each defer is a heap-allocated closure, as
/// in Go; `deferred` is the list of them, kept between calls as Go's runtime keeps its defer
/// records in a per-P cache (no allocation for the list once warm).
pub fn guide_deferred(pool: &Pool, ids: &[u64], deferred: &mut Vec<Deferred>) -> Vec<Box<User>> {
    let mut users = Vec::with_capacity(ids.len());
    for &id in ids {
        let mut user = pool.get();
        load_user(id, &mut user);
        // userCopy := *user; users = append(users, &userCopy): a shallow copy, one new
        // allocation for the struct, the strings shared (moved here, as Reset drops them).
        users.push(Box::new(std::mem::take(&mut *user)));
        deferred.push(Box::new(move |pool: &Pool| pool.put(user)));
    }
    // The deferred Puts, at return (Go runs them last-in first-out).
    while let Some(put) = deferred.pop() {
        put(pool);
    }
    users
}

#[derive(Default)]
pub struct ObjectPool;

impl ObjectPool {
    pub fn new() -> Self {
        Self
    }
}

impl Experiment for ObjectPool {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Object pools (sync.Pool)",
            guide_section: "应用层优化 › Go语言优化 › 对象池优化 (UserPool, ProcessUsers)",
            claim: "Taking User objects from a sync.Pool avoids allocations when processing users.",
            variants: vec![
                Variant::new("allocate", "a new Box<User> per id, no pool"),
                Variant::new("pool-returned", "a pooled user per id, copied out and returned to the pool right after use"),
                Variant::new(
                    "guide-deferred",
                    "the guide's code as written: defer Put inside the loop, so every pooled user is held until the call returns, and each is copied out",
                )
                .tests_claim(),
                Variant::baseline_of_group("go-allocate", "Go original: a new *User per id, loaded and kept, no pool (go/inproc/object_pool.go)")
                    .in_go("ObjectPool/allocate"),
                Variant::new("go-pool-returned", "Go original: the pooled user copied out and Put back at the end of each iteration")
                    .compared_with("go-allocate")
                    .in_go("ObjectPool/pool-returned"),
                Variant::new("go-guide-deferred", "Go original: the guide's UserPool and ProcessUsers as printed, defer Put inside the loop; Go's own sync.Pool, emptied by the garbage collector")
                    .compared_with("go-allocate")
                    .in_go("ObjectPool/guide-deferred")
                    .tests_claim(),
            ],
            sweep: Sweep::numeric("records processed", "records", &[10.0, 1000.0], &[10.0, 1000.0]),
            primary_metric: micro::metrics("record")
                .into_iter()
                .find(|m| m.name == "allocs_per_call")
                .expect("the micro metrics count allocations"),
            metrics: [micro::metrics("record"), vec![micro::go::gc_metric()]].concat(),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Micro { routines: self, run: None }
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        harness::notes!()
    }
}

impl Routines for ObjectPool {
    fn routine(&self, _input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine> {
        let (variant, point) = (at.variant, at.point);
        let n = point.value as u64;
        let ids: Vec<u64> = (0..n).map(|i| i * 7 + 1).collect();
        // The pool lives as long as the service: across calls, as sync.Pool does.
        Ok(match variant {
            "allocate" => Routine::new(ids, |ids| allocate(ids)),
            "pool-returned" => Routine::new((new_pool(), ids), |(pool, ids)| pool_returned(pool, ids)),
            "guide-deferred" => {
                Routine::new((new_pool(), ids, Vec::with_capacity(n as usize)), |(pool, ids, deferred)| {
                    guide_deferred(pool, ids, deferred)
                })
            }
            other => anyhow::bail!("unknown variant {other}"),
        }
        .items(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_returns_the_same_users_and_the_pool_resets_them() {
        let ids: Vec<u64> = (0..50).collect();
        let want = allocate(&ids);
        let pool = new_pool();
        assert_eq!(pool_returned(&pool, &ids), want);
        assert_eq!(pool.len(), 1, "one user taken and put back per id: the same object each time");
        let mut deferred = Vec::new();
        assert_eq!(guide_deferred(&pool, &ids, &mut deferred), want);
        assert_eq!(pool.len(), 50, "every deferred Put came back at return");
        assert!(deferred.is_empty());
        // Every pooled object came back reset.
        assert_eq!(*pool.get(), User::default());
        assert_eq!(want[3].username, "user_00000003");
    }

    #[test]
    fn get_reuses_what_put_returned() {
        let pool = new_pool();
        let a = pool.get();
        let at = &*a as *const User;
        pool.put(a);
        let b = pool.get();
        assert_eq!(&*b as *const User, at, "the pooled object, not a new one");
        assert!(pool.is_empty());
    }
}
