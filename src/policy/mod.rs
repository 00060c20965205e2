//! The policy: tokenizer, Qwen2-style decoder, sampling, training and checkpoints.
