//! A CPU cap for servers the harness started: each process gets a control group of its own
//! whose CPU quota is a share of one core, so that on a shared machine every node of a
//! cluster has the same capacity and a node that is not asked for work frees nothing for the
//! others (without caps, a replica's idle CPU is simply the client's).
//!
//! cgroup v2 (`cpu.max`) where the unified hierarchy offers the cpu controller, else cgroup v1
//! (`cpu.cfs_quota_us` under `/sys/fs/cgroup/cpu`). The groups are named
//! `perflab-cap-<pid>-<n>` after the harness process; dropping the caps moves each process
//! back where it was and removes the groups, and a later run removes what a dead one left.

use std::path::{Path, PathBuf};

/// The scheduler period the quota is a share of: 10 ms, so that a capped process waits at most
/// 9 ms for its next share at a tenth of a core (the default 100 ms would stall it 90 ms at a
/// time, a tail no slower CPU has). The kernel refuses a quota under 1 ms.
const PERIOD_US: u64 = 10_000;
const PREFIX: &str = "perflab-cap-";

/// Held while this process creates and fills a set of groups and while it sweeps, so that a
/// sweep (servers stopping on another thread) never finds a group between its creation and
/// its first process, empty and seemingly done with.
static GROUPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn groups_lock() -> std::sync::MutexGuard<'static, ()> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which hierarchy holds the cpu controller, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hierarchy {
    V2(PathBuf),
    V1(PathBuf),
}

impl Hierarchy {
    fn find() -> Result<Self, String> {
        let unified = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(unified.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "cpu") {
            return Ok(Self::V2(unified.to_path_buf()));
        }
        let v1 = unified.join("cpu");
        if v1.join("cpu.cfs_quota_us").exists() {
            return Ok(Self::V1(v1));
        }
        Err("this machine offers no cgroup cpu controller (neither cgroup v2's cpu.max nor v1's cpu.cfs_quota_us)"
            .into())
    }

    fn base(&self) -> &Path {
        match self {
            Self::V2(p) | Self::V1(p) => p,
        }
    }

    /// Write `cores` of a core as the quota of group `dir`.
    fn set_quota(&self, dir: &Path, cores: f64) -> std::io::Result<()> {
        // Under a tenth of a core the period grows instead of the quota shrinking below 1 ms.
        let quota = ((cores * PERIOD_US as f64).round() as u64).max(1_000);
        let period = ((quota as f64 / cores).round() as u64).clamp(PERIOD_US, 1_000_000);
        match self {
            Self::V2(_) => std::fs::write(dir.join("cpu.max"), format!("{quota} {period}")),
            Self::V1(_) => {
                std::fs::write(dir.join("cpu.cfs_period_us"), period.to_string())?;
                std::fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())
            }
        }
    }

    /// The group process `pid` is in now (to put it back there), from `/proc/<pid>/cgroup`.
    fn group_of(&self, pid: u32) -> PathBuf {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let rel = text.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let ours = match self {
                Self::V2(_) => id == "0" && controllers.is_empty(),
                Self::V1(_) => controllers.split(',').any(|c| c == "cpu"),
            };
            ours.then(|| path.trim_start_matches('/').to_owned())
        });
        self.base().join(rel.unwrap_or_default())
    }
}

/// Move every process of group `from` to group `to` (best effort: one that exited is gone).
fn move_all(from: &Path, to: &Path) {
    for pid in std::fs::read_to_string(from.join("cgroup.procs")).unwrap_or_default().lines() {
        let _ = std::fs::write(to.join("cgroup.procs"), pid.trim());
    }
}

/// Remove the CPU caps of harness processes that are gone (killed, or a run that failed
/// before it released them): their processes, if any still run, go back to the hierarchy's
/// root. Returns the groups removed. A run's session calls it at the start, beside the
/// reaper's sweep of temporary directories.
pub fn sweep_dead() -> Vec<PathBuf> {
    let _held = groups_lock();
    Hierarchy::find().map(|h| sweep(&h)).unwrap_or_default()
}

fn sweep(h: &Hierarchy) -> Vec<PathBuf> {
    groups(h, |owner| !crate::reaper::is_alive(owner))
        .into_iter()
        .filter(|g| {
            remove_group(g, h.base());
            !g.exists()
        })
        .collect()
}

