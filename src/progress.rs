//! The console while a run trains: an indicatif progress bar (step, success, return, tokens/s,
//! ETA) when stderr is a terminal, otherwise a one-line status every `status_interval_s` (logs
//! and CI output stay readable); tracing logs filtered by `RUST_LOG` (default `info`) that never
//! tear the bar.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::train::driver::StepLine;

/// The bar being drawn, if any: log lines are printed "above" it (see [`SuspendingWriter`]).
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Install the tracing subscriber: `RUST_LOG` filter (default `info`), written to stderr
/// around the progress bar.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| SuspendingWriter(Vec::new()))
        .init();
}

/// Buffers one log event and writes it to stderr while the bar is hidden, so the bar is
/// redrawn below the line instead of being overwritten by it.
pub struct SuspendingWriter(Vec<u8>);

impl Write for SuspendingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SuspendingWriter {
    fn drop(&mut self) {
        let text = std::mem::take(&mut self.0);
        let emit = || {
            let _ = std::io::stderr().write_all(&text);
        };
        let bar = ACTIVE_BAR.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(emit),
            None => emit(),
        }
    }
}

/// The figures the console shows, as of the last finished step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Steps finished (the next step's index).
    pub done: u64,
    pub total: u64,
    pub success: f64,
    pub mean_return: f64,
    pub tokens_per_s: f64,
    /// Estimated time to the last step; `None` until a step has finished in this process.
    pub eta: Option<Duration>,
}

/// `status step 12/200 (6%) success 12.5% return -0.42 gen 1234 tok/s elapsed 1m03s eta 17m02s`
pub fn status_line(s: &Snapshot, elapsed: Duration) -> String {
    let pct = if s.total > 0 {
        100.0 * s.done as f64 / s.total as f64
    } else {
        0.0
    };
    let eta = s.eta.map_or_else(|| "?".to_string(), clock);
    format!(
        "status step {}/{} ({pct:.0}%) success {:.1}% return {:.2} gen {:.0} tok/s elapsed {} eta {eta}",
        s.done,
        s.total,
        100.0 * s.success,
        s.mean_return,
        s.tokens_per_s,
        clock(elapsed),
    )
}

/// `1h02m03s`, `4m05s`, `6s`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

/// Shared between the training thread and the status printer.
struct Shared {
    snapshot: Mutex<(Snapshot, bool)>,
    wake: Condvar,
}

/// The console for one run. Dropping it (or [`Progress::finish`]) stops the bar or printer.
pub struct Progress {
    bar: Option<ProgressBar>,
    shared: Arc<Shared>,
    printer: Option<std::thread::JoinHandle<()>>,
    started: Instant,
    first: u64,
}

impl Progress {
    /// Start at step `first` of `total`; `status_interval_s` paces the non-terminal status.
    pub fn start(first: u64, total: u64, status_interval_s: f64) -> Progress {
        metrics::gauge!(crate::metrics::TRAIN_STEPS_PLANNED).set(total as f64);
        let snapshot = Snapshot {
            done: first,
            total,
            ..Snapshot::default()
        };
        let shared = Arc::new(Shared {
            snapshot: Mutex::new((snapshot, false)),
            wake: Condvar::new(),
        });
        let started = Instant::now();
        let (bar, printer) = if std::io::stderr().is_terminal() {
            (Some(new_bar(first, total)), None)
        } else {
            let interval = Duration::from_secs_f64(status_interval_s.max(0.1));
            (None, spawn_printer(shared.clone(), interval, started))
        };
        if let (Some(bar), Ok(mut active)) = (&bar, ACTIVE_BAR.lock()) {
            *active = Some(bar.clone());
        }
        Progress {
            bar,
            shared,
            printer,
            started,
            first,
        }
    }

