//! Dynamic batching for the inference actor, as a pure object: requests queue up, and a batch
//! goes when it reaches its size or token limit, or when its oldest request has waited
//! `max_wait`. Unit tests drive it with explicit times; the actor only feeds it and sleeps until
//! `deadline()`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Limits of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Sequences per batch (a request for n candidates counts n).
    pub max_sequences: usize,
    /// Prompt tokens per batch (a shared prompt counts once).
    pub max_tokens: usize,
    pub max_wait: Duration,
}

/// Something that can be batched.
pub trait Batchable {
    fn sequences(&self) -> usize;
    fn prompt_tokens(&self) -> usize;
}

#[derive(Debug)]
pub struct Batcher<R> {
    limits: BatchLimits,
    /// Requests in arrival order, with the time each arrived.
    queue: VecDeque<(Instant, R)>,
}

impl<R: Batchable> Batcher<R> {
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            queue: VecDeque::new(),
        }
    }

    pub fn push(&mut self, request: R, now: Instant) {
        self.queue.push_back((now, request));
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// When the oldest request's wait runs out (`None` when the queue is empty).
    pub fn deadline(&self) -> Option<Instant> {
        self.queue.front().map(|(t, _)| *t + self.limits.max_wait)
    }

    /// The requests that fit in one batch, counted from the front.
    fn fitting(&self) -> (usize, bool) {
        let (mut seqs, mut toks) = (0usize, 0usize);
        for (i, (_, r)) in self.queue.iter().enumerate() {
            let (s, t) = (seqs + r.sequences(), toks + r.prompt_tokens());
            // A single oversized request still goes, alone.
            if i > 0 && (s > self.limits.max_sequences || t > self.limits.max_tokens) {
                return (i, true);
            }
            (seqs, toks) = (s, t);
            if seqs >= self.limits.max_sequences || toks >= self.limits.max_tokens {
                return (i + 1, true);
            }
        }
        (self.queue.len(), false)
    }

    /// A batch, if one is due at `now`: full, or its oldest request has waited long enough.
    pub fn take(&mut self, now: Instant) -> Option<Vec<R>> {
        let (n, full) = self.fitting();
        let due = self.deadline().is_some_and(|d| now >= d);
        if n == 0 || !(full || due) {
            return None;
        }
        Some(self.queue.drain(..n).map(|(_, r)| r).collect())
    }

    /// Everything still queued (shutdown).
    pub fn drain(&mut self) -> Vec<R> {
        self.queue.drain(..).map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Req(usize, usize);
    impl Batchable for Req {
        fn sequences(&self) -> usize {
            self.0
        }
        fn prompt_tokens(&self) -> usize {
            self.1
        }
    }

    fn limits() -> BatchLimits {
        BatchLimits {
            max_sequences: 4,
            max_tokens: 100,
            max_wait: Duration::from_millis(10),
        }
    }

    #[test]
    fn waits_until_full_or_due() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits());
        b.push(Req(1, 10), t0);
        assert!(b.take(t0).is_none(), "not full and not due");
        assert!(b.take(t0 + Duration::from_millis(9)).is_none());
        assert_eq!(
            b.take(t0 + Duration::from_millis(10)).map(|v| v.len()),
            Some(1)
        );
        assert!(b.is_empty());
    }

    #[test]
    fn full_batches_go_at_once_and_respect_the_size_limit() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits());
        for _ in 0..3 {
            b.push(Req(2, 10), t0);
        }
        let batch = b.take(t0).expect("full");
        assert_eq!(batch.iter().map(|r| r.0).sum::<usize>(), 4);
        assert_eq!(b.len(), 1, "the third request waits for the next batch");
        assert!(b.take(t0).is_none());
    }

    #[test]
    fn token_limit_and_oversized_requests() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits());
        b.push(Req(1, 60), t0);
        b.push(Req(1, 60), t0);
        assert_eq!(
            b.take(t0).map(|v| v.len()),
            Some(1),
            "120 tokens do not fit in 100"
        );
        b.push(Req(9, 500), t0);
        assert_eq!(
            b.take(t0).map(|v| v.len()),
            Some(1),
            "leftover 60-token request goes once the big one is behind it"
        );
        assert_eq!(
            b.take(t0).map(|v| v.len()),
            Some(1),
            "an oversized request still goes, alone"
        );
    }
}
