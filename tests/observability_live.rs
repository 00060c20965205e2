//! The real thing: a short smoke run serves `/metrics`; `promtool check metrics` accepts the live
//! output; every declared metric and every metric a dashboard queries is in it; a real
//! Prometheus (the Debian package, on a free loopback port, configured from
//! `dashboards/prometheus.yml`) scrapes the run, and every dashboard panel's query returns data.
//! The run also leaves its learning curves behind.

mod observability_common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use observability_common::{dashboards, dashboards_dir, metric_names, tool};

/// A child process that is killed when the test ends, however it ends.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(cmd: &mut Command, log: PathBuf) -> Running {
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Running { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panic with the log if the process has exited.
    fn assert_alive(&mut self, what: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{what} exited early ({status}):\n{}", self.log());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn get(url: &str, query: Option<&str>) -> Result<String, String> {
    let mut req = ureq::get(url);
    if let Some(q) = query {
        req = req.query("query", q);
    }
    req.call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())
}

/// The run folder's `plots/`, once the run has finished training and drawn its curves.
fn finished_run(runs: &Path) -> Option<PathBuf> {
    let run = std::fs::read_dir(runs).ok()?.next()?.ok()?.path();
    let plots = run.join("plots");
    tsr::plot::FIGURES
        .iter()
        .all(|f| plots.join(f).is_file())
        .then_some(plots)
}

fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn live_smoke_run_passes_promtool_and_feeds_every_dashboard_panel() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let (trainer_port, prom_port) = (free_port(), free_port());
    let trainer_addr = format!("127.0.0.1:{trainer_port}");

    // The shipped scrape config, pointed at this run and scraping every second.
    let shipped = std::fs::read_to_string(dashboards_dir().join("prometheus.yml")).unwrap();
    let config = shipped
        .replace("127.0.0.1:9464", &trainer_addr)
        .replace("5s", "1s");
    assert!(
        config.contains(&trainer_addr),
        "prometheus.yml has no default target"
    );
    let config_path = tmp.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let mut prom = Running::start(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}")),
        tmp.path().join("prometheus.log"),
    );

    let runs = tmp.path().join("runs");
    let smoke = concat!(env!("CARGO_MANIFEST_DIR"), "/config/smoke.toml");
    let mut trainer = Running::start(
        Command::new(env!("CARGO_BIN_EXE_tsr"))
            .args(["train", "--config", smoke])
            .args(["-c", "train.steps=2", "-c", "train.format_warmup_steps=0"])
            .args(["-c", "train.val_groups=2", "-c", "metrics.linger_s=120"])
            // Replay on, so that its series carry the run's own figures (checked below).
            .args(["-c", "train.replay_groups=1"])
            .arg("-c")
            .arg(format!("metrics.listen=\"{trainer_addr}\""))
            .arg("-c")
            .arg(format!("run.out_dir=\"{}\"", runs.display()))
            .env("RUST_LOG", "info"),
        tmp.path().join("trainer.log"),
    );

    // The run ends (its plots are drawn) and keeps serving its final metrics.
    let plots = wait_for(Duration::from_secs(150), || {
        trainer.assert_alive("the trainer");
        finished_run(&runs)
    });
    assert!(
        plots.is_some(),
        "the run did not finish:\n{}",
        trainer.log()
    );
    let metrics_url = format!("http://{trainer_addr}/metrics");
    let text = get(&metrics_url, None).expect("live /metrics");

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "promtool check metrics: {complaints}\n{text}"
    );

    // The replay series say what the run's metrics.jsonl says (an untrained policy fails
    // some instance of its first step, so its second step replays one).
    let plots = plots.unwrap();
    let lines = std::fs::read_to_string(plots.parent().unwrap().join("metrics.jsonl")).unwrap();
    let replay: Vec<serde_json::Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["replay"].clone())
        .collect();
    let replayed: u64 = replay.iter().map(|r| r["groups"].as_u64().unwrap()).sum();
    assert!(replayed > 0, "nothing replayed: {replay:?}");
    let served = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} not served:\n{text}"))
    };
    assert_eq!(served(tsr::metrics::REPLAYED), replayed as f64);
    let waiting = replay.last().unwrap()["waiting"].as_f64().unwrap();
    assert_eq!(served(tsr::metrics::REPLAY_WAITING), waiting);

    let has_type = |name: &str| text.contains(&format!("# TYPE {name} "));
    let missing: Vec<_> = tsr::metrics::ALL.iter().filter(|n| !has_type(n)).collect();
    assert!(missing.is_empty(), "declared but not served: {missing:?}");
    let has_series = |name: &str| {
        text.lines()
            .any(|l| l.starts_with(name) && !l.starts_with('#'))
    };
    for d in dashboards() {
        for expr in d.exprs() {
            for name in metric_names(&expr) {
                assert!(has_series(&name), "{}: {name} not in /metrics", d.file);
            }
        }
    }

    // Every panel query returns data from the real Prometheus while the run lingers.
    prom.assert_alive("prometheus");
    let api = format!("http://127.0.0.1:{prom_port}/api/v1/query");
    let mut empty = Vec::new();
    for d in dashboards() {
        for expr in d.exprs() {
            let answer = wait_for(Duration::from_secs(20), || {
                let body = get(&api, Some(&expr)).ok()?;
                let v: serde_json::Value = serde_json::from_str(&body).ok()?;
                let n = v["data"]["result"].as_array().map_or(0, Vec::len);
                (v["status"] == "success" && n > 0).then_some(n)
            });
            if answer.is_none() {
                let last = get(&api, Some(&expr)).unwrap_or_else(|e| e);
                empty.push(format!("{}: {expr}\n  -> {last}", d.file));
            }
        }
    }
    trainer.assert_alive("the trainer (lingering)");
    assert!(
        empty.is_empty(),
        "panel queries without data:\n{}\nprometheus log:\n{}",
        empty.join("\n"),
        prom.log()
    );
}