/// This process's own groups whose processes are all gone (the servers they capped have
/// stopped): removed when the servers stop, and on Ctrl-C after they are killed, so a run that
/// failed before its experiment released its caps leaves none. Groups that still hold a
/// process are left to their `CpuCaps`.
pub fn sweep_own_empty() {
    let _held = groups_lock();
    let Ok(h) = Hierarchy::find() else { return };
    for g in groups(&h, |owner| owner == std::process::id()) {
        let children: Vec<PathBuf> = std::fs::read_dir(&g)
            .map(|d| d.flatten().map(|c| c.path()).filter(|c| c.is_dir()).collect())
            .unwrap_or_default();
        let empty = |dir: &Path| std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty());
        if children.iter().all(|c| empty(c)) && empty(&g) {
            remove_group(&g, h.base());
        }
    }
}

/// The caps' parent groups whose owner (the harness process in the name) passes `select`.
fn groups(h: &Hierarchy, select: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(h.base()) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()?.parse::<u32>().ok()).is_some_and(&select)
        })
        .map(|e| e.path())
        .collect()
}

/// Empty group `dir` and its children into `home`, then remove them.
fn remove_group(dir: &Path, home: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for c in children.flatten().filter(|c| c.path().is_dir()) {
            remove_group(&c.path(), home);
        }
    }
    move_all(dir, home);
    let _ = std::fs::remove_dir(dir);
}

/// How often a cap held its process back: scheduler periods, and those in which the process
/// used up its quota and waited (`nr_periods`, `nr_throttled` of `cpu.stat`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Throttling {
    pub periods: u64,
    pub throttled: u64,
}

impl Throttling {
    /// The share of the periods between `before` and `self` in which the process was held
    /// back (0 when no period ran: the process was idle).
    pub fn share_since(&self, before: &Throttling) -> f64 {
        let periods = self.periods.saturating_sub(before.periods);
        if periods == 0 {
            0.0
        } else {
            self.throttled.saturating_sub(before.throttled) as f64 / periods as f64
        }
    }
}

/// Processes under a CPU cap each, until dropped.
#[derive(Debug)]
pub struct CpuCaps {
    hierarchy: Hierarchy,
    /// The parent group of this set of caps.
    parent: PathBuf,
    /// Per process: its pid and the group it came from.
    homes: Vec<(u32, PathBuf)>,
    /// The share of a core each process may use.
    pub cores: f64,
}

impl CpuCaps {
    /// Give each of `pids` a group of its own capped at `cores` of one core. Fails, with a
    /// sentence saying why, where the machine has no cgroup cpu controller or this process
    /// may not create groups (not root, a read-only /sys/fs/cgroup); nothing is left behind.
    pub fn each(pids: &[u32], cores: f64) -> Result<Self, String> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        if !(cores > 0.0 && cores.is_finite()) {
            return Err(format!("a CPU cap of {cores} cores is not a share of a core"));
        }
        let hierarchy = Hierarchy::find()?;
        let _held = groups_lock();
        sweep(&hierarchy);
        let name = format!("{PREFIX}{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let parent = hierarchy.base().join(name);
        std::fs::create_dir(&parent).map_err(|e| format!("cannot create cgroup {}: {e}", parent.display()))?;
        let mut caps = Self { hierarchy, parent, homes: Vec::new(), cores };
        if let Hierarchy::V2(base) = &caps.hierarchy {
            // The controller must be handed down to the parent's children.
            let _ = std::fs::write(base.join("cgroup.subtree_control"), "+cpu");
            std::fs::write(caps.parent.join("cgroup.subtree_control"), "+cpu")
                .map_err(|e| format!("cannot enable the cpu controller under {}: {e}", caps.parent.display()))?;
        }
        for &pid in pids {
            let home = caps.hierarchy.group_of(pid);
            let dir = caps.parent.join(format!("p{pid}"));
            std::fs::create_dir(&dir)
                .and_then(|()| caps.hierarchy.set_quota(&dir, cores))
                .map_err(|e| format!("cannot set a CPU quota in {}: {e}", dir.display()))?;
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                .map_err(|e| format!("cannot move process {pid} under its CPU cap: {e}"))?;
            caps.homes.push((pid, home));
        }
        Ok(caps)
    }

    /// Each capped process's throttling so far, in the order the pids were given.
    pub fn throttling(&self) -> Vec<Throttling> {
        self.homes
            .iter()
            .map(|(pid, _)| {
                let stat =
                    std::fs::read_to_string(self.parent.join(format!("p{pid}")).join("cpu.stat")).unwrap_or_default();
                let field = |name: &str| {
                    stat.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok()).unwrap_or(0)
                };
                Throttling { periods: field("nr_periods "), throttled: field("nr_throttled ") }
            })
            .collect()
    }
}

