//! Elementwise loops compiled for several x86 feature levels and picked at run time
//! (`multiversion`). The crate is built for baseline x86-64 so the binary runs on any x86 CPU;
//! these loops (the exponentials of softmax and SiLU) were a fifth of a training step as scalar
//! libm calls, and vectorise once `exp` is plain arithmetic the compiler can see.

use multiversion::multiversion;

/// `e^x` in f32: Cephes' `expf` (range reduction by ln 2, degree-6 polynomial, scale by 2^k),
/// relative error below 3e-7 over the finite range; `x < -87` gives 0 (libm would give a
/// subnormal or 0), `x > 88` saturates at e^88, NaN stays NaN.
///
/// Hand-written because libm's `expf` is an opaque call per element that blocks vectorisation,
/// and the maintained SIMD-math crates need nightly or their own vector types; this one inlines
/// into the multiversioned loops below.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.0, 88.0);
    let k = (xc * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = xc - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((k as i32 + 127) << 23) as u32);
    if x < -87.0 { 0.0 } else { y * scale }
}

/// `xs[i] = e^(xs[i] - shift)` in place; returns the sum of the results.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub fn exp_shifted(xs: &mut [f32], shift: f32) -> f32 {
    for x in xs.iter_mut() {
        *x = exp(*x - shift);
    }
    // Eight partial sums so the reduction vectorises too (float addition is not reassociated
    // by the compiler).
    let mut acc = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// `out[i] = silu(g[i]) * u[i]` with `silu(g) = g * sigmoid(g)`.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub fn silu_gate(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

/// Gradients of `silu(g) * u` given the output gradient `dy`.
#[multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
pub fn silu_gate_backward(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) {
    let n = g.len();
    let (u, dy, dg, du) = (&u[..n], &dy[..n], &mut dg[..n], &mut du[..n]);
    for i in 0..n {
        let sig = 1.0 / (1.0 + exp(-g[i]));
        du[i] = dy[i] * g[i] * sig;
        dg[i] = dy[i] * u[i] * sig * (1.0 + g[i] * (1.0 - sig));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_over_the_range_softmax_uses() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, libm) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((ours - libm) / libm).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(-1e4), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(1e4).is_finite());
    }

    #[test]
    fn exp_shifted_sums_what_it_writes() {
        let mut xs: Vec<f32> = (0..37).map(|i| i as f32 * 0.3 - 5.0).collect();
        let expect: Vec<f64> = xs.iter().map(|&x| ((x - 2.0) as f64).exp()).collect();
        let sum = exp_shifted(&mut xs, 2.0);
        for (a, b) in xs.iter().zip(&expect) {
            assert!(((*a as f64 - b) / b).abs() < 3e-7);
        }
        let total: f64 = expect.iter().sum();
        assert!(((sum as f64 - total) / total).abs() < 1e-6);
    }

    #[test]
    fn silu_gate_and_its_gradient_match_the_formula() {
        let g: Vec<f32> = (0..29).map(|i| i as f32 * 0.7 - 10.0).collect();
        let u: Vec<f32> = (0..29).map(|i| 1.0 - i as f32 * 0.05).collect();
        let dy: Vec<f32> = (0..29).map(|i| (i % 5) as f32 - 2.0).collect();
        let mut out = vec![0.0; 29];
        silu_gate(&g, &u, &mut out);
        let (mut dg, mut du) = (vec![0.0; 29], vec![0.0; 29]);
        silu_gate_backward(&g, &u, &dy, &mut dg, &mut du);
        for i in 0..29 {
            let (gi, ui) = (g[i] as f64, u[i] as f64);
            let sig = 1.0 / (1.0 + (-gi).exp());
            assert!((out[i] as f64 - gi * sig * ui).abs() < 1e-5);
            let d = dy[i] as f64;
            assert!((du[i] as f64 - d * gi * sig).abs() < 1e-5);
            assert!((dg[i] as f64 - d * ui * sig * (1.0 + gi * (1.0 - sig))).abs() < 1e-5);
        }
    }
}
