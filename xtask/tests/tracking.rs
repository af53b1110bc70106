//! Regression tracking through the command line, on runs whose numbers are known: compare's
//! verdicts and exit codes, baselines, exports, and history's change points.

mod scratch;
use harness::results::{RunResults, Sample};
use scratch::temp_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    // Tests run benches side by side, each the other's noisy neighbour: no round is left out
    // for it here (the runner's and the probe's own tests check that machinery).
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("PERFLAB_NOISE_LIMIT", "none")
        .output()
        .expect("xtask runs")
}

/// A run of the minimal experiment whose latency is `level` µs (±2 % over 6 repetitions),
/// saved as `<dir>/<id>/results.json`.
fn write_run(dir: &Path, id: &str, day: u32, level: f64) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../harness/tests/data/minimal_run.json");
    let mut r: RunResults = serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    r.run_id = id.into();
    r.context.started_at = format!("2026-11-{day:02}T02:00:00Z");
    r.context.git_revision = Some(format!("rev{day:02}"));
    let e = &mut r.experiments[0];
    for rep in 0..6 {
        let mut s = Sample { variant: "a".into(), point: "1".into(), repetition: rep, ..Sample::default() };
        s.metrics.insert("latency_p50_us".into(), level * (0.98 + 0.008 * f64::from(rep)));
        s.metrics.insert("ok".into(), 100.0);
        e.samples.push(s);
    }
    harness::analysis::analyse(e, harness::analysis::Claim::default());
    let path = dir.join(id).join("results.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    harness::results::save(&path, &r).unwrap();
    path
}

