//! The files under `dashboards/` agree with each other and with `src/metrics.rs`: one datasource
//! uid everywhere, every queried metric declared, every declared metric watched, the
//! provisioning and compose paths pointing at files that exist, and a Prometheus config that
//! promtool accepts.

mod observability_common;

use std::collections::BTreeSet;
use std::path::Path;

use observability_common::{Dashboard, dashboards, dashboards_dir, metric_names, tool};
use serde_json::Value;

fn yaml(path: &Path) -> serde_norway::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn provisioned_uid() -> String {
    let path = dashboards_dir().join("provisioning/datasources/prometheus.yml");
    let doc = yaml(&path);
    let sources = doc["datasources"].as_sequence().expect("datasources list");
    assert_eq!(sources.len(), 1, "one datasource in {}", path.display());
    assert_eq!(sources[0]["type"].as_str(), Some("prometheus"));
    sources[0]["uid"]
        .as_str()
        .expect("datasource uid")
        .to_owned()
}

#[test]
fn datasource_uids_agree_everywhere() {
    let uid = provisioned_uid();
    let all = dashboards();
    assert_eq!(all.len(), 3, "training, actors and search dashboards");
    for d in &all {
        for panel in d.json["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or("?");
            assert_eq!(
                panel["datasource"]["uid"].as_str(),
                Some(uid.as_str()),
                "{} panel {title:?}",
                d.file
            );
            for target in panel["targets"].as_array().expect("targets") {
                assert_eq!(
                    target["datasource"]["uid"].as_str(),
                    Some(uid.as_str()),
                    "{} panel {title:?} target {}",
                    d.file,
                    target["refId"]
                );
            }
        }
    }
}

#[test]
fn dashboards_are_well_formed_grafana_json() {
    let mut uids = BTreeSet::new();
    for Dashboard { file, json, .. } in dashboards() {
        let uid = json["uid"].as_str().expect("dashboard uid");
        assert!(uids.insert(uid.to_owned()), "{file}: uid {uid} used twice");
        assert!(
            json["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: title"
        );
        let panels = json["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{file}: no panels");
        let mut ids = BTreeSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "{file}: panel id twice"
            );
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
            assert!(
                x + w <= 24,
                "{file}: panel {} overflows the grid",
                p["title"]
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(
                !targets.is_empty(),
                "{file}: panel {} queries nothing",
                p["title"]
            );
            for t in targets {
                let expr = t["expr"].as_str().unwrap_or("");
                assert!(
                    expr.contains("tsr_"),
                    "{file}: {expr:?} names no tsr metric"
                );
            }
        }
    }
}

#[test]
fn every_queried_metric_is_declared_and_every_declared_metric_is_shown() {
    let declared: BTreeSet<&str> = tsr::metrics::ALL.iter().copied().collect();
    let mut shown = BTreeSet::new();
    for d in dashboards() {
        for expr in d.exprs() {
            for name in metric_names(&expr) {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| declared.contains(b)))
                    .unwrap_or(&name);
                assert!(
                    declared.contains(base),
                    "{}: {name} in {expr:?} is not declared in src/metrics.rs",
                    d.file
                );
                shown.insert(base.to_owned());
            }
        }
    }
    let unshown: Vec<_> = declared.iter().filter(|n| !shown.contains(**n)).collect();
    assert!(unshown.is_empty(), "metrics on no dashboard: {unshown:?}");
}

#[test]
fn provisioning_and_compose_point_at_existing_files() {
    let dir = dashboards_dir();
    let compose = yaml(&dir.join("docker-compose.yml"));
    let grafana = &compose["services"]["grafana"];
    let mounts: Vec<(String, String)> = grafana["volumes"]
        .as_sequence()
        .expect("grafana volumes")
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|v| v.starts_with("./"))
        .map(|v| {
            let mut parts = v.split(':');
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect();
    for (host, _) in &mounts {
        assert!(dir.join(host).exists(), "compose mounts missing {host}");
    }
    let provider = yaml(&dir.join("provisioning/dashboards/tsr.yml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let mounted = mounts
        .iter()
        .find(|(_, inside)| inside == path)
        .unwrap_or_else(|| panic!("no compose volume mounts dashboards at {path}"));
    let json_files = std::fs::read_dir(dir.join(&mounted.0))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("json".as_ref()))
        .count();
    assert_eq!(json_files, dashboards().len());
    let home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .expect("home dashboard");
    let home_file = home
        .strip_prefix(&format!("{path}/"))
        .expect("home is provisioned");
    assert!(dir.join(&mounted.0).join(home_file).is_file());
    let prom = &compose["services"]["prometheus"]["volumes"][0];
    assert!(
        prom.as_str().unwrap().starts_with("./prometheus.yml:"),
        "compose runs dashboards/prometheus.yml"
    );
}

#[test]
fn prometheus_config_scrapes_the_default_trainer_address() {
    let doc = yaml(&dashboards_dir().join("prometheus.yml"));
    let target = doc["scrape_configs"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .expect("scrape target");
    let defaults = tsr::train::MetricsSection::default();
    assert_eq!(target, defaults.listen);
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let out = std::process::Command::new(promtool)
        .arg("check")
        .arg("config")
        .arg(dashboards_dir().join("prometheus.yml"))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Grafana JSON with a panel query that names an undeclared metric is caught by the name
/// extraction the checks above rely on.
#[test]
fn metric_name_extraction_sees_through_promql() {
    let names = metric_names(
        "sum by (le) (rate(tsr_a_bucket{phase=\"train\"}[5m])) / ignoring(x) tsr_b + tsr_a_bucket",
    );
    assert_eq!(names, vec!["tsr_a_bucket", "tsr_b"]);
    let v: Value = serde_json::json!({"expr": "tsr_x"});
    assert_eq!(metric_names(v["expr"].as_str().unwrap()), vec!["tsr_x"]);
}
