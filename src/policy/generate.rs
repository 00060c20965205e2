//! Batched generation with forking: each request's prompt is prefilled once and its `n`
//! samples decode from that shared cache.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::grammar::{ReplyGrammar, Step};
use super::infer::SeqCache;
use super::sampling::{logprob_of, sample};
use super::{Policy, PolicyError, Sampling};

/// One prompt to continue `n` times.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// Prompt ids (chat template already applied).
    pub prompt: Vec<u32>,
    /// Samples to draw from this prompt, all sharing its prefill.
    pub n: usize,
    /// New tokens per sample at most; 0 uses `[model] max_new_tokens`.
    pub max_new_tokens: usize,
    /// How tokens are drawn.
    pub sampling: Sampling,
    /// A sample stops once its decoded text contains one of these.
    pub stop_strings: Vec<String>,
    /// Sample i draws from ChaCha8(seed, stream i), whatever else is in the batch.
    pub seed: u64,
}

/// Why a sample ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Finish {
    /// Produced the EOS id (`<|im_end|>`), which is the last token.
    Eos,
    /// Its text came to contain a stop string; the token completing it is the last token.
    Stop,
    /// Reached its token limit.
    Length,
}

/// One continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// New token ids, including the EOS when hit.
    pub tokens: Vec<u32>,
    /// Model log-prob of each token at temperature 1 without truncation, i.e. what
    /// `forward_train` computes for it (usable as PPO's old log-probs).
    pub logprobs: Vec<f32>,
    pub finish: Finish,
}

/// The `n` samples of one request, sample i at index i.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOutput {
    pub samples: Vec<Sample>,
}

/// A sample being decoded.
struct Row {
    req: usize,
    cache: SeqCache,
    rng: ChaCha8Rng,
    tokens: Vec<u32>,
    /// How many of `tokens` the cache holds: a grammar's forced tokens are appended without a
    /// forward of their own and enter the cache with the next step's input.
    fed: usize,
    logprobs: Vec<f32>,
    finish: Option<Finish>,
    /// Position in the reply grammar, when the policy has one.
    node: Option<Step>,
}

