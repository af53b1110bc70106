//! Ephemeral local servers: Postgres (from a cached initdb template) and Redis from the
//! machine's binaries, on free loopback ports, in one temporary directory per run, durability
//! off, run as an unprivileged user when we are root.

use super::*;

// ---------------------------------------------------------------------------------------------
// Local ephemeral servers

pub(super) struct ServerProc {
    pub(super) name: &'static str,
    pub(super) child: Child,
}

pub(super) struct LocalServers {
    pub(super) dir: PathBuf,
    pub(super) procs: Vec<ServerProc>,
}

impl LocalServers {
    pub(super) fn stop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            stop_process(&mut p.child, p.name);
            crate::reaper::unregister(&crate::reaper::Registered::Pid(p.child.id()));
        }
        self.procs.clear();
        super::cpucap::sweep_own_empty();
        let _ = std::fs::remove_dir_all(&self.dir);
        crate::reaper::unregister(&crate::reaper::Registered::Dir(self.dir.clone()));
    }
}

impl Drop for LocalServers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ask a server to stop (Postgres: fast shutdown; Redis: SIGTERM), then kill its whole
/// process group if it has not gone within 5 s.
pub(super) fn stop_process(child: &mut Child, name: &str) {
    let pid = child.id() as libc::pid_t;
    let sig = if name == "postgres" { libc::SIGINT } else { libc::SIGTERM };
    // SAFETY: plain syscalls on a pid we started and have not reaped yet.
    unsafe {
        libc::kill(pid, sig);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: as above; the negative pid addresses the server's process group.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGKILL);
                }
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    // Backends left orphaned by a killed postmaster share its process group.
    // SAFETY: signalling a process group we created; ESRCH when it is already empty.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

pub(super) fn make_run_dir() -> std::io::Result<PathBuf> {
    let dir = crate::reaper::new_temp_dir("perflab-")?;
    set_mode(&dir, 0o755)?;
    Ok(dir)
}

pub(super) fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Where to find the Postgres server binaries: `PERFLAB_PG_BIN`, then the directory of an
/// `initdb` on PATH (symlinks resolved), then the newest `/usr/lib/postgresql/*/bin`.
pub fn find_pg_bin() -> Option<PathBuf> {
    let ok = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("PERFLAB_PG_BIN").map(PathBuf::from) {
        return ok(&d).then_some(d);
    }
    if let Some(initdb) = which("initdb") {
        if let Some(dir) = std::fs::canonicalize(&initdb).ok().and_then(|p| p.parent().map(Path::to_owned)) {
            if ok(&dir) {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            ok(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

/// The first `name` on PATH (Postgres tools outside PATH: `find_pg_bin`).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

pub(super) fn local_binaries_missing(want_pg: bool, want_redis: bool, want_cluster: bool) -> Result<(), String> {
    let mut missing = Vec::new();
    if want_pg && find_pg_bin().is_none() {
        missing.push("PostgreSQL server binaries (initdb, postgres) not found: install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; macOS: brew install postgresql), set PERFLAB_PG_BIN, pass --pg-url, or build with --features docker and use --provider docker");
    }
    if want_redis && which("redis-server").is_none() {
        missing.push("redis-server not found: install it (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install redis; macOS: brew install redis), pass --redis-url, or build with --features docker and use --provider docker");
    }
    if want_cluster && (which("redis-server").is_none() || which("redis-cli").is_none()) {
        missing.push("a Redis Cluster needs redis-server and redis-cli: install them (Debian/Ubuntu: apt-get install redis-server redis-tools; Fedora: dnf install redis; macOS: brew install redis), or pass --redis-cluster-url");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}

pub(super) fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}

/// The unprivileged account to run Postgres as when we are root.
pub(super) struct RunAs {
    uid: u32,
    gid: u32,
}

pub(super) fn unprivileged_user() -> Result<Option<RunAs>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        let cname = std::ffi::CString::new(name).expect("no NUL");
        // SAFETY: getpwnam returns a pointer to static storage or null; we copy out at once.
        let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
        if !pw.is_null() {
            // SAFETY: non-null result of getpwnam.
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Ok(Some(RunAs { uid, gid }));
        }
    }
    Err("running as root, and neither a `postgres` nor a `nobody` account exists to run Postgres as".into())
}

pub(super) fn chown_recursive(path: &Path, who: &RunAs) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(who.uid), Some(who.gid))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path)? {
            chown_recursive(&entry?.path(), who)?;
        }
    }
    Ok(())
}

