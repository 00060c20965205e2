//! `tsr plot`: learning curves from the lines the training loop really writes (serialized
//! `StepLine`s and validation lines), and clear errors for files that are not such lines.

use std::path::Path;

use tsr::plot::{FIGURES, PlotError, plot_run};
use tsr::train::driver::StepLine;
use tsr::train::learner::UpdateReport;
use tsr::train::plan::Outcomes;

fn step_line(step: u64, loss: f64) -> String {
    let line = StepLine {
        kind: "train",
        step,
        version: step + 1,
        wall_s: step as f64,
        train: Outcomes {
            episodes: 16,
            success_rate: step as f64 / 20.0,
            mean_return: -1.0 + step as f64 / 10.0,
            ..Outcomes::default()
        },
        update: UpdateReport {
            pg_loss: loss,
            value_loss: 0.5 / (1.0 + step as f64),
            entropy: 2.0 - step as f64 / 20.0,
            ppo_kl: 0.01,
            ..UpdateReport::default()
        },
        rollout_s: 1.0,
        generated_tokens: 1000,
        generated_tokens_per_s: 1000.0 + step as f64,
        prompt_tokens_reused: 0,
        trained_tokens_per_s: 3000.0,
        env_turns: 40,
        env_steps: 60,
        search: Default::default(),
        validation: None,
        supervision: None,
        replay: None,
    };
    serde_json::to_string(&line).unwrap()
}

fn validation_line(step: u64) -> String {
    let val = Outcomes {
        episodes: 8,
        success_rate: step as f64 / 25.0,
        mean_return: step as f64 / 12.0,
        ..Outcomes::default()
    };
    serde_json::json!({"kind": "validation", "step": step, "version": step, "validation": val})
        .to_string()
}

/// Width and height from a PNG's IHDR chunk (bytes 16..24), after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn plot_run_writes_every_figure_from_real_step_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![validation_line(0)];
    for step in 0..20 {
        // A non-finite loss serializes as null and must leave a gap, not fail the plot.
        let loss = if step == 7 {
            f64::NAN
        } else {
            0.1 * step as f64
        };
        lines.push(step_line(step, loss));
        if step % 5 == 4 {
            lines.push(validation_line(step + 1));
        }
    }
    assert!(lines.iter().any(|l| l.contains("\"pg_loss\":null")));
    std::fs::write(dir.path().join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
    let files = plot_run(dir.path()).expect("plots");
    assert_eq!(files.len(), FIGURES.len());
    for (file, name) in files.iter().zip(FIGURES) {
        assert_eq!(file, &dir.path().join("plots").join(name));
        let (w, h) = png_size(file);
        assert!(w >= 800 && h >= 400, "{name}: {w}x{h} is too small to read");
    }
    // The four losses share one figure as a 2x2 grid.
    let (w, h) = png_size(&dir.path().join("plots/losses.png"));
    let (w1, h1) = png_size(&dir.path().join("plots/success.png"));
    assert_eq!((w, h), (2 * w1, 2 * h1));
}

#[test]
fn a_broken_line_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = [step_line(0, 0.1), step_line(1, 0.2), "{not json".into()].join("\n");
    std::fs::write(dir.path().join("metrics.jsonl"), text).unwrap();
    let err = plot_run(dir.path()).unwrap_err();
    assert!(matches!(err, PlotError::Record { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("metrics.jsonl line 3"), "{err}");
}

#[test]
fn a_step_line_without_a_field_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&step_line(0, 0.1)).unwrap();
    v["update"].as_object_mut().unwrap().remove("entropy");
    std::fs::write(dir.path().join("metrics.jsonl"), format!("{v}\n")).unwrap();
    let err = plot_run(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("line 1") && err.contains("/update/entropy"),
        "{err}"
    );
}

#[test]
fn a_run_without_training_steps_has_nothing_to_plot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("metrics.jsonl"), validation_line(0) + "\n").unwrap();
    assert!(matches!(plot_run(dir.path()), Err(PlotError::NoData(_))));
    assert!(matches!(
        plot_run(&dir.path().join("absent")),
        Err(PlotError::Io { .. })
    ));
}
