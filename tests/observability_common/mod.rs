//! What the observability tests share: the dashboards as JSON, the metric names a PromQL
//! expression uses, and finding the Prometheus tools.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

pub fn dashboards_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards"))
}

/// One Grafana dashboard file.
pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

impl Dashboard {
    /// Every panel query of the dashboard.
    pub fn exprs(&self) -> Vec<String> {
        self.json["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| p["targets"].as_array().into_iter().flatten())
            .filter_map(|t| t["expr"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Every `dashboards/grafana/*.json`, sorted by name.
pub fn dashboards() -> Vec<Dashboard> {
    let dir = dashboards_dir().join("grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("dashboard readable");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            Dashboard {
                file: p.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            }
        })
        .collect()
}

/// The `tsr_*` metric names an expression uses, in order of first use (label names and
/// values never start with `tsr_` in our dashboards; quoted strings are skipped anyway).
pub fn metric_names(expr: &str) -> Vec<String> {
    let unquoted = regex::Regex::new(r#""[^"]*""#)
        .unwrap()
        .replace_all(expr, "\"\"");
    let mut out: Vec<String> = Vec::new();
    for m in regex::Regex::new(r"\btsr_[a-z0-9_]+")
        .unwrap()
        .find_iter(&unquoted)
    {
        if !out.iter().any(|n| n == m.as_str()) {
            out.push(m.as_str().to_owned());
        }
    }
    out
}

/// A Prometheus tool on PATH (or where the Debian package puts it). `None` prints why the
/// caller skips: the tools come from `apt-get install -y prometheus`, which `.ci/run` does.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!(
            "SKIPPED: `{name}` is not installed; install it with `apt-get install -y prometheus` (.ci/run does)"
        );
    }
    found
}
