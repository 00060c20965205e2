//! Product search as the original's Pyserini/Lucene index answers it: Anserini's
//! `DefaultEnglishAnalyzer` (StandardTokenizer, English possessive filter, lower-casing, the 33
//! classic English stop words, original Porter stemmer) and Lucene's BM25 (k1 = 0.9, b = 0.4) with
//! its single-precision arithmetic and one-byte length norms; ties go to the smaller ASIN
//! (Anserini breaks score ties by document id).

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use unicode_segmentation::UnicodeSegmentation;

use super::porter;

/// `EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

const K1: f32 = 0.9;
const B: f32 = 0.4;
/// Lucene `StandardTokenizer`'s default maximum token length; longer tokens are split.
const MAX_TOKEN_CHARS: usize = 255;
/// How many hits a search returns (`SEARCH_RETURN_N`).
pub const TOP_N: usize = 50;

/// Lucene's `Character.toLowerCase` per code point (simple case mapping: one char to one).
fn lower_char(c: char) -> char {
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        // Only U+0130 maps to several chars in the full mapping; its simple mapping is 'i'.
        _ if c == '\u{130}' => 'i',
        _ => c,
    }
}

/// The UAX#29 word segments `StandardTokenizer` emits: those starting with a letter or a
/// decimal digit (after any leading underscores), and emoji, i.e. segments starting with an
/// Extended_Pictographic or regional-indicator character (they count towards a document's
/// length, so they move BM25 scores). A segment like "¼" or "(ﾟ" is not a token.
static TOKEN_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:_*[\p{Alphabetic}\p{Nd}]|[\p{Extended_Pictographic}\x{1F1E6}-\x{1F1FF}])")
        .expect("valid pattern")
});

/// `TOKEN_START` with a fast path for segments starting with an ASCII character.
fn is_token(segment: &str) -> bool {
    match segment.chars().next() {
        Some(c) if c.is_ascii_alphanumeric() => true,
        Some(c) if c.is_ascii() && c != '_' => false,
        _ => TOKEN_START.is_match(segment),
    }
}

/// The analyzer's tokens for `text`, in order.
pub fn analyze(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split_word_bounds().filter(|s| is_token(s)) {
        let chars: Vec<char> = word.chars().collect();
        for chunk in chars.chunks(MAX_TOKEN_CHARS) {
            let mut token: Vec<char> = chunk.to_vec();
            // EnglishPossessiveFilter: a trailing 's (ASCII, U+2019 or U+FF07 apostrophe).
            let n = token.len();
            if n >= 2
                && matches!(token[n - 2], '\'' | '\u{2019}' | '\u{ff07}')
                && matches!(token[n - 1], 's' | 'S')
            {
                token.truncate(n - 2);
            }
            let token: String = token.into_iter().map(lower_char).collect();
            if token.is_empty() || STOP_WORDS.contains(&token.as_str()) {
                continue;
            }
            out.push(porter::stem(&token));
        }
    }
    out
}

/// Lucene `SmallFloat.intToByte4`: lengths below 24 exactly, above with 4 significant bits.
pub fn encode_norm(length: u32) -> u8 {
    const FREE: u32 = 24;
    if length < FREE {
        return length as u8;
    }
    let i = (length - FREE) as u64;
    let num_bits = 64 - i.leading_zeros();
    let int4 = if num_bits < 4 {
        i as u32
    } else {
        let shift = num_bits - 4;
        ((i >> shift) as u32 & 0x07) | ((shift + 1) << 3)
    };
    (FREE + int4) as u8
}

/// Lucene `SmallFloat.byte4ToInt`.
pub fn decode_norm(b: u8) -> u32 {
    const FREE: u32 = 24;
    let i = b as u32;
    if i < FREE {
        return i;
    }
    let v = i - FREE;
    let bits = (v & 0x07) as u64;
    let shift = (v >> 3) as i64 - 1;
    let decoded = if shift == -1 {
        bits
    } else {
        (bits | 0x08) << shift
    };
    (FREE as u64 + decoded).min(i32::MAX as u64) as u32
}

/// An inverted index over the products' indexed text.
#[derive(Debug)]
pub struct SearchIndex {
    /// Term -> postings (document, term frequency), documents ascending.
    postings: HashMap<String, Vec<(u32, u32)>>,
    /// Per document, its encoded length norm.
    norms: Vec<u8>,
    /// Per document, its ASIN (the tie-break key).
    asins: Vec<String>,
    /// `1 / (k1 * ((1 - b) + b * len / avgdl))` for each norm byte, as Lucene caches it.
    norm_inverse: [f32; 256],
}

