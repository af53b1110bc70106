//! CPU time and memory of the harness and of the servers it started, read from /proc.

use crate::results::{OthersCpu, Resources};
use std::time::Instant;

/// Clock ticks per second for /proc's CPU fields.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Fields 14-17 of /proc/<pid>/stat: utime, stime, cutime, cstime, in ticks.
fn stat_times(pid: u32) -> Option<[u64; 4]> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it follow the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    Some([f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?, f.get(13)?.parse().ok()?, f.get(14)?.parse().ok()?])
}

fn children(pid: u32) -> Vec<u32> {
    // /proc/<pid>/task/<tid>/children lists the children of each thread.
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// CPU seconds of a process tree: the process itself, its reaped children (cutime/cstime:
/// Postgres backends that have exited) and its live children.
fn tree_cpu_s(pid: u32) -> Option<f64> {
    let t = stat_times(pid)?;
    let mut ticks = t.iter().sum::<u64>();
    for c in children(pid) {
        if let Some(ct) = stat_times(c) {
            ticks += ct[0] + ct[1];
        }
    }
    Some(ticks as f64 / ticks_per_sec())
}

/// CPU seconds a process (and its children) has used so far: a server the harness started
/// outside its own process (a Go original's).
pub fn process_cpu_s(pid: u32) -> Option<f64> {
    tree_cpu_s(pid)
}

fn status_kb(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn tree_rss_bytes(pid: u32) -> Option<u64> {
    let mut kb = status_kb(&pid.to_string(), "VmRSS:")?;
    for c in children(pid) {
        kb += status_kb(&c.to_string(), "VmRSS:").unwrap_or(0);
    }
    Some(kb * 1024)
}

/// Every descendant of `pid` (children, their children, …).
fn descendants(pid: u32, out: &mut Vec<u32>) {
    for c in children(pid) {
        if !out.contains(&c) {
            out.push(c);
            descendants(c, out);
        }
    }
}

/// The whole machine's CPU from /proc/stat's first line, in clock ticks: busy (user, nice,
/// system; interrupts are nobody's) and steal (taken by the hypervisor for other guests).
fn machine_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> =
        s.lines().next()?.strip_prefix("cpu ")?.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    Some((f.first()? + f.get(1)? + f.get(2)?, *f.get(7)?))
}

/// Clock ticks of this run's own processes: the harness with everything it started (worker
/// processes, reference tools) and the servers with their backends, each with the children
/// it has reaped.
fn own_ticks(roots: &[u32]) -> u64 {
    let mut pids = Vec::new();
    for &r in roots {
        if !pids.contains(&r) {
            pids.push(r);
            descendants(r, &mut pids);
        }
    }
    // Children before their parents: one reaped between the two reads is then counted twice
    // (alive, then in its parent's cutime), never lost, so a short-lived backend can make
    // the neighbours' share read low, never high.
    pids.iter().rev().filter_map(|&p| stat_times(p)).map(|t| t.iter().sum::<u64>()).sum()
}

/// Takes resource snapshots around a measured window.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    pub postgres_pid: Option<u32>,
    pub redis_pid: Option<u32>,
    /// Other server processes this run started (Redis Cluster nodes): not in the resources,
    /// but theirs is not other processes' CPU.
    pub other_pids: Vec<u32>,
    /// Some server this run uses is not a process it can see (docker, an external URL): its
    /// CPU would read as other processes', so they are not measured.
    pub blind: bool,
}

/// Readings at the start of a window.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    harness_cpu_s: f64,
    postgres_cpu_s: Option<f64>,
    redis_cpu_s: Option<f64>,
    hwm_reset: bool,
    /// The machine's busy and steal ticks, and this run's own.
    machine: Option<(u64, u64, u64)>,
}

impl Probe {
    pub fn begin(&self) -> Snapshot {
        // Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak is this window's.
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Snapshot {
            at: Instant::now(),
            harness_cpu_s: self_cpu_s(),
            postgres_cpu_s: self.postgres_pid.and_then(tree_cpu_s),
            redis_cpu_s: self.redis_pid.and_then(tree_cpu_s),
            hwm_reset,
            machine: self.machine(),
        }
    }

    fn roots(&self) -> Vec<u32> {
        let mut roots = vec![std::process::id()];
        roots.extend(self.postgres_pid.iter().chain(&self.redis_pid).chain(&self.other_pids));
        roots
    }

    fn machine(&self) -> Option<(u64, u64, u64)> {
        if self.blind {
            return None;
        }
        let (busy, steal) = machine_ticks()?;
        Some((busy, steal, own_ticks(&self.roots())))
    }

    pub fn end(&self, start: &Snapshot) -> Resources {
        let diff = |now: Option<f64>, then: Option<f64>| match (now, then) {
            (Some(a), Some(b)) => Some((a - b).max(0.0)),
            _ => None,
        };
        Resources {
            harness_cpu_s: (self_cpu_s() - start.harness_cpu_s).max(0.0),
            harness_peak_rss_bytes: if start.hwm_reset {
                status_kb("self", "VmHWM:").map(|kb| kb * 1024)
            } else {
                None
            },
            postgres_cpu_s: diff(self.postgres_pid.and_then(tree_cpu_s), start.postgres_cpu_s),
            redis_cpu_s: diff(self.redis_pid.and_then(tree_cpu_s), start.redis_cpu_s),
            postgres_rss_bytes: self.postgres_pid.and_then(tree_rss_bytes),
            redis_rss_bytes: self.redis_pid.and_then(tree_rss_bytes),
            wall_s: start.at.elapsed().as_secs_f64(),
            others: match (start.machine, self.machine()) {
                (Some((b0, s0, o0)), Some((b1, s1, o1))) => {
                    let ticks = ticks_per_sec();
                    let others = b1.saturating_sub(b0) as f64 - o1.saturating_sub(o0) as f64;
                    Some(OthersCpu { cpu_s: others.max(0.0) / ticks, steal_s: s1.saturating_sub(s0) as f64 / ticks })
                }
                _ => None,
            },
        }
    }
}