    /// A training step finished.
    pub fn on_step(&mut self, line: &StepLine) {
        let Ok(mut guard) = self.shared.snapshot.lock() else {
            return;
        };
        let s = &mut guard.0;
        s.done = line.step + 1;
        s.success = line.train.success_rate;
        s.mean_return = line.train.mean_return;
        s.tokens_per_s = line.generated_tokens_per_s;
        let here = s.done.saturating_sub(self.first);
        if here > 0 {
            let per_step = self.started.elapsed().as_secs_f64() / here as f64;
            let left = s.total.saturating_sub(s.done) as f64;
            s.eta = Some(Duration::from_secs_f64(per_step * left));
        }
        if let Some(bar) = &self.bar {
            bar.set_position(s.done);
            bar.set_message(format!(
                "success {:>5.1}% return {:>6.2} gen {:>6.0} tok/s",
                100.0 * s.success,
                s.mean_return,
                s.tokens_per_s
            ));
        }
    }

    /// Stop the bar or printer; the printer writes a last status line.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
            if let Ok(mut active) = ACTIVE_BAR.lock() {
                *active = None;
            }
        }
        if let Ok(mut guard) = self.shared.snapshot.lock() {
            guard.1 = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.printer.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

fn new_bar(first: u64, total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} step {pos}/{len} [{bar:30.cyan/blue}] {msg} | {elapsed} elapsed, ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_position(first);
    bar.reset_eta();
    bar.set_message("first step running");
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Print the status every `interval` until told to stop, then once more.
fn spawn_printer(
    shared: Arc<Shared>,
    interval: Duration,
    started: Instant,
) -> Option<std::thread::JoinHandle<()>> {
    let run = move || {
        let Ok(mut guard) = shared.snapshot.lock() else {
            return;
        };
        loop {
            let deadline = Instant::now() + interval;
            while !guard.1 && Instant::now() < deadline {
                let wait = deadline.saturating_duration_since(Instant::now());
                guard = match shared.wake.wait_timeout(guard, wait) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
            eprintln!("{}", status_line(&guard.0, started.elapsed()));
            if guard.1 {
                return;
            }
        }
    };
    std::thread::Builder::new()
        .name("tsr-status".into())
        .spawn(run)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_like_a_stopwatch() {
        assert_eq!(clock(Duration::from_secs(6)), "6s");
        assert_eq!(clock(Duration::from_secs(4 * 60 + 5)), "4m05s");
        assert_eq!(clock(Duration::from_secs(3600 + 2 * 60 + 3)), "1h02m03s");
    }

    #[test]
    fn status_line_shows_step_success_return_rate_and_eta() {
        let s = Snapshot {
            done: 12,
            total: 200,
            success: 0.125,
            mean_return: -0.42,
            tokens_per_s: 1234.4,
            eta: Some(Duration::from_secs(17 * 60 + 2)),
        };
        let line = status_line(&s, Duration::from_secs(63));
        assert_eq!(
            line,
            "status step 12/200 (6%) success 12.5% return -0.42 gen 1234 tok/s elapsed 1m03s eta 17m02s"
        );
        let unknown = status_line(&Snapshot::default(), Duration::ZERO);
        assert!(
            unknown.contains("step 0/0 (0%)") && unknown.ends_with("eta ?"),
            "{unknown}"
        );
    }

    #[test]
    fn eta_comes_from_this_process_steps_only() {
        // A resumed run that started at step 50 of 100 and did 10 steps in 100 s has 40 left:
        // 400 s, not a pace diluted by the 50 steps an earlier process ran.
        let mut p = Progress::start(50, 100, 3600.0);
        p.started = Instant::now() - Duration::from_secs(100);
        let line = StepLine {
            kind: "train",
            step: 59,
            version: 60,
            wall_s: 0.0,
            train: crate::train::plan::Outcomes {
                success_rate: 0.25,
                mean_return: 0.5,
                ..Default::default()
            },
            update: Default::default(),
            rollout_s: 1.0,
            generated_tokens: 10,
            generated_tokens_per_s: 10.0,
            prompt_tokens_reused: 0,
            trained_tokens_per_s: 5.0,
            env_turns: 1,
            env_steps: 1,
            search: Default::default(),
            validation: None,
            supervision: None,
            replay: None,
        };
        p.on_step(&line);
        let s = p.shared.snapshot.lock().unwrap().0.clone();
        assert_eq!((s.done, s.success, s.mean_return), (60, 0.25, 0.5));
        let eta = s.eta.expect("an estimate after a step").as_secs_f64();
        assert!((eta - 400.0).abs() < 1.0, "eta {eta}");
        p.finish();
    }
}
