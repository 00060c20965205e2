//! Shared by the WebShop test files: where the reference data lives.
#![allow(dead_code)] // each test file uses a different subset

use std::path::PathBuf;

/// The WebShop data folder: `TSR_WEBSHOP_DIR`, else `../shared/webshop` next to the crate.
/// `None` (the test prints why and checks nothing else) only when the default folder is absent
/// and the variable is unset; a variable naming a missing folder is a failure.
pub fn webshop_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TSR_WEBSHOP_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "TSR_WEBSHOP_DIR={} is not a folder",
            dir.display()
        );
        return Some(dir);
    }
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/webshop"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("no WebShop data at {}; set TSR_WEBSHOP_DIR", dir.display());
        None
    }
}

/// Every file in `dir` named `{prefix}*.json`, sorted; at least one must exist.
pub fn case_files(dir: &std::path::Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".json")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {prefix}*.json in {}", dir.display());
    files
}

pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
