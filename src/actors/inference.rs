//! The inference actor: one thread that holds the current weights and their version, and serves
//! every search actor with dynamic batching (see [`super::batcher`]). It is fed by a bounded
//! crossbeam channel: this is the hot path, and a thread that sleeps until the next batch
//! deadline is simpler and faster here than an actix mailbox.
//!
//! Shutdown: when every sender is dropped the thread answers what is queued and exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

use super::batcher::{BatchLimits, Batchable, Batcher};
use crate::faults::{Dice, Supervision};
use crate::metrics as m;
use crate::policy::{GenRequest, Policy, Sampling, Weights};
use crate::search::{Candidate, SampleError, Sampler};
use crate::train::serial::candidate_of;

/// Candidates for one request, and the weights' version that produced them.
pub type Reply = Result<(Vec<Candidate>, u64), SampleError>;

/// A request to continue a prompt `n` times.
pub struct Generate {
    pub request: GenRequest,
    /// Where the answer goes; a dropped receiver (the asker died) is ignored.
    pub reply: Sender<Reply>,
}

impl Batchable for Generate {
    fn sequences(&self) -> usize {
        self.request.n
    }
    fn prompt_tokens(&self) -> usize {
        self.request.prompt.len()
    }
}

pub enum InferenceMsg {
    Generate(Generate),
    /// New weights from the learner; applied before the next batch.
    Publish {
        version: u64,
        weights: Weights,
    },
}

/// Counts kept by the inference thread for throughput reports (Prometheus has the same as
/// histograms; these are cheap to read in-process).
#[derive(Debug, Default)]
pub struct InferenceStats {
    pub batches: AtomicU64,
    pub sequences: AtomicU64,
    /// Nanoseconds spent generating.
    pub busy_ns: AtomicU64,
    /// Prompt tokens found in the prompt cache (across weight versions).
    pub prompt_tokens_reused: AtomicU64,
}

/// Injected slowness of the inference actor (`faults.inference_delay_ms` and `_jitter_ms`).
pub struct InferenceFaults {
    pub delay_ms: f64,
    pub jitter_ms: f64,
    pub dice: Dice,
    /// Where the peak queue depth is recorded.
    pub supervision: Arc<Supervision>,
}

/// Start the inference thread. Its queue holds at most `queue_bound` messages; senders wait.
pub fn spawn(
    mut policy: Policy,
    mut version: u64,
    limits: BatchLimits,
    queue_bound: usize,
    stats: Arc<InferenceStats>,
    mut faults: InferenceFaults,
) -> std::io::Result<(Sender<InferenceMsg>, JoinHandle<()>)> {
    let (tx, rx) = bounded::<InferenceMsg>(queue_bound);
    let handle = std::thread::Builder::new()
        .name("tsr-inference".into())
        .spawn(move || serve(&mut policy, &mut version, limits, &rx, &stats, &mut faults))?;
    Ok((tx, handle))
}

