//! PPO, GRPO, advantages and instance filtering: pure math, no channels.
