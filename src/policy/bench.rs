//! `tsr bench model`: speed of the policy.
