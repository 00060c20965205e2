//! The checkpoint loader on damaged folders: every file of a real checkpoint truncated, garbled,
//! emptied, replaced by noise, bit-flipped or deleted. Never a panic; a damaged file that cannot be read is
//! an error naming it.

use std::path::Path;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tsr::policy::{ModelSection, Policy, PolicyOptimizer, Tokenizer};

fn section() -> ModelSection {
    ModelSection {
        preset: "tiny".into(),
        context_limit: 128,
        ..ModelSection::default()
    }
}

fn write_checkpoint(dir: &Path) {
    let corpus: Vec<String> = (0..50)
        .map(|i| format!("<answer>Left || Right</answer> step {i}"))
        .collect();
    let tokenizer = Tokenizer::build_for_corpus_sized(&corpus, 300).unwrap();
    let policy = Policy::from_section(&section(), &tokenizer, 7).unwrap();
    let opt = PolicyOptimizer::new(&policy, &section()).unwrap();
    policy
        .save_checkpoint(dir, &opt, &serde_json::json!({ "next_step": 3 }))
        .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Ways to damage a file; `true` when the damage must be detected.
fn damage(bytes: &[u8], kind: usize, rng: &mut ChaCha8Rng) -> (Option<Vec<u8>>, bool) {
    let n = bytes.len();
    match kind {
        0 => (None, true),                                                  // deleted
        1 => (Some(Vec::new()), true),                                      // emptied
        2 => (Some(bytes[..rng.random_range(0..n.max(1))].to_vec()), true), // truncated
        3 => {
            let noise = (0..rng.random_range(1..4096))
                .map(|_| rng.random::<u8>())
                .collect();
            (Some(noise), true) // replaced by noise
        }
        _ => {
            // A few flipped bytes anywhere: the checksums catch them, except in the state file
            // that holds the checksums (a flipped digit there can still be valid JSON).
            let mut b = bytes.to_vec();
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..n.max(1));
                if let Some(x) = b.get_mut(i) {
                    *x ^= rng.random_range(1..=255u8);
                }
            }
            (Some(b), true)
        }
    }
}

#[test]
fn damaged_checkpoints_are_clear_errors_never_panics() {
    let root = tempfile::tempdir().unwrap();
    let good = root.path().join("good");
    write_checkpoint(&good);
    Policy::load_checkpoint(&good, &section()).expect("the undamaged checkpoint loads");
    let files: Vec<String> = std::fs::read_dir(&good)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.len() >= 5, "{files:?}");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut detected = 0;
    for (i, file) in files.iter().enumerate() {
        for kind in 0..5 {
            for round in 0..3 {
                let dir = root.path().join(format!("case-{i}-{kind}-{round}"));
                copy_dir(&good, &dir);
                let original = std::fs::read(good.join(file)).unwrap();
                let (content, detectable) = damage(&original, kind, &mut rng);
                let must_fail = detectable && (kind < 4 || file != "training_state.json");
                match &content {
                    None => std::fs::remove_file(dir.join(file)).unwrap(),
                    Some(b) => std::fs::write(dir.join(file), b).unwrap(),
                }
                let result = Policy::load_checkpoint(&dir, &section());
                match result {
                    Ok(_) => assert!(
                        !must_fail || content.as_deref() == Some(&original[..]),
                        "{file} damaged ({kind}) yet loaded"
                    ),
                    Err(e) => {
                        let message = e.to_string();
                        assert!(
                            message.contains(file.as_str()),
                            "{file} damaged ({kind}): the error names it: {message}"
                        );
                        detected += 1;
                    }
                }
                std::fs::remove_dir_all(&dir).unwrap();
            }
        }
    }
    assert!(detected > 0);
}