impl Policy {
    /// Generate for every request in one batch.
    ///
    /// Reproducibility: a sample's draws come only from its own RNG and its attention reads
    /// only its own cache, so its tokens do not depend on what else is in the batch except
    /// through float rounding in the shared matmuls (gemm may block rows differently for
    /// different batch sizes, and the forks of one prompt present in a step attend over the
    /// prompt in one matmul, moving logits by ~1e-6 relative). That changes a token only
    /// when a uniform draw falls within that distance of a boundary of the cumulative
    /// distribution (or two greedy logits tie within it). A prompt that extends one cached by
    /// an earlier call (see [`super::prompt_cache`]) is prefilled on top of that cache, which
    /// rounds differently from a whole-prompt prefill by the same order.
    pub fn generate(&self, reqs: &[GenRequest]) -> Result<Vec<GenOutput>, PolicyError> {
        let w = self.infer_weights()?;
        let eos = self.tokenizer.eos_id();
        let mut prompts = Vec::with_capacity(reqs.len());
        let mut limits = Vec::with_capacity(reqs.len());
        for (i, r) in reqs.iter().enumerate() {
            let max_new = if r.max_new_tokens == 0 {
                self.limits.max_new_tokens
            } else {
                r.max_new_tokens
            };
            if r.prompt.is_empty() {
                return Err(PolicyError::Input(format!(
                    "request {i} has an empty prompt"
                )));
            }
            let limit = self.limits.context_limit;
            if max_new >= limit {
                return Err(PolicyError::Input(format!(
                    "request {i}: max_new_tokens {max_new} leaves no room within the context limit {limit}"
                )));
            }
            let room = limit - max_new;
            let prompt = if r.prompt.len() <= room {
                r.prompt.as_slice()
            } else if self.limits.truncate_long_prompts {
                &r.prompt[r.prompt.len() - room..]
            } else {
                return Err(PolicyError::PromptTooLong {
                    request: i,
                    len: r.prompt.len(),
                    limit: room,
                });
            };
            self.check_ids(prompt.iter().copied())?;
            prompts.push(prompt);
            limits.push(max_new);
        }
        // A prompt that extends one prefilled earlier (the same episode's previous turn) starts
        // from that cache and prefills only the new tokens.
        let mut store = self.prompt_store();
        let (mut prompt_caches, feeds): (Vec<SeqCache>, Vec<&[u32]>) = prompts
            .iter()
            .map(|p| match store.lookup(p) {
                Some((prefix, len)) => (SeqCache::forked(&prefix, len), &p[len..]),
                None => (SeqCache::default(), *p),
            })
            .unzip();
        let logits = w.forward(&mut prompt_caches, &feeds, false)?;
        let v = self.arch.vocab_size;
        let mut rows = Vec::new();
        for (ri, (req, cache)) in reqs.iter().zip(prompt_caches).enumerate() {
            let len = cache.len();
            let prefix = cache.flatten().freeze();
            store.insert(prompts[ri], prefix.clone());
            for i in 0..req.n {
                let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
                rng.set_stream(i as u64);
                let mut row = Row {
                    req: ri,
                    cache: SeqCache::forked(&prefix, len),
                    rng,
                    tokens: Vec::new(),
                    fed: 0,
                    logprobs: Vec::new(),
                    finish: None,
                    node: self.reply_grammar().map(|g| Step::At(g.root())),
                };
                self.push_token(
                    &mut row,
                    &logits[ri * v..(ri + 1) * v],
                    req,
                    limits[ri],
                    eos,
                );
                rows.push(row);
            }
        }
        drop(store);
        loop {
            let active: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].finish.is_none())
                .collect();
            if active.is_empty() {
                break;
            }
            let mut caches: Vec<SeqCache> = active
                .iter()
                .map(|&i| std::mem::take(&mut rows[i].cache))
                .collect();
            // Each active row has at least its last sampled token to feed, plus any forced
            // tokens appended after it.
            let toks: Vec<&[u32]> = active
                .iter()
                .map(|&i| &rows[i].tokens[rows[i].fed..])
                .collect();
            let logits = w.forward(&mut caches, &toks, false)?;
            for (j, (&i, cache)) in active.iter().zip(caches).enumerate() {
                let row = &mut rows[i];
                row.cache = cache;
                row.fed = row.tokens.len();
                let req = &reqs[row.req];
                self.push_token(row, &logits[j * v..(j + 1) * v], req, limits[row.req], eos);
            }
        }
        let mut out: Vec<GenOutput> = reqs
            .iter()
            .map(|_| GenOutput {
                samples: Vec::new(),
            })
            .collect();
        for row in rows {
            out[row.req].samples.push(super::Sample {
                tokens: row.tokens,
                logprobs: row.logprobs,
                finish: row.finish.unwrap_or(Finish::Length),
            });
        }
        Ok(out)
    }

    fn push_token(
        &self,
        row: &mut Row,
        logits: &[f32],
        req: &GenRequest,
        max_new: usize,
        eos: u32,
    ) {
        let (tok, logp) = match (self.reply_grammar(), row.node) {
            (Some(g), Some(Step::At(node))) => {
                let (tok, logp) = constrained_sample(g, node, logits, &req.sampling, &mut row.rng);
                row.node = Some(g.step(node, tok));
                (tok, logp)
            }
            _ => {
                let tok = sample(logits, &req.sampling, &mut row.rng);
                (tok, logprob_of(logits, tok))
            }
        };
        self.append(row, tok, logp, req, max_new, eos);
        // Tokens the grammar forces next need no logits: take them now (no draw, log-prob 0,
        // as `constrained_sample` would) and let the next step feed them all at once.
        while let (None, Some(g), Some(Step::At(node))) =
            (row.finish, self.reply_grammar(), row.node)
        {
            if g.branching(node) != 1 {
                break;
            }
            let Some(tok) = g.allowed(node).next() else {
                break;
            };
            row.node = Some(g.step(node, tok));
            self.append(row, tok, 0.0, req, max_new, eos);
        }
    }

    /// Add one token to `row` and decide whether it has finished.
    fn append(
        &self,
        row: &mut Row,
        tok: u32,
        logp: f32,
        req: &GenRequest,
        max_new: usize,
        eos: u32,
    ) {
        row.tokens.push(tok);
        row.logprobs.push(logp);
        row.finish = if tok == eos {
            Some(Finish::Eos)
        } else if !req.stop_strings.is_empty() && {
            let text = self.tokenizer.decode(&row.tokens);
            req.stop_strings
                .iter()
                .any(|s| !s.is_empty() && text.contains(s.as_str()))
        } {
            Some(Finish::Stop)
        } else if row.tokens.len() >= max_new {
            Some(Finish::Length)
        } else {
            None
        };
        if row.finish.is_some() {
            // Free the per-sample cache early; the shared prefix lives on while others use it.
            row.cache = SeqCache::default();
        }
    }
}

/// Draw among the tokens `grammar` allows after `node`, with its log-prob under the allowed
/// tokens only (what `forward_train_constrained` computes): a forced token (the only one
/// allowed) is taken without a draw, log-prob 0; otherwise the others' logits are set to -inf
/// before sampling, so temperature, top-k and top-p apply among the allowed tokens. A node with
/// nothing allowed (past the end of a reply; decoding stops on the end-of-turn token before
/// that) samples freely.
fn constrained_sample(
    grammar: &ReplyGrammar,
    node: usize,
    logits: &[f32],
    s: &Sampling,
    rng: &mut ChaCha8Rng,
) -> (u32, f32) {
    let mut allowed = grammar.allowed(node);
    match grammar.branching(node) {
        0 => {
            let tok = sample(logits, s, rng);
            (tok, logprob_of(logits, tok))
        }
        1 => (allowed.next().unwrap_or(0), 0.0),
        _ => {
            let mut masked = vec![f32::NEG_INFINITY; logits.len()];
            for t in allowed {
                if let Some(z) = logits.get(t as usize) {
                    masked[t as usize] = *z;
                }
            }
            let tok = sample(&masked, s, rng);
            (tok, logprob_of(&masked, tok))
        }
    }
}