impl Drop for CpuCaps {
    fn drop(&mut self) {
        // Whatever is still in a process's group goes back where that process came from (by
        // group, not by pid: a pid that exited may have been reused by then).
        for (pid, home) in &self.homes {
            move_all(&self.parent.join(format!("p{pid}")), home);
        }
        remove_group(&self.parent, self.hierarchy.base());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Whether this machine can cap at all: a cpu controller, and a group with a quota can be
    /// made there (root, a writable hierarchy, the controller delegated).
    fn can_cap() -> bool {
        let Ok(h) = Hierarchy::find() else { return false };
        let probe = h.base().join(format!("{PREFIX}{}-probe", std::os::unix::process::parent_id()));
        let made = std::fs::create_dir(&probe).is_ok();
        let ok = made
            && match &h {
                Hierarchy::V2(_) => std::fs::write(probe.join("cgroup.subtree_control"), "+cpu").is_ok(),
                Hierarchy::V1(_) => h.set_quota(&probe, 0.5).is_ok(),
            };
        if made {
            let _ = std::fs::remove_dir(&probe);
        }
        ok
    }

    /// A busy loop, killed however the test ends.
    struct Spinner(std::process::Child);

    impl Drop for Spinner {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A process capped at a tenth of a core gets about a tenth of a core (a busy loop's CPU
    /// time over a wall-clock second and a half), the cap says it throttled, and the group
    /// goes away with the caps. Skipped, saying so, only where the machine cannot cap.
    #[test]
    fn a_capped_process_gets_its_share_and_the_group_goes_away() {
        if !can_cap() {
            return eprintln!("skipping: no cgroup cpu controller, or not root");
        }
        let spinner = Spinner(std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap());
        let pid = spinner.0.id();
        let cpu_s = |pid: u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let f: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
            // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command's ')'.
            (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
        };
        let caps = CpuCaps::each(&[pid], 0.1).unwrap();
        let before = caps.throttling()[0];
        let (t0, c0) = (Instant::now(), cpu_s(pid));
        std::thread::sleep(Duration::from_millis(1500));
        let share = (cpu_s(pid) - c0) / t0.elapsed().as_secs_f64();
        assert!(share < 0.2, "a process capped at 0.1 core used {share:.2} of a core");
        let throttled = caps.throttling()[0].share_since(&before);
        assert!(throttled > 0.5, "a busy loop capped at 0.1 core was held back in {throttled:.2} of the periods");
        let parent = caps.parent.clone();
        drop(caps);
        assert!(!parent.exists(), "{} was left behind", parent.display());
        let home = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(!home.contains(PREFIX), "the process stayed in a removed group: {home}");
    }

    #[test]
    fn throttling_is_a_share_of_the_periods_between_two_readings() {
        let (a, b) = (Throttling { periods: 100, throttled: 10 }, Throttling { periods: 300, throttled: 60 });
        assert_eq!(b.share_since(&a), 0.25);
        assert_eq!(a.share_since(&a), 0.0);
    }

    /// A group left by a harness that is gone is swept; a live one's is not.
    #[test]
    fn the_sweep_removes_the_groups_of_dead_harnesses_only() {
        if !can_cap() {
            return eprintln!("skipping: no cgroup cpu controller, or not root");
        }
        let h = Hierarchy::find().unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        let left = h.base().join(format!("{PREFIX}{dead}-0"));
        let live = h.base().join(format!("{PREFIX}{}-999999", std::os::unix::process::parent_id()));
        std::fs::create_dir(&left).unwrap();
        std::fs::create_dir_all(live.join("p1")).unwrap();
        let removed = sweep_dead();
        let kept = live.exists();
        remove_group(&live, h.base());
        // (Another test's caps may sweep it first: it must be gone, whoever removed it.)
        assert!(!left.exists(), "a dead harness's group was left: {removed:?}");
        assert!(kept, "a live harness's group was swept");
    }

    /// This process's groups go once their processes have stopped, not before.
    #[test]
    fn own_groups_go_when_their_processes_have_stopped() {
        if !can_cap() {
            return eprintln!("skipping: no cgroup cpu controller, or not root");
        }
        let spinner = Spinner(std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap());
        let caps = CpuCaps::each(&[spinner.0.id()], 0.5).unwrap();
        sweep_own_empty();
        assert!(caps.parent.exists(), "a group with a running process was swept");
        drop(spinner);
        sweep_own_empty();
        assert!(!caps.parent.exists(), "a group whose process stopped was left");
    }

    #[test]
    fn a_cap_that_is_no_share_of_a_core_is_refused() {
        for bad in [0.0, -1.0, f64::NAN] {
            assert!(CpuCaps::each(&[], bad).is_err());
        }
    }
}