#[test]
fn compare_exits_3_on_a_regression_and_0_without_one() {
    let d = temp_dir();
    let old = write_run(&d.0, "old", 1, 100.0);
    let same = write_run(&d.0, "same", 2, 100.0);
    let slow = write_run(&d.0, "slow", 3, 160.0);
    let arg = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let o = xtask(&["compare", &arg(&old), &arg(&same)]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let o = xtask(&["compare", &arg(&old), &arg(&slow)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{text}");
    assert!(text.contains("REGRESSED") && text.contains("+60."), "{text}");
    let o = xtask(&["compare", &arg(&old), &arg(&slow), "--format", "markdown"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("| t | `a/1` | latency_p50_us"));
    let o = xtask(&["compare", &arg(&old), &arg(&slow), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"][0]["verdict"], "regressed");
    let page = d.0.join("compare.html");
    let o = xtask(&["compare", &arg(&old), &arg(&slow), "--html", page.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg") && html.contains("REGRESSED"), "the page charts old against new");
    // A threshold above the change: within noise, exit 0.
    let o = xtask(&["compare", &arg(&old), &arg(&slow), "--threshold-for", "t=80"]);
    assert_eq!(o.status.code(), Some(0));
    // Bad input: one line, exit 2.
    for bad in [vec!["compare", "no-such-run"], vec!["compare", &arg(&old), &arg(&slow), "--format", "xml"]] {
        let o = xtask(&bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1, "{bad:?}");
    }
}

#[test]
fn exports_are_written_beside_the_run() {
    let d = temp_dir();
    let run = write_run(&d.0, "r", 1, 100.0);
    let o = xtask(&["export", run.to_str().unwrap(), "--format", "bmf"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bmf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.0.join("r/bmf.json")).unwrap()).unwrap();
    assert!(bmf["t/a/1"]["latency"]["value"].as_f64().unwrap() > 90_000.0, "{bmf}");
    let o = xtask(&["export", run.to_str().unwrap(), "--format", "github-action-benchmark"]);
    assert!(o.status.success());
    for f in ["gab-smaller.json", "gab-bigger.json"] {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.0.join("r").join(f)).unwrap()).unwrap();
        assert!(v.is_array(), "{f}");
    }
}

#[test]
fn history_finds_the_step_in_a_series_of_runs() {
    let d = temp_dir();
    for day in 1..=16u32 {
        let level = if day <= 8 { 100.0 } else { 140.0 };
        // A little night-to-night wobble.
        write_run(&d.0, &format!("run{day:02}"), day, level * (1.0 + 0.01 * f64::from(day % 3)));
    }
    let o = xtask(&["history", d.0.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(d.0.join("history/index.html")).unwrap();
    assert!(page.contains("16 run(s)"), "every run is read");
    assert!(page.contains("rev08 (2026-11-08 02:00) → rev09 (2026-11-09 02:00)"), "the step is between runs 8 and 9");
    assert!(page.contains("<svg"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 change point(s)"));
}

#[test]
fn shards_merge_into_one_run_and_strangers_are_refused() {
    let d = temp_dir();
    let a = write_run(&d.0, "shard1", 1, 100.0);
    let b = write_run(&d.0, "shard2", 1, 100.0);
    // The second shard holds another experiment.
    let mut r = harness::results::read(&b).unwrap();
    r.experiments[0].id = "u".into();
    harness::results::save(&b, &r).unwrap();
    let out = d.0.join("merged");
    let o = xtask(&["merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = std::fs::read_dir(&out).unwrap().flatten().find(|e| e.path().join("results.json").is_file()).unwrap();
    let merged = harness::results::read(&run.path().join("results.json")).unwrap();
    let ids: Vec<&str> = merged.experiments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["t", "u"]);
    assert!(merged.complete);
    assert!(run.path().join("index.html").is_file());
    // A shard of another commit is not a shard of this run; the same experiment twice neither.
    let mut other = harness::results::read(&b).unwrap();
    other.context.git_revision = Some("elsewhere".into());
    harness::results::save(&b, &other).unwrap();
    let o = xtask(&["merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let o = xtask(&["merge", a.to_str().unwrap(), a.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("more than one part"));
}

/// A run longer than a sitting, measured in pieces at one commit: a shard interrupted after
/// some experiments (it keeps what it finished) and a `--filter`ed run of the rest join into
/// the whole catalogue, complete; parts that fall short of it join into a run that says so;
/// strangers are refused, parts from different machines only when asked.
#[test]
fn an_interrupted_shard_and_a_filtered_run_join_into_the_whole_catalogue() {
    let d = temp_dir();
    let list = xtask(&["list"]);
    let ids: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    assert!(ids.len() > 3 && ids.iter().all(|id| id.chars().all(|c| c.is_ascii_lowercase() || c == '-')), "{ids:?}");
    let (first, rest) = ids.split_at(ids.len() / 3);
    let part = |name: &str, holds: &[String], edit: &dyn Fn(&mut RunResults)| {
        let path = write_run(&d.0, name, 1, 100.0);
        let mut r = harness::results::read(&path).unwrap();
        let e = r.experiments[0].clone();
        r.experiments =
            holds.iter().map(|id| harness::results::ExperimentResult { id: id.clone(), ..e.clone() }).collect();
        edit(&mut r);
        harness::results::save(&path, &r).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let interrupted = part("interrupted", first, &|r| {
        r.complete = false;
        r.context.settings.shard = Some("1/3".into());
        r.context.settings.order_seed = 1;
        r.context.started_at = "2026-11-27T02:55:23Z".into();
        r.context.finished_at = Some("2026-11-27T04:40:00Z".into());
    });
    let rest_of_it = part("rest", rest, &|r| {
        r.context.settings.filter = Some(rest.join(","));
        r.context.settings.order_seed = 2;
        r.context.started_at = "2026-11-28T07:00:00Z".into();
        r.context.finished_at = Some("2026-11-28T08:00:00Z".into());
    });
    let merged = |args: &[&str], out: &str| {
        let out = d.0.join(out);
        let o = xtask(&[&["merge"], args, &["--out", out.to_str().unwrap()]].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let run = std::fs::read_dir(&out).unwrap().flatten().find(|e| e.path().join("results.json").is_file());
        harness::results::read(&run.unwrap().path().join("results.json")).unwrap()
    };
    // Given in any order, the parts come back in catalogue order, as one complete run.
    let whole = merged(&[&rest_of_it, &interrupted], "whole");
    let got: Vec<&str> = whole.experiments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(got, ids);
    assert!(whole.complete);
    // It began with its earliest part and ended with its latest, whichever was given first.
    assert_eq!(
        (whole.context.started_at.as_str(), whole.context.finished_at.as_deref()),
        ("2026-11-27T02:55:23Z", Some("2026-11-28T08:00:00Z"))
    );
    assert_eq!((whole.context.settings.shard.as_deref(), whole.context.settings.filter.as_deref()), (None, None));
    // Without the last experiment, the joined run is not complete and its filter names what it holds.
    let short = part("short", &rest[..rest.len() - 1], &|r| r.context.settings.filter = Some("pg-*".into()));
    let partial = merged(&[&interrupted, &short], "partial");
    assert!(!partial.complete);
    assert_eq!(partial.context.settings.filter, Some(ids[..ids.len() - 1].join(",")));
    // Another setting than the selection makes a stranger, named in one line.
    let other = part("other", rest, &|r| r.context.settings.repetitions += 1);
    let o = xtask(&["merge", &interrupted, &other, "--out", d.0.join("x").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().count() == 1 && err.contains("settings differ"), "{err}");
    // A part measured on another CPU model (a matrix of CI runners) is refused, unless
    // --hosts-may-differ, which names each experiment's machine.
    let elsewhere = part("elsewhere", rest, &|r| r.context.host.cpu_model = Some("Another CPU".into()));
    let o = xtask(&["merge", &interrupted, &elsewhere, "--out", d.0.join("y").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("different CPU models"));
    let mixed = merged(&[&interrupted, &elsewhere, "--hosts-may-differ"], "mixed");
    assert!(mixed.complete);
    let noted = |e: &harness::results::ExperimentResult, what: &str| e.notes.iter().any(|n| n.contains(what));
    assert!(noted(mixed.experiments.last().unwrap(), "on Another CPU"));
    assert!(noted(&mixed.experiments[0], "different machines") && !noted(&mixed.experiments[0], "Another CPU"));
    assert!(!whole.experiments.iter().any(|e| noted(e, "different machines")), "one machine, no such note");
}

#[test]
fn selftest_refuses_bad_sizes_before_anything_starts() {
    for (args, says) in [
        (["selftest", "--comparisons", "5"], "--comparisons must be between 20"),
        (["selftest", "--sessions", "0"], "--sessions must be between 1"),
        (["selftest", "--engine", "gpu"], "--engine \"gpu\": micro, load or both"),
        (["selftest", "--duration", "soon"], "--duration: "),
        (["selftest", "--duration", "0s"], "must be at least 1ms"),
    ] {
        let o = xtask(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.contains(says) && e.trim().lines().count() == 1, "{args:?}: {e}");
    }
}

/// `bench --against`: two builds serve the trials in turn (here this build on both sides,
/// through PERFLAB_AGAINST_EXE, so the test needs no second compile), the run holds both
/// sides, and a slowdown injected into this checkout's side only is gated with exit 3,
/// by bench and by compare of the run alone.
#[test]
fn against_interleaves_two_builds_and_gates_an_injected_slowdown() {
    let d = temp_dir();
    let out = d.0.to_str().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        // 8 rounds: the confirmation's Holm correction over the flagged comparisons needs a p
        // that 4 noisy rounds of a debug build did not always give (CI at b05bac2).
        .args(["bench", "--quick", "--filter", "string-building", "--reps", "8", "--duration", "60ms"])
        .args(["--warmup", "20ms", "--no-report", "--out", out, "--against", "HEAD"])
        .args(["--set", "string-building.inject_slowdown=100%"])
        .env("PERFLAB_AGAINST_EXE", env!("CARGO_BIN_EXE_xtask"))
        .env("PERFLAB_NOISE_LIMIT", "none")
        .output()
        .expect("xtask runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("string-building") && err.contains("regressed"), "{err}");
    let run = std::fs::read_dir(&d.0).unwrap().flatten().map(|e| e.path()).find(|p| p.join("results.json").is_file());
    let run = run.expect("a run directory");
    assert!(run.join("compare.html").is_file());
    let r: RunResults = serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let against = r.against.as_ref().expect("the other revision's results");
    let head = Command::new("git").args(["rev-parse", "HEAD"]).output().unwrap();
    assert_eq!(against.commit, String::from_utf8_lossy(&head.stdout).trim());
    let (base, this) = (&against.experiments[0], &r.experiments[0]);
    assert!(!this.samples.is_empty() && base.samples.len() == this.samples.len(), "both sides sampled every trial");
    let slowed = |e: &harness::results::ExperimentResult| e.notes.iter().any(|n| n.contains("Injected slowdown"));
    assert!(slowed(this) && !slowed(base), "only this checkout's side is slowed");
    let o = xtask(&["compare", run.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stdout));
}

/// `bench --against` where the other build has no such experiment (this checkout added it):
/// the experiment runs on this side only, says so, and compare lists it as only in the new
/// run without failing. The other build is a script speaking the trial protocol's hello.
#[test]
fn against_runs_an_experiment_the_other_build_lacks_on_this_side_only() {
    let d = temp_dir();
    let out = d.0.join("out");
    let fake = d.0.join("old-build");
    let protocol = harness::trial_server::PROTOCOL;
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n[ \"$2\" = --protocol ] && {{ echo {protocol}; exit 0; }}\nread hello\necho 'perflab-trial {{\"reply\":\"failed\",\"error\":\"this build has no experiment string-building\"}}'\nexit 2\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--quick", "--filter", "string-building", "--reps", "2", "--duration", "30ms"])
        .args(["--warmup", "10ms", "--no-report", "--out", out.to_str().unwrap(), "--against", "HEAD"])
        .env("PERFLAB_AGAINST_EXE", &fake)
        .env("PERFLAB_NOISE_LIMIT", "none")
        .output()
        .expect("xtask runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let run = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.path()).find(|p| p.join("results.json").is_file());
    let run = run.expect("a run directory");
    let r: RunResults = serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    assert!(r.against.as_ref().expect("the other revision's record").experiments.is_empty());
    let this = &r.experiments[0];
    assert!(!this.samples.is_empty(), "measured on this side");
    assert!(this.notes.iter().any(|n| n.contains("Only in this checkout")), "{:?}", this.notes);
    let o = xtask(&["compare", run.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(said.contains("string-building: only in the new run"), "{said}");
}

#[test]
fn against_refuses_what_is_not_a_commit_and_a_bad_slowdown() {
    let o = xtask(&["bench", "--quick", "--filter", "string-building", "--against", "no-such-rev-xyz"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a commit"), "{}", String::from_utf8_lossy(&o.stderr));
    for bad in ["string-building.inject_slowdown=20", "string-building.inject_slowdown=nope:20%"] {
        let o = xtask(&["bench", "--quick", "--filter", "string-building", "--set", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.lines().count() == 1 && err.contains("inject_slowdown"), "{bad}: {err}");
    }
}