/// Configure a server command: its own process group (a terminal's Ctrl-C reaches only the
/// harness, which then stops the server in order), the unprivileged user, and death with the
/// harness as a last resort.
pub(super) fn server_command(program: &Path, run_as: Option<&RunAs>, log: &Path) -> std::io::Result<Command> {
    let log_file = std::fs::File::create(log)?;
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file).process_group(0);
    // The unprivileged user may not be able to enter the caller's working directory.
    if let Some(dir) = log.parent() {
        cmd.current_dir(dir);
    }
    if let Some(who) = run_as {
        cmd.uid(who.uid).gid(who.gid);
    }
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Ok(cmd)
}

pub(super) fn tail(path: &Path, lines: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join(" | ")
}

pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PERFLAB_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("perflab");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache/perflab");
    }
    std::env::temp_dir().join("perflab-cache")
}

pub(super) fn command_output(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A data directory made by `initdb` once per Postgres version and user, copied for every
/// start: `initdb` takes seconds, a copy a fraction of one.
pub(super) fn pg_template(
    bin: &Path,
    version: &str,
    run_as: Option<&RunAs>,
    scratch: &Path,
) -> Result<PathBuf, String> {
    let owner = run_as.map(|r| r.uid).unwrap_or_else(|| {
        // SAFETY: getuid has no preconditions.
        unsafe { libc::getuid() }
    });
    let slug: String = version.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
    let cache = cache_dir();
    let template = cache.join(format!("pg-template-{slug}-uid{owner}"));
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    std::fs::create_dir_all(&cache).map_err(|e| format!("cannot create cache directory {}: {e}", cache.display()))?;
    // initdb runs as the unprivileged user, which may not reach the cache (root's home), so it
    // writes into the run's scratch directory, and the result is copied into the cache.
    let fresh = scratch.join("initdb");
    std::fs::create_dir_all(&fresh).map_err(|e| e.to_string())?;
    if let Some(who) = run_as {
        chown_recursive(&fresh, who).map_err(|e| format!("chown {}: {e}", fresh.display()))?;
    }
    let log = scratch.join("initdb.log");
    let status = server_command(&bin.join("initdb"), run_as, &log)
        .and_then(|mut c| {
            c.args(["-D"])
                .arg(&fresh)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
                .status()
        })
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !status.success() {
        return Err(format!("initdb failed: {}", tail(&log, 5)));
    }
    // One staging directory per call, not per process: two servers starting at once in one
    // process (tests run in threads) would otherwise copy into the same directory.
    static CALL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = cache.join(crate::reaper::staging_name(&format!(".pg-template-{slug}-uid{owner}"), call));
    let _ = std::fs::remove_dir_all(&staging);
    // Tracked while it exists, so that Ctrl-C removes it; a SIGKILL leaves it to the next
    // run's sweep on this host (reaper::sweep_leftovers reads the host and pid in its name).
    crate::reaper::track_dir(&staging);
    let copied = copy_tree(&fresh, &staging);
    let _ = std::fs::remove_dir_all(&fresh);
    // Another run may have finished first; either copy is as good. Whatever is left of the
    // staging directory (nothing after the rename) goes, and it is no longer tracked.
    if copied.is_ok() {
        let _ = std::fs::rename(&staging, &template);
    }
    crate::reaper::remove_tracked_dir(&staging);
    copied?;
    Ok(template)
}

/// `cp -a`: keeps owners and modes (Postgres insists its data directory is 0700 and its own).
pub(super) fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let out = Command::new("cp").arg("-a").arg(from).arg(to).output().map_err(|e| format!("cannot run cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("cp -a {} {}: {}", from.display(), to.display(), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

pub(super) enum Ready<T> {
    Up(T),
    /// The server exited (a port taken since we probed it, say): the reason, from its log.
    Exited(String),
}

/// Poll `ready` every 10 ms until it answers, the server started last exits, or
/// `START_TIMEOUT` passes (an error naming the log's last lines).
pub(super) async fn wait_ready<T, Fut: std::future::Future<Output = Option<T>>>(
    local: &mut LocalServers,
    log: &Path,
    mut ready: impl FnMut() -> Fut,
) -> Result<Ready<T>, String> {
    let started = Instant::now();
    loop {
        if let Some(v) = ready().await {
            return Ok(Ready::Up(v));
        }
        let proc = local.procs.last_mut().expect("a server was just started");
        if let Ok(Some(status)) = proc.child.try_wait() {
            crate::reaper::unregister(&crate::reaper::Registered::Pid(proc.child.id()));
            local.procs.pop();
            return Ok(Ready::Exited(format!("exited with {status}: {}", tail(log, 5))));
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!("not ready after {}s: {}", START_TIMEOUT.as_secs(), tail(log, 5)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Who may connect to an ephemeral Postgres: over its Unix socket (in the run's directory,
/// mode 0700: the server's user and root only) without a password, over TCP only with the
/// run's password.
const PG_HBA: &str = "# perflab: only this run connects (its password over TCP; the socket is private)\n\
local all all trust\n\
host all all 127.0.0.1/32 scram-sha-256\n\
host all all ::1/128 scram-sha-256\n";

pub(super) async fn start_postgres(local: &mut LocalServers) -> Result<(PgTarget, ServerInfo), ProvisionError> {
    let fail = |reason: String| ProvisionError::StartFailed { server: "postgres", reason };
    let bin = find_pg_bin().ok_or_else(|| fail("binaries vanished".into()))?;
    let version_line = command_output(&bin.join("postgres"), &["--version"]).unwrap_or_else(|| "unknown".into());
    let version = version_line.rsplit(' ').next().unwrap_or("unknown").to_owned();
    let run_as = unprivileged_user().map_err(fail)?;
    let template = pg_template(&bin, &version, run_as.as_ref(), &local.dir).map_err(fail)?;
    let data = local.dir.join("pgdata");
    copy_tree(&template, &data).map_err(fail)?;
    // Only this run may connect: over TCP with the run's password (scram-sha-256), set over
    // the Unix socket, which lives in a directory only the server's user (and root) can enter.
    let password = super::new_password().map_err(fail)?;
    std::fs::write(data.join("pg_hba.conf"), PG_HBA).map_err(|e| fail(format!("writing pg_hba.conf: {e}")))?;
    let sock = local.dir.join("pgsock");
    std::fs::create_dir_all(&sock).map_err(|e| fail(e.to_string()))?;
    if let Some(who) = &run_as {
        chown_recursive(&data, who).and_then(|_| chown_recursive(&sock, who)).map_err(|e| fail(e.to_string()))?;
    }
    set_mode(&data, 0o700).and_then(|_| set_mode(&sock, 0o700)).map_err(|e| fail(e.to_string()))?;
    let log = local.dir.join("postgres.log");
    let stat_statements = bin.parent().map(|p| p.join("lib/pg_stat_statements.so").is_file()).unwrap_or(false);
    // A free port can be taken between our probe and the server's bind: try a few.
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let port = free_port().map_err(|e| fail(e.to_string()))?;
        let mut cmd = server_command(&bin.join("postgres"), run_as.as_ref(), &log).map_err(|e| fail(e.to_string()))?;
        cmd.arg("-D").arg(&data).arg("-p").arg(port.to_string()).arg("-k").arg(&sock);
        for (k, v) in PG_SETTINGS {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        // Planning statistics for the experiments that need them, where contrib is installed.
        if stat_statements {
            cmd.args([
                "-c",
                "shared_preload_libraries=pg_stat_statements",
                "-c",
                "pg_stat_statements.track_planning=on",
            ]);
        }
        let child = cmd.spawn().map_err(|e| fail(format!("cannot run {}: {e}", bin.join("postgres").display())))?;
        let pid = child.id();
        crate::reaper::register(crate::reaper::Registered::Pid(pid));
        local.procs.push(ServerProc { name: "postgres", child });
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user("postgres")
            .password(password.as_str())
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(2));
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let target = PgTarget {
            config,
            secret_url: Secret(format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres")),
            url: url.clone(),
            pid: Some(pid),
            host: "127.0.0.1".into(),
            port,
            user: "postgres".into(),
            dbname: "postgres".into(),
            schema: None,
        };
        // Ready once the socket answers; then the password is set there, and the server is
        // reached over TCP with it.
        let mut over_socket = tokio_postgres::Config::new();
        over_socket
            .host_path(&sock)
            .port(port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(2));
        let probe = || async {
            let (client, connection) = over_socket.connect(tokio_postgres::NoTls).await.ok()?;
            tokio::spawn(connection);
            client.batch_execute(&format!("ALTER ROLE postgres PASSWORD '{password}'")).await.ok()?;
            let client = target.connect().await.ok()?;
            pg_info(&client, &url).await.ok()
        };
        match wait_ready(local, &log, probe).await.map_err(fail)? {
            Ready::Up(mut info) => {
                info.settings.insert("provider".into(), "local ephemeral".into());
                if stat_statements {
                    info.settings.insert("shared_preload_libraries".into(), "pg_stat_statements".into());
                }
                return Ok((target, info));
            }
            Ready::Exited(why) => last_err = why,
        }
    }
    Err(fail(last_err))
}

/// A config file (mode 0600, in the server's directory) that makes every client give the
/// run's password (`requirepass`; for a cluster node also `masterauth`, so replicas can sync):
/// on the command line it would show in the process list until Redis rewrites its title.
pub(super) fn redis_auth_conf(dir: &Path, password: &str, cluster: bool) -> Result<PathBuf, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("auth.conf");
    let mut text = format!("requirepass {password}\n");
    if cluster {
        text.push_str(&format!("masterauth {password}\n"));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

pub(super) async fn start_redis(local: &mut LocalServers) -> Result<(RedisTarget, ServerInfo), ProvisionError> {
    let fail = |reason: String| ProvisionError::StartFailed { server: "redis", reason };
    let program = which("redis-server").ok_or_else(|| fail("redis-server vanished".into()))?;
    let dir = local.dir.join("redis");
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let log = local.dir.join("redis.log");
    let password = super::new_password().map_err(fail)?;
    let conf = redis_auth_conf(&dir, &password, false).map_err(fail)?;
    let mut last_err = String::new();
    for _attempt in 0..3 {
        let port = free_port().map_err(|e| fail(e.to_string()))?;
        let mut cmd = server_command(&program, None, &log).map_err(|e| fail(e.to_string()))?;
        cmd.arg(&conf)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--protected-mode", "yes", "--dir"])
            .arg(&dir);
        let child = cmd.spawn().map_err(|e| fail(format!("cannot run {}: {e}", program.display())))?;
        let pid = child.id();
        crate::reaper::register(crate::reaper::Registered::Pid(pid));
        local.procs.push(ServerProc { name: "redis", child });
        let target = RedisTarget {
            url: format!("redis://:{password}@127.0.0.1:{port}"),
            redacted: format!("redis://127.0.0.1:{port}"),
            pid: Some(pid),
            host: "127.0.0.1".into(),
            port,
        };
        match wait_ready(local, &log, || async { redis_info(&target).await.ok() }).await.map_err(fail)? {
            Ready::Up(mut info) => {
                info.settings.insert("provider".into(), "local ephemeral".into());
                return Ok((target, info));
            }
            Ready::Exited(why) => last_err = why,
        }
    }
    Err(fail(last_err))
}