/// CPU time of this process (all threads, not children: tools the harness runs, such as
/// pgbench, are accounted separately), to the microsecond: /proc's clock ticks (10 ms) are
/// too coarse for a short window of a mostly idle process.
fn self_cpu_s() -> f64 {
    // SAFETY: getrusage only fills the struct it is given; RUSAGE_SELF has no precondition.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// CPU seconds (user + system) of this process's waited-for children.
fn children_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage struct.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Run a reference tool (pgbench, redis-benchmark, wrk) to completion inside a resource window:
/// the servers' CPU as for any sample, and the tool's own CPU as the client's (harness) CPU.
/// Blocking: call it from `spawn_blocking`.
pub fn run_tool(probe: &Probe, mut cmd: std::process::Command) -> (std::io::Result<std::process::Output>, Resources) {
    let snap = probe.begin();
    let before = children_cpu_s();
    let out = cmd.output();
    let mut resources = probe.end(&snap);
    resources.harness_cpu_s = children_cpu_s() - before;
    (out, resources)
}

/// Resident memory of this process now, in bytes (/proc/self/statm).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

/// Give the allocator's free memory back to the system, so that the next reading of
/// `rss_bytes` counts what is in use rather than what an earlier sample freed.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_busy_work_is_seen() {
        let probe = Probe::default();
        let s = probe.begin();
        spin_cpu(0.2);
        let r = probe.end(&s);
        // The process used at least this thread's CPU time; the wall clock, at least one
        // thread's CPU time.
        assert!(r.harness_cpu_s > 0.19, "{r:?}");
        assert!(r.wall_s >= 0.2, "{r:?}");
    }

    /// Busy work until this thread has used `secs` more CPU time (not wall time: a loaded
    /// machine gives a spinning thread less than a core; not the process's: tests run in
    /// parallel threads), at most 20 s.
    fn spin_cpu(secs: f64) {
        let thread_cpu_s = || {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: clock_gettime only writes the timespec it is given.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
        };
        let (start, t) = (thread_cpu_s(), Instant::now());
        let mut x = 0u64;
        while thread_cpu_s() - start < secs && t.elapsed().as_secs() < 20 {
            for _ in 0..10_000 {
                x = x.wrapping_mul(31).wrapping_add(7);
                std::hint::black_box(x);
            }
        }
    }

    /// Below /proc's 10 ms clock tick: a few milliseconds of work must not read as zero.
    #[test]
    fn cpu_time_is_finer_than_a_clock_tick() {
        // Work until the process's CPU time moves (a loaded machine may not schedule this
        // thread at once), then check it moved by less than a 10 ms clock tick: a clock-tick
        // counter would only ever move by whole ticks.
        let a = self_cpu_s();
        let t = Instant::now();
        let mut x = 0u64;
        let mut used = 0.0;
        while used == 0.0 && t.elapsed().as_secs() < 2 {
            for _ in 0..1000 {
                x = x.wrapping_mul(31).wrapping_add(7);
                std::hint::black_box(x);
            }
            used = self_cpu_s() - a;
        }
        assert!(used > 0.0 && used < 0.009, "CPU time moved by {used} s");
    }

    /// A busy process that is not the run's (detached: its parent shell has exited, so it is
    /// no descendant) reads as other processes' CPU; the harness's own busy work does not.
    #[test]
    fn a_busy_neighbour_is_seen_and_the_harness_is_not_one() {
        let probe = Probe::default();
        let s = probe.begin();
        spin_cpu(0.3);
        let own = probe.end(&s);
        assert!(own.harness_cpu_s > 0.2, "{own:?}");
        let detached = std::process::Command::new("sh")
            .args(["-c", "timeout 3 sh -c 'while :; do :; done' >/dev/null 2>&1 &"])
            .status()
            .unwrap();
        assert!(detached.success());
        std::thread::sleep(std::time::Duration::from_millis(100));
        let s = probe.begin();
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let r = probe.end(&s);
        let others = r.others.expect("measured");
        // The neighbour spins for the whole second: on a shared machine it gets at least a
        // third of a core, whatever else runs.
        assert!(others.cores(r.wall_s) > 0.33, "{r:?}");
        // No blind probe reads it.
        let blind = Probe { blind: true, ..Probe::default() };
        let s = blind.begin();
        assert!(blind.end(&s).others.is_none());
    }

    #[test]
    fn peak_rss_sees_a_large_allocation() {
        let probe = Probe::default();
        let s = probe.begin();
        let v = vec![1u8; 64 << 20];
        std::hint::black_box(&v);
        let r = probe.end(&s);
        if let Some(peak) = r.harness_peak_rss_bytes {
            assert!(peak >= 64 << 20, "{r:?}");
        }
    }
}
