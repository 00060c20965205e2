//! Keep freed tensor buffers inside the process.
//!
//! candle allocates a fresh buffer for every op result. glibc serves buffers above its mmap
//! threshold with `mmap` and returns them on free, so every large op pays page faults and
//! zeroing of new pages (13% of a tiny model's training step under perf). Raising the
//! thresholds makes freed buffers reusable; measured 20% faster training steps.

/// Raise glibc's mmap and trim thresholds (process-wide; call once at startup, before
/// threads start). No effect on other C libraries.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes allocator tunables; both values are within glibc's
        // accepted ranges (the mmap threshold may be at most 32 MiB on 64-bit).
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, 1 << 30);
        }
    }
}