fn serve(
    policy: &mut Policy,
    version: &mut u64,
    limits: BatchLimits,
    rx: &Receiver<InferenceMsg>,
    stats: &InferenceStats,
    faults: &mut InferenceFaults,
) {
    let mut batcher: Batcher<Generate> = Batcher::new(limits);
    metrics::gauge!(m::POLICY_VERSION, "role" => "inference").set(*version as f64);
    loop {
        let msg = match batcher.deadline() {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
        };
        match msg {
            Ok(InferenceMsg::Generate(g)) => batcher.push(g, Instant::now()),
            Ok(InferenceMsg::Publish {
                version: v,
                weights,
            }) => {
                if let Err(e) = policy.load_weights(&weights) {
                    tracing::error!("inference could not load weights v{v}: {e}");
                } else {
                    *version = v;
                    metrics::gauge!(m::POLICY_VERSION, "role" => "inference").set(v as f64);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let rest = batcher.drain();
                if !rest.is_empty() {
                    run_batch(policy, *version, rest, stats);
                }
                return;
            }
        }
        // Drain what is already waiting before deciding, so a burst forms one batch.
        while let Ok(more) = rx.try_recv() {
            match more {
                InferenceMsg::Generate(g) => batcher.push(g, Instant::now()),
                InferenceMsg::Publish {
                    version: v,
                    weights,
                } => {
                    if policy.load_weights(&weights).is_ok() {
                        *version = v;
                    }
                }
            }
        }
        metrics::gauge!(m::QUEUE_DEPTH, "role" => "inference").set(batcher.len() as f64);
        faults.supervision.inference_queue(batcher.len());
        while let Some(batch) = batcher.take(Instant::now()) {
            if faults.delay_ms > 0.0 || faults.jitter_ms > 0.0 {
                std::thread::sleep(faults.dice.delay(faults.delay_ms, faults.jitter_ms));
            }
            run_batch(policy, *version, batch, stats);
        }
        metrics::gauge!(m::QUEUE_DEPTH, "role" => "inference").set(batcher.len() as f64);
    }
}

fn run_batch(policy: &Policy, version: u64, batch: Vec<Generate>, stats: &InferenceStats) {
    let started = Instant::now();
    let requests: Vec<GenRequest> = batch.iter().map(|g| g.request.clone()).collect();
    let sequences: usize = requests.iter().map(|r| r.n).sum();
    let reused_before = policy.prompt_tokens_reused();
    let result = policy.generate(&requests);
    let reused = policy.prompt_tokens_reused() - reused_before;
    metrics::counter!(m::PROMPT_TOKENS_REUSED).increment(reused);
    stats
        .prompt_tokens_reused
        .fetch_add(reused, Ordering::Relaxed);
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats
        .sequences
        .fetch_add(sequences as u64, Ordering::Relaxed);
    stats
        .busy_ns
        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    metrics::histogram!(m::INFERENCE_BATCH_SIZE).record(sequences as f64);
    metrics::histogram!(m::INFERENCE_LATENCY).record(started.elapsed().as_secs_f64());
    match result {
        Ok(outputs) => {
            for (g, out) in batch.into_iter().zip(outputs) {
                let _ = g.reply.send(Ok((
                    out.samples.into_iter().map(candidate_of).collect(),
                    version,
                )));
            }
        }
        Err(e) => {
            for g in batch {
                let _ = g.reply.send(Err(SampleError::Failed(e.to_string())));
            }
        }
    }
}

/// A search actor's sampler: sends requests to the inference actor and waits for the answer.
pub struct RemoteSampler {
    pub tx: Sender<InferenceMsg>,
    pub sampling: Sampling,
    pub max_new_tokens: usize,
    /// Version of the weights behind the most recent answer.
    pub version: u64,
    /// Give up on an answer after this long without the inference thread finishing a batch
    /// (it is stuck); a gone thread is noticed at once (the reply channel closes).
    pub timeout: Duration,
    /// The inference thread's counters: a finished batch shows that it is alive.
    pub progress: Arc<InferenceStats>,
}

/// How long one wait for an answer lasts before the inference thread's progress is checked.
const WAIT_SLICE: Duration = Duration::from_secs(1);

impl Sampler for RemoteSampler {
    fn sample(
        &mut self,
        prompt: &[u32],
        n: usize,
        seed: u64,
    ) -> Result<Vec<Candidate>, SampleError> {
        let mut answers = self.sample_each(&[(prompt, n, seed)])?;
        Ok(answers.pop().unwrap_or_default())
    }
    fn sample_each(
        &mut self,
        requests: &[(&[u32], usize, u64)],
    ) -> Result<Vec<Vec<Candidate>>, SampleError> {
        let mut answers = Vec::with_capacity(requests.len());
        for &(prompt, n, seed) in requests {
            let (reply, answer) = bounded(1);
            let request = self.request(prompt, n, seed);
            self.tx
                .send(InferenceMsg::Generate(Generate { request, reply }))
                .map_err(|_| SampleError::Closed)?;
            answers.push(answer);
        }
        let mut out = Vec::with_capacity(requests.len());
        for answer in answers {
            let (candidates, version) = self.wait(&answer)??;
            self.version = version;
            out.push(candidates);
        }
        Ok(out)
    }
    fn policy_version(&self) -> u64 {
        self.version
    }
}

impl RemoteSampler {
    /// The answer, waiting in slices and giving up once `timeout` worth of slices has passed
    /// with no batch finished. Slices are counted rather than the clock read, so a process
    /// paused for longer than the timeout (SIGSTOP, a suspended machine) loses one slice on
    /// resuming instead of failing its episodes as if the inference thread were stuck.
    fn wait(&self, answer: &Receiver<Reply>) -> Result<Reply, SampleError> {
        let slice = WAIT_SLICE.min(self.timeout).max(Duration::from_millis(1));
        let allowed = self.timeout.as_nanos().div_ceil(slice.as_nanos()).max(1);
        let (mut idle, mut seen) = (0u128, self.progress.batches.load(Ordering::Relaxed));
        loop {
            match answer.recv_timeout(slice) {
                Ok(reply) => return Ok(reply),
                Err(RecvTimeoutError::Disconnected) => return Err(SampleError::Closed),
                Err(RecvTimeoutError::Timeout) => {
                    let now = self.progress.batches.load(Ordering::Relaxed);
                    idle = if now == seen { idle + 1 } else { 0 };
                    seen = now;
                    if idle >= allowed {
                        return Err(SampleError::Closed);
                    }
                }
            }
        }
    }

    fn request(&self, prompt: &[u32], n: usize, seed: u64) -> GenRequest {
        GenRequest {
            prompt: prompt.to_vec(),
            n,
            max_new_tokens: self.max_new_tokens,
            sampling: self.sampling.clone(),
            stop_strings: Vec::new(),
            seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(timeout: Duration) -> (RemoteSampler, Receiver<InferenceMsg>) {
        let (tx, rx) = bounded(4);
        let sampler = RemoteSampler {
            tx,
            sampling: Sampling::default(),
            max_new_tokens: 4,
            version: 0,
            timeout,
            progress: Arc::new(InferenceStats::default()),
        };
        (sampler, rx)
    }

    /// A stand-in inference thread: finishes a batch every 5 ms for `busy`, then answers.
    fn answer_after(rx: Receiver<InferenceMsg>, progress: Arc<InferenceStats>, busy: Duration) {
        std::thread::spawn(move || {
            let Ok(InferenceMsg::Generate(g)) = rx.recv() else {
                return;
            };
            let start = Instant::now();
            while start.elapsed() < busy {
                std::thread::sleep(Duration::from_millis(5));
                progress.batches.fetch_add(1, Ordering::Relaxed);
            }
            let _ = g.reply.send(Ok((Vec::new(), 7)));
        });
    }

    #[test]
    fn a_busy_inference_thread_is_waited_for_beyond_the_timeout() {
        let (mut s, rx) = sampler(Duration::from_millis(30));
        answer_after(rx, s.progress.clone(), Duration::from_millis(200));
        assert!(s.sample(&[1, 2], 1, 0).is_ok());
        assert_eq!(s.policy_version(), 7);
    }

    #[test]
    fn a_stuck_or_gone_inference_thread_closes_the_sampler() {
        // Stuck: the request waits in the queue (`rx` is alive) and no batch ever finishes.
        let (mut s, _rx) = sampler(Duration::from_millis(30));
        let started = Instant::now();
        assert!(matches!(s.sample(&[1], 1, 0), Err(SampleError::Closed)));
        assert!(started.elapsed() >= Duration::from_millis(30));
        // Gone: the request is dropped unanswered.
        let (mut s, rx) = sampler(Duration::from_secs(600));
        std::thread::spawn(move || drop(rx.recv()));
        assert!(matches!(s.sample(&[1], 1, 0), Err(SampleError::Closed)));
    }
}
