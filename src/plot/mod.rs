//! PNG learning curves from a run's `metrics.jsonl`: success, return, losses and throughput
//! against the training step. Text is drawn with a bundled DejaVu Sans through ab_glyph, so
//! plotting needs no system fonts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use serde_json::Value;

mod experiment;
pub use experiment::{RunCurve, plot_experiment};

/// The figures [`plot_run`] writes into `RUN_DIR/plots/`.
pub const FIGURES: [&str; 4] = ["success.png", "return.png", "losses.png", "throughput.png"];

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {message}")]
    Record {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}: no training steps to plot yet")]
    NoData(PathBuf),
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
}

/// One curve: a name for the legend and (step, value) points.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// One chart: a title, a y-axis label and its curves.
struct Panel {
    title: String,
    y_label: String,
    series: Vec<Series>,
}

/// Where each curve's value sits in a `metrics.jsonl` line, and which kind of line holds it.
struct Field {
    kind: &'static str,
    pointer: &'static str,
}

const TRAIN: &str = "train";
const VALIDATION: &str = "validation";

/// The parsed lines of a metrics file, kept with their line numbers for error messages.
struct Records {
    path: PathBuf,
    lines: Vec<(usize, Value)>,
}

impl Records {
    fn read(path: &Path) -> Result<Records, PlotError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlotError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut lines = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value = serde_json::from_str(line).map_err(|e| PlotError::Record {
                path: path.to_owned(),
                line: i + 1,
                message: format!("not JSON: {e}"),
            })?;
            lines.push((i + 1, value));
        }
        Ok(Records {
            path: path.to_owned(),
            lines,
        })
    }

    /// The curve of one field. A `null` value (a non-finite figure, which JSON cannot hold)
    /// leaves a gap; a line of the right kind without the field is an error.
    fn series(&self, name: &'static str, field: Field) -> Result<Series, PlotError> {
        let mut points = Vec::new();
        for (line, v) in &self.lines {
            if v.get("kind").and_then(Value::as_str) != Some(field.kind) {
                continue;
            }
            let bad = |message: String| PlotError::Record {
                path: self.path.clone(),
                line: *line,
                message,
            };
            let step = v
                .get("step")
                .and_then(Value::as_f64)
                .ok_or_else(|| bad("no number at /step".into()))?;
            match v.pointer(field.pointer) {
                Some(Value::Null) => {}
                Some(x) => {
                    let y = x
                        .as_f64()
                        .ok_or_else(|| bad(format!("{} is not a number", field.pointer)))?;
                    points.push((step, y));
                }
                None => return Err(bad(format!("no field {}", field.pointer))),
            }
        }
        Ok(Series {
            name: name.to_string(),
            points,
        })
    }
}

fn field(kind: &'static str, pointer: &'static str) -> Field {
    Field { kind, pointer }
}

/// The four figures' panels, read from the run's records.
fn figures(r: &Records) -> Result<Vec<(&'static str, Vec<Panel>)>, PlotError> {
    let panel = |title: &str, y_label: &str, series| Panel {
        title: title.to_string(),
        y_label: y_label.to_string(),
        series,
    };
    let success = panel(
        "Success rate",
        "success (0-1)",
        vec![
            r.series("train", field(TRAIN, "/train/success_rate"))?,
            r.series("validation", field(VALIDATION, "/validation/success_rate"))?,
        ],
    );
    let ret = panel(
        "Mean episode return",
        "return",
        vec![
            r.series("train", field(TRAIN, "/train/mean_return"))?,
            r.series("validation", field(VALIDATION, "/validation/mean_return"))?,
        ],
    );
    let one = |title, name, pointer| -> Result<Panel, PlotError> {
        Ok(panel(
            title,
            name,
            vec![r.series(name, field(TRAIN, pointer))?],
        ))
    };
    let losses = vec![
        one("Policy loss", "policy loss", "/update/pg_loss")?,
        one("Value loss", "value loss", "/update/value_loss")?,
        one("KL (old vs new policy)", "KL", "/update/ppo_kl")?,
        one("Token entropy", "entropy (nats)", "/update/entropy")?,
    ];
    let throughput = panel(
        "Throughput",
        "tokens per second",
        vec![
            r.series("generated", field(TRAIN, "/generated_tokens_per_s"))?,
            r.series("trained", field(TRAIN, "/trained_tokens_per_s"))?,
        ],
    );
    Ok(vec![
        (FIGURES[0], vec![success]),
        (FIGURES[1], vec![ret]),
        (FIGURES[2], losses),
        (FIGURES[3], vec![throughput]),
    ])
}

