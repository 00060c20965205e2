//! `tsr bench model --only kernel`: the decode kernel ([`super::skinny`]) against gemm on the
//! preset's own layer products, for the row counts a decode step sees.

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::Arch;
use super::kernels::{WLayout, gemm_product, linear};

/// Rows (sequences decoded together) to compare at.
const ROWS: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// Rounds per row count; each round times both kernels, the best round of each is kept.
const ROUNDS: usize = 5;

/// One decode step's products for every layer of `arch`: (input width, output width, bias).
fn layer_products(a: &Arch) -> Vec<(usize, usize, bool)> {
    let (h, hd, iw) = (a.hidden_size, a.head_dim, a.intermediate_size);
    let qkv = (a.num_heads + 2 * a.num_kv_heads) * hd;
    (0..a.num_layers)
        .flat_map(|_| {
            [
                (h, qkv, true),
                (a.num_heads * hd, h, false),
                (h, 2 * iw, false),
                (iw, h, false),
            ]
        })
        .collect()
}

/// Milliseconds per decode step's products (all layers, `[in, out]` weights as the inference
/// copy stores them) for `linear` (which picks the decode kernel up to its row limit) and for
/// gemm alone, with their ratio, at every row count of [`ROWS`].
pub fn compare(a: &Arch) -> Value {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut values =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-0.1f32..0.1)).collect() };
    // Distinct weights per layer, as in the model: together they outgrow the caches, so every
    // step streams them from memory as a real decode step does.
    type Product = (usize, usize, Vec<f32>, Option<Vec<f32>>);
    let products: Vec<Product> = layer_products(a)
        .into_iter()
        .map(|(k, n, bias)| (k, n, values(k * n), bias.then(|| values(n))))
        .collect();
    let widest = products.iter().map(|p| p.0).max().unwrap_or(0);
    let input = values(ROWS[ROWS.len() - 1] * widest);
    let mut out = Vec::new();
    let mut step = |m: usize, gemm_only: bool| {
        let t = Instant::now();
        for (k, n, w, b) in &products {
            let x = &input[..m * k];
            if gemm_only {
                gemm_product(x, m, *k, w, WLayout::InOut, *n, b.as_deref(), &mut out);
            } else {
                linear(x, m, *k, w, WLayout::InOut, *n, b.as_deref(), &mut out);
            }
        }
        t.elapsed().as_secs_f64()
    };
    let rows: Vec<Value> = ROWS
        .iter()
        .map(|&m| {
            step(m, false);
            step(m, true);
            let (mut ours, mut gemm) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..ROUNDS {
                ours = ours.min(step(m, false));
                gemm = gemm.min(step(m, true));
            }
            json!({
                "rows": m,
                "linear_ms": 1e3 * ours,
                "gemm_ms": 1e3 * gemm,
                "linear_over_gemm_time": ours / gemm,
            })
        })
        .collect();
    json!({ "weights_mb": products.iter().map(|p| p.2.len() * 4).sum::<usize>() as f64 / 1e6, "rows": rows })
}
