//! PNG learning curves of a `tsr experiment` grid: one figure per (task, algorithm) with the
//! validation success of every search strategy, averaged over seeds at each validation step,
//! next to the spread over seeds (the standard deviation), which TSR is meant to shrink.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Panel, PlotError, Series, draw_figure};

/// One run's validation curve, as the experiment runner reports it.
pub struct RunCurve<'a> {
    pub task: &'a str,
    pub algo: &'a str,
    pub search: &'a str,
    /// (step, validation success) in step order.
    pub curve: &'a [(u64, f64)],
}

/// One run's validation curve: (step, success) in step order.
type Curve = [(u64, f64)];
/// (task, algorithm) -> (search, its seeds' curves) in first-seen order.
type Cells<'a> = BTreeMap<(&'a str, &'a str), Vec<(&'a str, Vec<&'a Curve>)>>;
/// Plotted points (x, y).
type Points = Vec<(f64, f64)>;

/// Mean and unbiased standard deviation over seeds at every step that every seed validated
/// (a step missing from one seed's curve would bias the mean toward the others).
fn over_seeds(curves: &[&Curve]) -> (Points, Points) {
    let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for curve in curves {
        for &(step, success) in curve.iter() {
            at.entry(step).or_default().push(success);
        }
    }
    let (mut mean, mut std) = (Vec::new(), Vec::new());
    for (step, xs) in at.into_iter().filter(|(_, xs)| xs.len() == curves.len()) {
        mean.push((step as f64, crate::algo::mean(&xs)));
        std.push((step as f64, crate::algo::unbiased_std(&xs)));
    }
    (mean, std)
}

/// Write `curves-{task}-{algo}.png` into `out_dir` for every (task, algorithm) of the grid;
/// returns the files written, in (task, algorithm) order.
pub fn plot_experiment(out_dir: &Path, runs: &[RunCurve]) -> Result<Vec<PathBuf>, PlotError> {
    // (task, algo) -> search -> curves of its seeds; searches keep their first-seen order so
    // colours follow the experiment file's list.
    let mut cells: Cells = BTreeMap::new();
    for run in runs {
        let searches = cells.entry((run.task, run.algo)).or_default();
        match searches.iter_mut().find(|(s, _)| *s == run.search) {
            Some((_, curves)) => curves.push(run.curve),
            None => searches.push((run.search, vec![run.curve])),
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|source| PlotError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for ((task, algo), searches) in cells {
        let (mut means, mut stds) = (Vec::new(), Vec::new());
        for (search, curves) in &searches {
            let (mean, std) = over_seeds(curves);
            let name = format!("{search} ({} seeds)", curves.len());
            means.push(Series {
                name: name.clone(),
                points: mean,
            });
            stds.push(Series { name, points: std });
        }
        let panels = [
            Panel {
                title: format!("{task} · {algo}: validation success, mean over seeds"),
                y_label: "success (0-1)".into(),
                series: means,
            },
            Panel {
                title: format!("{task} · {algo}: spread over seeds"),
                y_label: "std of success".into(),
                series: stds,
            },
        ];
        let path = out_dir.join(format!("curves-{task}-{algo}.png"));
        draw_figure(&path, &panels)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_spread_use_only_steps_every_seed_reached() {
        let a: &[(u64, f64)] = &[(0, 0.2), (10, 0.4), (20, 0.6)];
        let b: &[(u64, f64)] = &[(0, 0.4), (10, 0.8)];
        let (mean, std) = over_seeds(&[a, b]);
        assert_eq!(mean.len(), 2, "step 20 is missing from one seed");
        assert!((mean[0].1 - 0.3).abs() < 1e-12 && (mean[1].1 - 0.6).abs() < 1e-12);
        assert!((std[1].1 - (0.08f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn one_figure_per_task_and_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let c: &[(u64, f64)] = &[(0, 0.1), (5, 0.3)];
        let runs: Vec<RunCurve> = [
            ("fl", "grpo", "none"),
            ("fl", "grpo", "beam"),
            ("sk", "ppo", "none"),
        ]
        .iter()
        .flat_map(|&(task, algo, search)| {
            (0..2).map(move |_| RunCurve {
                task,
                algo,
                search,
                curve: c,
            })
        })
        .collect();
        let files = plot_experiment(dir.path(), &runs).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["curves-fl-grpo.png", "curves-sk-ppo.png"]);
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", f.display());
        }
    }
}