fn register_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
            .map_err(|_| "the bundled font is not a valid TrueType font".to_string())
    })
    .clone()
}

/// Write the learning curves of `run_dir/metrics.jsonl` into `run_dir/plots/`; returns the
/// files written.
pub fn plot_run(run_dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let metrics = run_dir.join("metrics.jsonl");
    let records = Records::read(&metrics)?;
    let has_train = records
        .lines
        .iter()
        .any(|(_, v)| v.get("kind").and_then(Value::as_str) == Some(TRAIN));
    if !has_train {
        return Err(PlotError::NoData(metrics));
    }
    let out = run_dir.join("plots");
    std::fs::create_dir_all(&out).map_err(|source| PlotError::Io {
        path: out.clone(),
        source,
    })?;
    let mut written = Vec::new();
    for (file, panels) in figures(&records)? {
        let path = out.join(file);
        draw_figure(&path, &panels)?;
        written.push(path);
    }
    Ok(written)
}

/// Colours that stay apart for the colour-blind (Okabe-Ito).
const PALETTE: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

/// Draw `panels` into the PNG at `path`; a drawing failure names the file.
fn draw_figure(path: &Path, panels: &[Panel]) -> Result<(), PlotError> {
    draw_panels(path, panels).map_err(|message| PlotError::Draw {
        path: path.to_owned(),
        message,
    })
}

fn draw_panels(path: &Path, panels: &[Panel]) -> Result<(), String> {
    register_font()?;
    let cols = if panels.len() > 1 { 2 } else { 1 };
    let rows = panels.len().div_ceil(cols);
    let size = (900 * cols as u32, 500 * rows as u32);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    for (area, panel) in root.split_evenly((rows, cols)).iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Curves with at most this many points get a marker on each.
const MAX_MARKED: usize = 40;

/// A y tick: at most four decimals, no trailing zeros, and never "-0".
fn tick(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Axis range with a margin, never empty (a flat curve still gets a visible band).
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi - lo > 1e-9 {
        (hi - lo) * 0.05
    } else {
        (hi.abs() * 0.1).max(0.1)
    };
    let (a, b) = (lo - pad, hi + pad);
    // Values near f64::MAX (a diverged loss) overflow the span; plotting an infinite range
    // would never finish its ticks.
    if (b - a).is_finite() {
        (a, b)
    } else {
        (0.0, 1.0)
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), String> {
    let finite = |s: &Series| {
        s.points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .copied()
            .collect::<Vec<_>>()
    };
    let curves: Vec<(&str, Vec<(f64, f64)>)> = panel
        .series
        .iter()
        .map(|s| (s.name.as_str(), finite(s)))
        .collect();
    let all = curves.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1) = range(all.clone().map(|p| p.0));
    let (y0, y1) = range(all.map(|p| p.1));
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title.as_str(), (FONT, 26))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("training step")
        .y_desc(panel.y_label.as_str())
        // Steps are whole numbers: no more labels than steps, so none repeats.
        .x_labels(((x1 - x0).floor() as usize + 1).clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| tick(*y))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for (i, (name, points)) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let style = ShapeStyle::from(&color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        // Markers show sparse points (a validation every few steps, or only one) that a line
        // alone would hide; on long curves they would only blur the line.
        if points.len() <= MAX_MARKED {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
    }
    if curves.len() > 1 {
        chart
            .configure_series_labels()
            .label_font((FONT, 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn axis_ranges_are_finite_and_non_empty_whatever_the_values() {
        for values in [
            vec![1.75e308, -1.75e308],
            vec![f64::MAX],
            vec![f64::NAN, 2.0],
            vec![],
            vec![0.5, 0.5],
        ] {
            let (lo, hi) = range(values.iter().copied());
            assert!(
                lo.is_finite() && hi.is_finite() && hi > lo,
                "{values:?}: {lo} {hi}"
            );
            assert!((hi - lo).is_finite(), "{values:?}");
        }
        assert_eq!(range([0.0, 1.0].into_iter()), (-0.05, 1.05));
    }
}
