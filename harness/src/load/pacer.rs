//! Sub-millisecond pacing for the open loop: a worker waits for its next arrival on a Linux
//! `timerfd` registered with its tokio runtime, instead of tokio's timer.
//!
//! Tokio's timer wheel has millisecond resolution: `sleep_until(t)` fires at the first
//! millisecond tick at or after `t`, up to ≈ 1 ms late, and the open loop counts latency from
//! the intended start, so that lateness was recorded as the server's. A timerfd is a kernel
//! hrtimer (no timer slack applies to it) whose expiry makes the fd readable; the runtime's
//! epoll returns at once, so a worker wakes within the scheduler's own wake-up time (a few to
//! tens of microseconds) without spinning and without a thread of its own.
//!
//! A wake-up from an idle CPU can take longer than that on a virtual machine (a halted vCPU
//! is woken by the hypervisor: 50–80 µs at the median on the 2-core machines the lab runs
//! on, over the pacing check's 50 µs floor, so that most of cache-warmup's open-loop samples
//! were invalid). So the timer is armed `EARLY` before the arrival and the worker yields to
//! its runtime until the arrival is due: the thread stays awake for that last stretch and
//! other tasks on it keep running (it never blocks them), at the price of up to `EARLY` of
//! CPU per arrival where the wake-up is quick. Only waits longer than `AWAKE_FROM` do so: a
//! shorter idle wakes quickly (the hypervisor polls a vCPU that halted only briefly), and at
//! the rates where arrivals are that close (a capacity search) staying awake would take up to
//! the whole of a load thread's CPU from the servers it measures: at most a quarter of it so.
//!
//! Where a timerfd cannot be had (not Linux, or the fd limit reached), the pacer falls back to
//! tokio's timer; the lateness it then records shows it, and the sample's pacing check judges.

use std::time::Duration;
use tokio::time::Instant;

/// How long before an arrival its worker wakes, to wait the rest awake (see the module's doc).
#[cfg(target_os = "linux")]
const EARLY: Duration = Duration::from_micros(100);

/// The shortest wait that ends awake (`EARLY` of it).
#[cfg(target_os = "linux")]
const AWAKE_FROM: Duration = Duration::from_micros(400);

pub(super) struct Pacer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Pacer {
    /// A pacer on the current runtime (a timerfd where the system gives one).
    pub(super) fn new() -> Self {
        #[cfg(target_os = "linux")]
        {
            Self { fd: timerfd().ok() }
        }
        #[cfg(not(target_os = "linux"))]
        {
            Self {}
        }
    }

    /// Wait until `deadline` (which must lie in the future to wait at all).
    pub(super) async fn wait_until(&mut self, deadline: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return;
            }
            if wait <= AWAKE_FROM {
                if arm(fd.get_ref(), wait).is_ok() && expire(fd).await.is_ok() {
                    return;
                }
            } else if arm(fd.get_ref(), wait - EARLY).is_ok() && expire(fd).await.is_ok() {
                // The last stretch awake: yield until the arrival is due.
                while Instant::now() < deadline {
                    tokio::task::yield_now().await;
                }
                return;
            }
            // An fd that fails once is not trusted again: the timer takes over.
            self.fd = None;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(target_os = "linux")]
fn timerfd() -> std::io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: timerfd_create takes no pointers; a non-negative return is a new fd we own.
    let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh, valid fd that nothing else owns.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    // SAFETY: an OwnedFd returns the same open fd for as long as it lives, and the AsyncFd
    // owns it until it is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)
}

/// Arm the timer to expire once, `after` from now (relative: no conversion between clocks).
#[cfg(target_os = "linux")]
fn arm(fd: &std::os::fd::OwnedFd, after: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let spec = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: libc::timespec { tv_sec: after.as_secs() as libc::time_t, tv_nsec: after.subsec_nanos() as _ },
    };
    // SAFETY: `spec` is a valid itimerspec on the stack; the old value is not asked for (null).
    let rc = unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Wait for the armed timer's expiry and consume it.
#[cfg(target_os = "linux")]
async fn expire(fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    loop {
        let mut guard = fd.readable().await?;
        let mut expirations: u64 = 0;
        // SAFETY: reads 8 bytes into a u64 on the stack, the size a timerfd read requires.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&mut expirations as *mut u64).cast(), 8) };
        if n == 8 {
            // Consumed: the fd is not readable until the next expiry, so the next wait does
            // not start with a read that can only say EAGAIN.
            guard.clear_ready();
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::WouldBlock {
            guard.clear_ready();
            continue;
        }
        return Err(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_the_deadline_and_not_before() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut p = Pacer::new();
            for gap_us in [300u64, 1_500, 5_000] {
                let deadline = Instant::now() + Duration::from_micros(gap_us);
                p.wait_until(deadline).await;
                assert!(Instant::now() >= deadline, "woke before a {gap_us} µs deadline");
            }
            // A deadline already past returns at once.
            p.wait_until(Instant::now() - Duration::from_millis(1)).await;
        });
    }
}
