//! Configuration: TOML read with serde, layered defaults < file < `-c key.path=value` overrides.
//!
//! Every section is a struct that implements [`Section`]; the list of sections is the one
//! `sections!` invocation at the bottom of this file, so adding a section is one struct and one
//! line. Problems are collected, never returned one at a time: unknown keys, wrong types and
//! out-of-range values are all reported together, each naming its key path.

use std::fmt;
use std::path::Path;

use documented::DocumentedFields;
use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::Value;

/// One problem with a configuration, located by its dotted key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Every problem found in a configuration. The CLI exits with code 78 (EX_CONFIG) on it.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} problem(s) in the configuration:",
            self.source_name,
            self.issues.len()
        )?;
        for issue in &self.issues {
            writeln!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

/// Collects problems during validation.
#[derive(Debug, Default)]
pub struct Issues(pub Vec<ConfigIssue>);

impl Issues {
    pub fn push(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.into(),
            problem: problem.into(),
        });
    }
    /// Report `key` unless `ok`; `value` and `allowed` are shown to the user.
    pub fn check(&mut self, ok: bool, key: &str, value: impl fmt::Debug, allowed: &str) {
        if !ok {
            self.push(key, format!("{value:?} is not allowed; expected {allowed}"));
        }
    }
    /// Check that `value` lies in `[lo, hi]`.
    pub fn range<T: PartialOrd + fmt::Debug + Copy>(&mut self, key: &str, value: T, lo: T, hi: T) {
        self.check(
            value >= lo && value <= hi,
            key,
            value,
            &format!("a value in [{lo:?}, {hi:?}]"),
        );
    }
}

/// A `[section]` of the configuration. Field doc comments become the comments that
/// `tsr config defaults` prints, so every field must have one.
pub trait Section: Serialize + DeserializeOwned + Default + DocumentedFields {
    /// Check values that serde cannot (ranges, consistency). `prefix` is the section name.
    fn validate(&self, _prefix: &str, _issues: &mut Issues) {}
}

macro_rules! sections {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty ),* $(,)?) => {
        /// The whole configuration of a run.
        #[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Config {
            /// Section names with their one-line descriptions, in file order.
            pub const SECTIONS: &'static [(&'static str, &'static str)] =
                &[$( (stringify!($name), concat!($($doc,)* "")) ),*];

            fn validate_sections(&self, issues: &mut Issues) {
                $( self.$name.validate(stringify!($name), issues); )*
                self.cross_checks(issues);
            }

            /// The doc comment of `section.field`, for `tsr config defaults`.
            pub fn field_doc(section: &str, field: &str) -> Option<&'static str> {
                match section {
                    $( stringify!($name) => <$ty as DocumentedFields>::get_field_docs(field).ok(), )*
                    _ => None,
                }
            }
        }
    };
}

impl Config {
    /// Defaults < `file` (if any) < `overrides` (`key.path=value`, value parsed as TOML, or taken
    /// as a string when it does not parse). Every problem is reported at once.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
        let source_name = file.map_or_else(|| "defaults".to_owned(), |p| p.display().to_string());
        let fail = |issues| ConfigError {
            source_name: source_name.clone(),
            issues,
        };
        let mut merged = Value::Table(toml::Table::new());
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                fail(vec![ConfigIssue {
                    key: "(file)".into(),
                    problem: format!("cannot read: {e}"),
                }])
            })?;
            merged = text.parse::<toml::Table>().map(Value::Table).map_err(|e| {
                fail(vec![ConfigIssue {
                    key: "(syntax)".into(),
                    problem: e.to_string().trim().to_owned(),
                }])
            })?;
        }
        let mut issues = Issues::default();
        for ov in overrides {
            apply_override(&mut merged, ov, &mut issues);
        }
        let defaults = Value::try_from(Config::default()).expect("defaults serialize");
        check_shape(&defaults, &mut merged, "", &mut issues);
        let config: Config = merged.clone().try_into().map_err(|e: toml::de::Error| {
            let mut all = issues.0.clone();
            all.extend(blame_values(&defaults, &merged, "", &defaults));
            if all.len() == issues.0.len() {
                all.push(ConfigIssue {
                    key: "(config)".into(),
                    problem: e.message().to_owned(),
                });
            }
            fail(all)
        })?;
        config.validate_sections(&mut issues);
        if issues.0.is_empty() {
            Ok(config)
        } else {
            Err(fail(issues.0))
        }
    }

    /// Validate an already-built config (e.g. one read back from a run folder).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Issues::default();
        self.validate_sections(&mut issues);
        if issues.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                source_name: "config".into(),
                issues: issues.0,
            })
        }
    }

    /// The whole config as TOML, with each key's doc comment above it.
    pub fn to_commented_toml(&self) -> String {
        let value = Value::try_from(self).expect("config serializes");
        let mut out = String::new();
        for (section, about) in Config::SECTIONS {
            let Some(Value::Table(table)) = value.get(*section) else {
                continue;
            };
            out.push_str(&format!("# {}\n[{section}]\n", about.trim()));
            for (key, v) in table {
                for line in Config::field_doc(section, key).unwrap_or("").lines() {
                    out.push_str(&format!("# {}\n", line.trim()).replace("# \n", "#\n"));
                }
                out.push_str(&format!("{key} = {v}\n"));
            }
            out.push('\n');
        }
        out
    }

    /// The resolved config as plain TOML (what a run folder stores).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }
}

