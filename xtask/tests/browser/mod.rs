//! A rendered report opened in a real browser (headless Chromium, Debian's `chromium`):
//! no console message, every chart laid out with a size, no chart wider than a phone's screen,
//! and the summary table first, on the first screen. A screenshot of the first screen is kept
//! in the tests' output directory. Without Chromium this prints one line and checks nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The page that loads the report twice, at a desktop's width and at a phone's, and writes
/// what it measured into its own DOM (`--dump-dom` prints it).
const PROBE: &str = r#"<!DOCTYPE html><html><body>
<iframe id="wide" src="index.html" style="width:1280px;height:900px;border:0"></iframe>
<iframe id="narrow" src="index.html" style="width:390px;height:800px;border:0"></iframe>
<pre id="out"></pre>
<script>
window.addEventListener('load', function () {
  var out = {};
  try {
    ['wide', 'narrow'].forEach(function (id) {
      var frame = document.getElementById(id);
      var d = frame.contentDocument;
      var charts = Array.prototype.slice.call(d.querySelectorAll('.chart svg'));
      var sizes = charts.map(function (s) { var r = s.getBoundingClientRect(); return [r.width, r.height]; });
      out[id] = {
        charts: charts.length,
        empty: sizes.filter(function (s) { return !(s[0] > 0 && s[1] > 0); }).length,
        widest: sizes.reduce(function (m, s) { return Math.max(m, s[0]); }, 0),
        viewport: d.documentElement.clientWidth,
        first: (d.querySelector('main') || {}).firstElementChild ? d.querySelector('main').firstElementChild.id : '',
        summary_top: d.querySelector('#summary table') ? d.querySelector('#summary table').getBoundingClientRect().top : -1
      };
    });
  } catch (e) { out.error = String(e); }
  document.getElementById('out').textContent = 'PROBE ' + JSON.stringify(out) + ' END';
});
</script></body></html>"#;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let ok = Command::new(name).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
        ok.then(|| PathBuf::from(name))
    })
}

/// Run chromium with `args`, killed after a minute.
fn run(browser: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("60").arg(browser);
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]);
    cmd.args(args);
    cmd.output().expect("running chromium")
}

/// Open `report` (an index.html) in headless Chromium and check it; `shot` names the
/// screenshot kept under the tests' output directory.
pub fn check_report(report: &Path, shot: &str) {
    let Some(browser) = chromium() else {
        println!("browser check skipped: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let dir = report.parent().unwrap();
    let probe = dir.join("probe.html");
    std::fs::write(&probe, PROBE).unwrap();
    let url = format!("file://{}", probe.display());
    let o = run(
        &browser,
        &[
            "--allow-file-access-from-files",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=20000",
            "--dump-dom",
            &url,
        ],
    );
    let dom = String::from_utf8_lossy(&o.stdout);
    let log = String::from_utf8_lossy(&o.stderr);
    let json = dom
        .split("PROBE ")
        .nth(1)
        .and_then(|r| r.split(" END").next())
        .unwrap_or_else(|| panic!("the probe page did not run: status {:?}\n{log}", o.status));
    let m: serde_json::Value = serde_json::from_str(json).unwrap();
    assert!(m.get("error").is_none(), "probe failed: {m}");
    // The report has no script; any console line from it is an error (a resource, a parse).
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE") && l.contains("index.html")).collect();
    assert!(console.is_empty(), "console messages from the report: {console:#?}");
    for id in ["wide", "narrow"] {
        let v = &m[id];
        assert!(v["charts"].as_u64().unwrap() > 0, "{id}: no chart: {v}");
        assert_eq!(v["empty"], 0, "{id}: a chart without a size: {v}");
        assert_eq!(v["first"], "summary", "{id}: the summary is not the first section: {v}");
        assert!(
            v["widest"].as_f64().unwrap() <= v["viewport"].as_f64().unwrap() + 0.5,
            "{id}: a chart wider than the screen: {v}"
        );
    }
    let top = m["wide"]["summary_top"].as_f64().unwrap();
    assert!((0.0..900.0).contains(&top), "the summary table starts below the first screen: {top}");
    // A screenshot of the first screen, kept after the test.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join(shot);
    let _ = std::fs::remove_file(&png);
    let arg = format!("--screenshot={}", png.display());
    let o = run(&browser, &["--window-size=1280,900", &arg, &format!("file://{}", report.display())]);
    assert!(png.is_file(), "no screenshot: {}", String::from_utf8_lossy(&o.stderr));
    println!("browser check passed: {} charts; first screen: {}", m["wide"]["charts"], png.display());
    let _ = std::fs::remove_file(probe);
}
