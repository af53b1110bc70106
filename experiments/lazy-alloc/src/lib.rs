//! `lazy-alloc`: the guide's `ValidateUsers`, which allocates its error list only at the
//! first error (`if errors == nil { errors = make([]error, 0, len(users)) }`), against
//! allocating it up front, and against Rust's own default: `Vec::new()` does not allocate
//! until the first push, and then grows.
//!
//! The claim is about an allocation, so it is decided on allocations per call (exact counts,
//! the same every round); the time per call is reported beside it, with an A/A control
//! (`eager-twin`, eager's code in a function of its own) that shows how far two identical
//! routines' times differ by code layout alone.

use harness::micro::{self, Input, Routine};
use harness::{Engine, Experiment, Meta, Routines, RunCtx, Sweep, Trial, Variant};

const ID: &str = "lazy-alloc";
/// Users validated per call.
const USERS: usize = 1000;

#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub email: String,
}

/// A validation error: which user and which field (no allocation of its own, so the list is
/// what is measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationError {
    pub index: usize,
    pub field: &'static str,
}

/// The guide's `validateUser`: a username of 3–32 characters and an email with an `@`.
pub fn validate_user(i: usize, u: &User) -> Result<(), ValidationError> {
    if !(3..=32).contains(&u.username.len()) {
        return Err(ValidationError { index: i, field: "username" });
    }
    if !u.email.contains('@') {
        return Err(ValidationError { index: i, field: "email" });
    }
    Ok(())
}

/// `error_permille` of 1000 users are invalid, spread evenly.
pub fn users(error_permille: usize) -> Vec<User> {
    (0..USERS)
        .map(|i| {
            let bad = (i + 1) * error_permille / 1000 > i * error_permille / 1000;
            User {
                username: format!("user_{i:06}"),
                email: if bad { format!("user{i}.example.com") } else { format!("user{i}@example.com") },
            }
        })
        .collect()
}

/// Go's `make([]T, 0, n)`: room for `n`, and (unlike `Vec::with_capacity`) the whole backing
/// array zeroed, as Go's allocator hands out zeroed memory.
pub fn go_make<T>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    v.spare_capacity_mut().fill_with(std::mem::MaybeUninit::zeroed);
    v
}

/// Allocates the list up front: make([]error, 0, len(users)). Not inlined, as its twin is
/// not, so that the two differ only in where their code lies.
#[inline(never)]
pub fn eager(users: &[User]) -> Vec<ValidationError> {
    let mut errors = go_make(users.len());
    for (i, u) in users.iter().enumerate() {
        if let Err(e) = validate_user(i, u) {
            errors.push(e);
        }
    }
    errors
}

/// The A/A control: eager's code, compiled as a routine of its own.
#[inline(never)]
pub fn eager_twin(users: &[User]) -> Vec<ValidationError> {
    let mut errors = go_make(users.len());
    for (i, u) in users.iter().enumerate() {
        if let Err(e) = validate_user(i, u) {
            errors.push(e);
        }
    }
    errors
}

/// The guide's code: the list is made, with room for every user, at the first error.
pub fn guide_lazy(users: &[User]) -> Option<Vec<ValidationError>> {
    let mut errors: Option<Vec<ValidationError>> = None;
    for (i, u) in users.iter().enumerate() {
        if let Err(e) = validate_user(i, u) {
            errors.get_or_insert_with(|| go_make(users.len())).push(e);
        }
    }
    errors
}

/// Rust's default: Vec::new() allocates nothing until the first push, then grows.
pub fn vec_new(users: &[User]) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    for (i, u) in users.iter().enumerate() {
        if let Err(e) = validate_user(i, u) {
            errors.push(e);
        }
    }
    errors
}

#[derive(Default)]
pub struct LazyAlloc;

impl LazyAlloc {
    pub fn new() -> Self {
        Self
    }
}

