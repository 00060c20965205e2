//! Learning-rate schedules over the run's updates. A constant rate keeps the policy moving by
//! the same amount forever; decaying it lets a policy that has found its mode settle instead of
//! jittering around it, which is what a fixed budget of updates wants at its end.

/// The shape of the schedule (`model.lr_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    Constant,
    Linear,
    Cosine,
}

impl ScheduleKind {
    pub const NAMES: &'static [&'static str] = &["constant", "linear", "cosine"];

    pub fn parse(name: &str) -> Option<ScheduleKind> {
        match name {
            "constant" => Some(ScheduleKind::Constant),
            "linear" => Some(ScheduleKind::Linear),
            "cosine" => Some(ScheduleKind::Cosine),
            _ => None,
        }
    }
}

/// Learning rates as a function of the update index: `warmup` updates rising linearly to the
/// base rates, then a decay to `min_ratio` of them at update `total` (held after it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub kind: ScheduleKind,
    /// Actor and critic rates the schedule scales.
    pub lr: f64,
    pub critic_lr: f64,
    pub warmup: u64,
    /// Updates over which the rate decays (the run's `train.steps`).
    pub total: u64,
    pub min_ratio: f64,
}

impl LrSchedule {
    /// A schedule that never changes the optimizer's rates.
    pub fn constant() -> LrSchedule {
        LrSchedule {
            kind: ScheduleKind::Constant,
            lr: 0.0,
            critic_lr: 0.0,
            warmup: 0,
            total: 1,
            min_ratio: 1.0,
        }
    }

    pub fn is_constant(&self) -> bool {
        self.kind == ScheduleKind::Constant && self.warmup == 0
    }

    /// Multiplier of the base rates at update `step` (0-based).
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup {
            return (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f64 / span as f64).min(1.0);
        let shape = match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => 1.0 - progress,
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        self.min_ratio + (1.0 - self.min_ratio) * shape
    }

    /// (actor, critic) rates at update `step`.
    pub fn rates(&self, step: u64) -> (f64, f64) {
        let f = self.factor(step);
        (self.lr * f, self.critic_lr * f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, warmup: u64) -> LrSchedule {
        LrSchedule {
            kind,
            lr: 1e-3,
            critic_lr: 1e-2,
            warmup,
            total: 100,
            min_ratio: 0.1,
        }
    }

    #[test]
    fn decays_from_the_base_rate_to_the_floor_and_holds_it() {
        for kind in [ScheduleKind::Linear, ScheduleKind::Cosine] {
            let s = schedule(kind, 0);
            assert_eq!(s.factor(0), 1.0);
            assert!((s.factor(100) - 0.1).abs() < 1e-12);
            assert!((s.factor(1000) - 0.1).abs() < 1e-12);
            let mid = s.factor(50);
            assert!((mid - 0.55).abs() < 1e-12, "{kind:?} halfway: {mid}");
            let (a, c) = s.rates(50);
            assert!((a - 1e-3 * mid).abs() < 1e-15 && (c - 1e-2 * mid).abs() < 1e-15);
        }
        // Cosine stays high longer than linear early on.
        let (lin, cos) = (
            schedule(ScheduleKind::Linear, 0),
            schedule(ScheduleKind::Cosine, 0),
        );
        assert!(cos.factor(20) > lin.factor(20));
    }

    #[test]
    fn warmup_rises_linearly_then_the_decay_starts_from_the_base() {
        let s = schedule(ScheduleKind::Linear, 10);
        assert!((s.factor(0) - 0.1).abs() < 1e-12);
        assert!((s.factor(4) - 0.5).abs() < 1e-12);
        assert_eq!(s.factor(10), 1.0);
        assert!(s.factor(11) < 1.0);
        assert_eq!(schedule(ScheduleKind::Constant, 0).factor(77), 1.0);
    }
}