/// `[run]`: what identifies and governs a run as a whole.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Seed from which every random choice of the run derives.
    pub seed: u64,
    /// Run every actor serially so that a run is reproducible bit for bit (slower).
    pub deterministic: bool,
    /// Folder under which each run gets its own sub-folder.
    pub out_dir: String,
}

impl Default for RunSection {
    fn default() -> Self {
        Self {
            seed: 1,
            deterministic: false,
            out_dir: "runs".into(),
        }
    }
}

impl Section for RunSection {
    fn validate(&self, prefix: &str, issues: &mut Issues) {
        issues.check(
            !self.out_dir.trim().is_empty(),
            &format!("{prefix}.out_dir"),
            &self.out_dir,
            "a folder path",
        );
    }
}

impl Config {
    /// Checks that span sections (each names the key it blames).
    fn cross_checks(&self, issues: &mut Issues) {
        crate::search::config::cross_check(self, issues);
        crate::train::config::cross_check(self, issues);
    }
}

/// The keys whose values the config cannot take although their type matches the default's (a
/// negative number for an unsigned key, a number too large): each value is tried alone on the
/// defaults, so the error names its key instead of the whole config.
fn blame_values(node: &Value, given: &Value, path: &str, root: &Value) -> Vec<ConfigIssue> {
    let Value::Table(table) = given else {
        let mut trial = root.clone();
        let mut at = &mut trial;
        for key in path.split('.') {
            match at.get_mut(key) {
                Some(next) => at = next,
                None => return Vec::new(),
            }
        }
        *at = given.clone();
        return match trial.try_into::<Config>() {
            Err(e) if node != given => vec![ConfigIssue {
                key: path.to_owned(),
                problem: format!("{given} is not allowed: {}", e.message()),
            }],
            _ => Vec::new(),
        };
    };
    table
        .iter()
        .flat_map(|(key, value)| {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match node.get(key) {
                Some(default) => blame_values(default, value, &child, root),
                None => Vec::new(),
            }
        })
        .collect()
}

fn apply_override(root: &mut Value, ov: &str, issues: &mut Issues) {
    let parts = ov.split_once('=').map(|(p, raw)| (p.trim(), raw));
    let Some((path, raw)) = parts.filter(|(p, _)| !p.split('.').any(str::is_empty)) else {
        issues.push(
            format!("-c {ov:?}"),
            "an override must look like key.path=value",
        );
        return;
    };
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.trim().to_owned()));
    let keys: Vec<&str> = path.split('.').collect();
    let mut node = root;
    for (i, key) in keys.iter().enumerate() {
        let Value::Table(table) = node else {
            issues.push(path, "is not a table, so it cannot take a sub-key");
            return;
        };
        if i + 1 == keys.len() {
            table.insert((*key).to_owned(), value);
            return;
        }
        node = table
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Table(toml::Table::new()));
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// Compare the user's tree against the defaults' tree and report unknown keys and wrong types,
/// all of them. Each bad value is then removed (so the default stands in for it) and the rest
/// can still be deserialized and validated, so one run reports every problem. An integer where a
/// float is expected is converted in place (TOML users write `lr = 1`).
fn check_shape(expected: &Value, given: &mut Value, path: &str, issues: &mut Issues) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match (expected, &mut *given) {
        (Value::Table(exp), Value::Table(got)) => {
            let mut unknown = Vec::new();
            for (key, value) in got.iter_mut() {
                match exp.get(key) {
                    Some(e) => check_shape(e, value, &join(key), issues),
                    None => unknown.push(key.clone()),
                }
            }
            for key in unknown {
                let allowed: Vec<&str> = exp.keys().map(String::as_str).collect();
                issues.push(
                    join(&key),
                    format!("unknown key; allowed here: {}", allowed.join(", ")),
                );
                got.remove(&key);
            }
        }
        (Value::Float(_), Value::Integer(i)) => *given = Value::Float(*i as f64),
        (Value::Array(exp), Value::Array(got)) => {
            if let Some(first) = exp.first() {
                for (i, item) in got.iter_mut().enumerate() {
                    check_shape(first, item, &format!("{path}[{i}]"), issues);
                }
            }
        }
        (e, g) if std::mem::discriminant(e) != std::mem::discriminant(g) => {
            issues.push(
                path,
                format!("{} is {}, expected {}", g, type_name(g), type_name(e)),
            );
            *given = e.clone();
        }
        _ => {}
    }
}

sections! {
    /// The run as a whole: seed, determinism, output folder.
    run: RunSection,
    /// Episode limits shared by every task, and which task to train on.
    env: crate::env::task::EnvSection,
    /// Sokoban rooms (used when env.task = "sokoban").
    sokoban: crate::env::sokoban::SokobanConfig,
    /// FrozenLake maps (used when env.task = "frozenlake").
    frozenlake: crate::env::frozenlake::FrozenLakeConfig,
    /// WebShop catalog, goals and step limit (used when env.task = "webshop").
    webshop: crate::env::webshop::WebShopConfig,
    /// The policy network: preset or pretrained folder, device, optimiser, generation limits.
    model: crate::policy::ModelSection,
    /// The RL algorithm (PPO/GRPO), its losses, and which rollouts it trains on.
    algo: crate::algo::config::AlgoConfig,
    /// TSR search during training rollouts.
    search: crate::search::SearchSection,
    /// The training loop: length, validation, checkpoints, sampling.
    train: crate::train::TrainSection,
    /// Actor counts and queue bounds.
    actors: crate::train::ActorsSection,
    /// Prometheus endpoint and console status.
    metrics: crate::train::MetricsSection,
    /// Injected faults (all off by default) and supervisors' retry budgets.
    faults: crate::faults::FaultsSection,
}