impl Experiment for LazyAlloc {
    fn meta(&self) -> Meta {
        Meta {
            id: ID,
            title: "Allocating the error list only on error",
            guide_section: "应用层优化 › Go语言优化 › 避免不必要的内存分配 (ValidateUsers)",
            claim: "Allocating the error slice only when the first error appears avoids an allocation in the common, error-free case.",
            variants: vec![
                Variant::new("eager", "make([]error, 0, len(users)) before the loop, errors or not (zeroed, as Go's make)"),
                Variant::new("guide-lazy", "the guide's code: make([]error, 0, len(users)) at the first error").tests_claim(),
                Variant::new("vec-new", "Rust's default: Vec::new() (no allocation) and push, growing as needed"),
                Variant::new(
                    "eager-twin",
                    "A/A control: eager's code in a function of its own; any time it differs from eager by is code layout, not allocation",
                )
                .compared_with("eager"),
                Variant::baseline_of_group("go-eager", "Go original: make([]error, 0, len(users)) before the loop (go/inproc/lazy_alloc.go)")
                    .in_go("LazyAlloc/eager"),
                Variant::new("go-guide-lazy", "Go original: the guide's ValidateUsers as printed, errors as *ValidationError (one allocation per invalid user, as Go has it)")
                    .compared_with("go-eager")
                    .in_go("LazyAlloc/guide-lazy")
                    .tests_claim(),
            ],
            sweep: Sweep::numeric("error rate", "%", &[0.0, 1.0, 50.0], &[0.0, 50.0]),
            primary_metric: micro::metrics("user")
                .into_iter()
                .find(|m| m.name == "allocs_per_call")
                .expect("the micro metrics count allocations"),
            metrics: [micro::metrics("user"), vec![micro::go::gc_metric()]].concat(),
            controls: [1.0, 50.0]
                .map(|value| harness::experiment::Control::new(value, "some user is invalid, so the guide's code allocates the list too, as eager does"))
                .to_vec(),
            ..Default::default()
        }
    }

    fn engine(&self) -> Engine<'_> {
        Engine::Micro { routines: self, run: None }
    }

    fn notes(&self, _ctx: &RunCtx) -> Vec<String> {
        harness::notes!(users = USERS)
    }
}

impl Routines for LazyAlloc {
    fn routine(&self, _input: &Input<'_>, at: Trial<'_>) -> anyhow::Result<Routine> {
        let (variant, point) = (at.variant, at.point);
        let permille = (point.value * 10.0).round() as usize;
        if permille > 1000 {
            anyhow::bail!("error rate {}% is above 100%", point.value);
        }
        let users = users(permille);
        Ok(match variant {
            "eager" => Routine::new(users, |u| eager(u)),
            "guide-lazy" => Routine::new(users, |u| guide_lazy(u)),
            "eager-twin" => Routine::new(users, |u| eager_twin(u)),
            "vec-new" => Routine::new(users, |u| vec_new(u)),
            other => anyhow::bail!("unknown variant {other}"),
        }
        .items(USERS as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rates_are_as_configured_and_variants_agree() {
        for (permille, want) in [(0, 0), (10, 10), (500, 500), (1000, 1000)] {
            let u = users(permille);
            let e = eager(&u);
            assert_eq!(e.len(), want, "{permille}‰");
            assert_eq!(vec_new(&u), e);
            assert_eq!(eager_twin(&u), e);
            assert_eq!(guide_lazy(&u).unwrap_or_default(), e);
        }
        assert!(guide_lazy(&users(0)).is_none());
        assert_eq!(guide_lazy(&users(10)).unwrap().capacity(), USERS);
    }

    #[test]
    fn go_make_zeroes_its_whole_capacity() {
        let v: Vec<u64> = go_make(64);
        assert!(v.is_empty() && v.capacity() >= 64);
        let mut v = v;
        // SAFETY: go_make wrote every spare slot with MaybeUninit::zeroed(), and all-zero
        // bytes are a valid u64.
        assert!(v.spare_capacity_mut().iter().all(|x| unsafe { x.assume_init() } == 0));
    }
}
