//! A buffer written region by region without being zeroed first (the packed weight gradient of
//! a decoder layer), kept apart from the kernels because of its own safety argument.

use super::kernels::{View, check_views, gemm_raw, parallelism};

/// A buffer filled region by region (matrix products and copies) without being zeroed first,
/// which is why it exists: the packed weight gradient of a decoder layer, whose memset was 1% of
/// a `small` training step. [`Regions::finish`] hands the buffer out only when the regions
/// written cover it exactly.
pub struct Regions {
    buf: Vec<f32>,
    len: usize,
    written: Vec<std::ops::Range<usize>>,
}

impl Regions {
    pub fn new(len: usize) -> Regions {
        Regions {
            buf: Vec::with_capacity(len),
            len,
            written: Vec::new(),
        }
    }

    fn claim(&mut self, region: &std::ops::Range<usize>) {
        assert!(
            region.start <= region.end && region.end <= self.len,
            "region out of bounds"
        );
        assert!(
            self.written
                .iter()
                .all(|w| w.end <= region.start || region.end <= w.start),
            "region written twice"
        );
        self.written.push(region.clone());
    }

    /// `region = a[m, k] @ b[k, n]`, row-major.
    pub fn product(
        &mut self,
        region: std::ops::Range<usize>,
        (m, n, k): (usize, usize, usize),
        a: View<'_>,
        b: View<'_>,
    ) {
        assert_eq!(region.len(), m * n, "region size is not m * n");
        self.claim(&region);
        // SAFETY: the region lies within the buffer's capacity (claim) and is m * n long.
        let out = unsafe { self.buf.as_mut_ptr().add(region.start) };
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            // SAFETY: as above.
            unsafe { std::ptr::write_bytes(out, 0, m * n) };
            return;
        }
        if m == 1 || n == 1 {
            // gemm's single-row and single-column paths view the output as a slice.
            // SAFETY: as above.
            unsafe { std::ptr::write_bytes(out, 0, m * n) };
        }
        check_views(m, n, k, &a, &b);
        // SAFETY: views checked; the region is writable for m * n elements.
        unsafe { gemm_raw(m, n, k, &a, &b, out, false, parallelism(m * n * k)) }
    }

    /// `region = src`.
    pub fn copy(&mut self, region: std::ops::Range<usize>, src: &[f32]) {
        assert_eq!(region.len(), src.len(), "region size is not the source's");
        self.claim(&region);
        // SAFETY: the region lies within the buffer's capacity and cannot overlap `src`, which
        // is borrowed while the buffer is exclusively ours.
        unsafe {
            std::ptr::copy_nonoverlapping(
                src.as_ptr(),
                self.buf.as_mut_ptr().add(region.start),
                src.len(),
            )
        };
    }

    /// The whole buffer; panics unless every element was written exactly once.
    pub fn finish(mut self) -> Vec<f32> {
        let covered: usize = self.written.iter().map(|r| r.len()).sum();
        assert_eq!(covered, self.len, "regions do not cover the buffer");
        // SAFETY: disjoint regions (claim) of total length `len` within `0..len` cover it, and
        // every region was written before this call.
        unsafe { self.buf.set_len(self.len) };
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::kernels::{matmul_large_new, matmul_strided};

    fn rows(data: &[f32], cols: usize) -> View<'_> {
        View {
            data,
            rs: cols,
            cs: 1,
        }
    }

    #[test]
    fn regions_hold_products_and_copies_where_they_were_written() {
        let a: Vec<f32> = (0..6).map(|i| i as f32).collect(); // [2, 3]
        let b: Vec<f32> = (0..12).map(|i| (i % 5) as f32 - 1.0).collect(); // [3, 4]
        let mut expected = vec![0.0; 8];
        matmul_strided(2, 4, 3, rows(&a, 3), rows(&b, 4), &mut expected, false);
        let mut r = Regions::new(11);
        r.copy(8..11, &[7.0, 8.0, 9.0]);
        r.product(0..8, (2, 4, 3), rows(&a, 3), rows(&b, 4));
        let out = r.finish();
        assert_eq!(&out[..8], &expected[..]);
        assert_eq!(&out[8..], &[7.0, 8.0, 9.0]);
        assert_eq!(
            matmul_large_new(2, 4, 3, rows(&a, 3), rows(&b, 4)),
            expected
        );
    }

    #[test]
    #[should_panic(expected = "do not cover")]
    fn regions_refuse_to_hand_out_unwritten_elements() {
        let mut r = Regions::new(4);
        r.copy(0..3, &[1.0, 2.0, 3.0]);
        let _ = r.finish();
    }

    #[test]
    #[should_panic(expected = "written twice")]
    fn regions_refuse_overlapping_writes() {
        let mut r = Regions::new(4);
        r.copy(0..3, &[1.0, 2.0, 3.0]);
        r.copy(2..4, &[1.0, 2.0]);
    }
}