impl SearchIndex {
    /// Index `(asin, text)` documents; document ids are positions in `docs`.
    pub fn build<'a>(docs: impl IntoIterator<Item = (&'a str, &'a str)>) -> SearchIndex {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let (mut norms, mut asins) = (Vec::new(), Vec::new());
        let mut total_terms = 0u64;
        for (doc, (asin, text)) in docs.into_iter().enumerate() {
            let tokens = analyze(text);
            total_terms += tokens.len() as u64;
            norms.push(encode_norm(tokens.len() as u32));
            asins.push(asin.to_owned());
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in tokens {
                *tf.entry(t).or_default() += 1;
            }
            for (term, freq) in tf {
                postings.entry(term).or_default().push((doc as u32, freq));
            }
        }
        let n_docs = asins.len().max(1);
        let avgdl = (total_terms as f64 / n_docs as f64) as f32;
        let mut norm_inverse = [0f32; 256];
        for (i, slot) in norm_inverse.iter_mut().enumerate() {
            let len = decode_norm(i as u8) as f32;
            *slot = 1.0 / (K1 * ((1.0 - B) + B * len / avgdl));
        }
        SearchIndex {
            postings,
            norms,
            asins,
            norm_inverse,
        }
    }

    pub fn len(&self) -> usize {
        self.asins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.asins.is_empty()
    }

    /// BM25 scores of every matching document for `query` (already lower-cased as the
    /// original's `search[...]` does), unsorted. A term repeated in the query weighs its count
    /// (Anserini's bag-of-words query boosts each distinct term by its count).
    pub fn scores(&self, query: &str) -> Vec<(u32, f32)> {
        let mut counts: Vec<(String, u32)> = Vec::new();
        for t in analyze(query) {
            match counts.iter_mut().find(|(term, _)| *term == t) {
                Some((_, c)) => *c += 1,
                None => counts.push((t, 1)),
            }
        }
        let n = self.asins.len() as f64;
        // Dense per-document sums (Lucene sums clause scores in double, then casts to float).
        let mut acc = vec![0f64; self.asins.len()];
        let mut matched = vec![false; self.asins.len()];
        for (term, count) in &counts {
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let df = list.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32;
            let weight = *count as f32 * idf;
            for &(doc, freq) in list {
                let inv = self.norm_inverse[self.norms[doc as usize] as usize];
                let s = weight - weight / (1.0 + freq as f32 * inv);
                acc[doc as usize] += s as f64;
                matched[doc as usize] = true;
            }
        }
        (0..acc.len())
            .filter(|&d| matched[d])
            .map(|d| (d as u32, acc[d] as f32))
            .collect()
    }

    /// The top `TOP_N` documents for `query`, best first, ties by ASIN ascending.
    pub fn search(&self, query: &str) -> Vec<u32> {
        let mut hits = self.scores(query);
        let order = |a: &(u32, f32), b: &(u32, f32)| {
            b.1.total_cmp(&a.1)
                .then_with(|| self.asins[a.0 as usize].cmp(&self.asins[b.0 as usize]))
        };
        if hits.len() > TOP_N {
            hits.select_nth_unstable_by(TOP_N - 1, order);
            hits.truncate(TOP_N);
        }
        hits.sort_unstable_by(order);
        hits.into_iter().map(|(d, _)| d).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_are_exact_below_24_and_monotone_above() {
        for len in 0..24 {
            assert_eq!(decode_norm(encode_norm(len)), len);
        }
        let mut last = 0;
        for len in 0..5000 {
            let d = decode_norm(encode_norm(len));
            assert!(d <= len && d >= last, "{len} -> {d}");
            last = d;
        }
        // 4 significant bits above 24: 24 + 15 is exact, 24 + 17 rounds down to 24 + 16.
        assert_eq!(decode_norm(encode_norm(24 + 15)), 24 + 15);
        assert_eq!(decode_norm(encode_norm(24 + 17)), 24 + 16);
        assert_eq!(decode_norm(encode_norm(24 + 33)), 24 + 32);
    }

    #[test]
    fn analyzer_strips_possessives_stop_words_and_stems() {
        assert_eq!(
            analyze("Women's Running Shoes for the Beach, 3-Pack"),
            vec!["women", "run", "shoe", "beach", "3", "pack"]
        );
    }

    #[test]
    fn ranking_prefers_matching_short_documents_then_asin() {
        let docs = [
            ("B3", "red shoes"),
            ("B2", "red shoes"),
            ("B1", "blue shirt with many many extra words here"),
        ];
        let index = SearchIndex::build(docs);
        assert_eq!(index.search("red shoe"), vec![1, 0]);
        assert_eq!(index.search("the"), Vec::<u32>::new());
    }
}
