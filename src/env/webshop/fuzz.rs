//! Fuzzy string matching exactly as the original WebShop reward sees it: `fuzz.token_set_ratio`
//! of thefuzz 0.19 on its pure-Python path (python-Levenshtein absent, as upstream pins it), which
//! scores with `difflib.SequenceMatcher.ratio()` including its "autojunk" heuristic.
//!
//! Hand-written rather than taken from a crate because every Rust fuzzy-matching crate we know
//! (strsim, rapidfuzz, fuzzy-matcher) implements Levenshtein-based ratios, which give different
//! integers than difflib's matching-blocks ratio; the reward's `> 85` thresholds need the exact
//! integers. Strings are handled as sequences of code points, as Python's `str` is.

use std::collections::BTreeSet;

use unicode_categories::UnicodeCategories;

/// Python's `\w` under `re.UNICODE`: `str.isalnum()` (letters L*, numbers N*) or underscore.
fn is_py_word(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    c.is_letter() || c.is_number()
}

/// Python's `str.isspace()` for one character (Unicode White_Space plus the ASCII separators
/// U+001C..U+001F that Python also counts).
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// thefuzz `utils.full_process(s, force_ascii=True)`: drop code points U+0080..U+00FF (the
/// `asciionly` translation table), turn every non-word character into a space, lower-case, strip.
pub fn full_process(s: &str) -> String {
    let replaced: String = s
        .chars()
        .filter(|c| !('\u{80}'..='\u{ff}').contains(c))
        .map(|c| if is_py_word(c) { c } else { ' ' })
        .collect();
    py_strip(&replaced.to_lowercase()).to_owned()
}

/// The distinct tokens of `full_process(s)`, sorted (code point order, as Python sorts `str`).
/// Empty when the processed string is empty.
pub fn tokens(s: &str) -> Vec<String> {
    let processed = full_process(s);
    let set: BTreeSet<&str> = processed
        .split(is_py_space)
        .filter(|t| !t.is_empty())
        .collect();
    set.into_iter().map(str::to_owned).collect()
}

/// `fuzz.token_set_ratio(a, b)` of thefuzz 0.19 (force_ascii and full_process on).
pub fn token_set_ratio(a: &str, b: &str) -> u8 {
    token_set_ratio_of_tokens(&tokens(a), &tokens(b))
}

/// `token_set_ratio` on the outputs of `tokens` (callers comparing one string against many
/// process each once).
pub fn token_set_ratio_of_tokens(t1: &[String], t2: &[String]) -> u8 {
    if t1.is_empty() || t2.is_empty() {
        return 0;
    }
    let (mut sect, mut diff12, mut diff21) = (Vec::new(), Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < t1.len() || j < t2.len() {
        match (t1.get(i), t2.get(j)) {
            (Some(x), Some(y)) if x == y => {
                sect.push(x.as_str());
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                diff12.push(x.as_str());
                i += 1;
            }
            (Some(x), None) => {
                diff12.push(x.as_str());
                i += 1;
            }
            (_, Some(y)) => {
                diff21.push(y.as_str());
                j += 1;
            }
            (None, None) => break,
        }
    }
    let sect = sect.join(" ");
    let combined12 = format!("{sect} {}", diff12.join(" "));
    let combined21 = format!("{sect} {}", diff21.join(" "));
    let sect: Vec<char> = py_strip(&sect).chars().collect();
    let c12: Vec<char> = py_strip(&combined12).chars().collect();
    let c21: Vec<char> = py_strip(&combined21).chars().collect();
    ratio(&sect, &c12)
        .max(ratio(&sect, &c21))
        .max(ratio(&c12, &c21))
}

/// `fuzz.ratio` behind its decorators: equal strings score 100 (even when both are empty), an
/// empty one scores 0, otherwise `int(round(100 * SequenceMatcher(None, a, b).ratio()))` with
/// Python's round-half-to-even.
pub fn ratio(a: &[char], b: &[char]) -> u8 {
    if a == b {
        return 100;
    }
    if a.is_empty() || b.is_empty() {
        return 0;
    }
    (100.0 * sequence_matcher_ratio(a, b)).round_ties_even() as u8
}

/// `difflib.SequenceMatcher(None, a, b).ratio()`: `2 * matches / (len(a) + len(b))`, where
/// `matches` sums the sizes of `get_matching_blocks()`.
pub fn sequence_matcher_ratio(a: &[char], b: &[char]) -> f64 {
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    let matches = SequenceMatcher::new(a, b).matching_characters();
    2.0 * matches as f64 / total as f64
}

/// The parts of difflib's `SequenceMatcher` that `ratio()` uses, with `isjunk = None` and
/// `autojunk = True`.
struct SequenceMatcher<'a> {
    /// First sequence (`seq1`).
    a: &'a [char],
    /// Second sequence (`seq2`), the one autojunk looks at.
    b: &'a [char],
    /// difflib's `b2j` flattened: (element, position) for every element of `b` that is not
    /// "popular", sorted by element then position (one allocation instead of a dict of lists).
    b2j: Vec<(char, usize)>,
}

impl<'a> SequenceMatcher<'a> {
    fn new(a: &'a [char], b: &'a [char]) -> Self {
        let mut b2j: Vec<(char, usize)> = b.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        b2j.sort_unstable();
        // autojunk: when b has at least 200 elements, elements occurring more than
        // len(b) / 100 + 1 times are dropped from the index (but still extend matches).
        let n = b.len();
        if n >= 200 {
            let ntest = n / 100 + 1;
            let mut kept = Vec::with_capacity(b2j.len());
            for run in b2j.chunk_by(|x, y| x.0 == y.0) {
                if run.len() <= ntest {
                    kept.extend_from_slice(run);
                }
            }
            b2j = kept;
        }
        SequenceMatcher { a, b, b2j }
    }

    /// The ascending positions of `c` in `b` (none if absent or popular).
    fn positions(&self, c: char) -> impl Iterator<Item = usize> + '_ {
        let lo = self.b2j.partition_point(|e| e.0 < c);
        let hi = self.b2j.partition_point(|e| e.0 <= c);
        self.b2j[lo..hi].iter().map(|e| e.1)
    }

    /// `find_longest_match(alo, ahi, blo, bhi)`; with no junk function the junk-extension
    /// passes of difflib never fire, so only the popular-element extension remains.
    /// `rows` is scratch space (all zero on entry and on return) for difflib's `j2len` dicts.
    fn find_longest_match(
        &self,
        (alo, ahi, blo, bhi): (usize, usize, usize, usize),
        rows: &mut Rows,
    ) -> Match {
        let (a, b) = (self.a, self.b);
        let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0usize);
        // rows.prev[j + 1] = length of the longest junk-free match ending with a[i-1] and b[j]
        // (difflib's j2len[j]); rows.next is the row being built for a[i].
        for (i, c) in a.iter().enumerate().take(ahi).skip(alo) {
            for j in self.positions(*c) {
                if j < blo {
                    continue;
                }
                if j >= bhi {
                    break;
                }
                let k = rows.prev[j] + 1;
                rows.next[j + 1] = k;
                rows.next_touched.push(j + 1);
                if k > bestsize {
                    besti = i + 1 - k;
                    bestj = j + 1 - k;
                    bestsize = k;
                }
            }
            rows.advance();
        }
        rows.advance();
        while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
            besti -= 1;
            bestj -= 1;
            bestsize += 1;
        }
        while besti + bestsize < ahi
            && bestj + bestsize < bhi
            && a[besti + bestsize] == b[bestj + bestsize]
        {
            bestsize += 1;
        }
        Match {
            i: besti,
            j: bestj,
            size: bestsize,
        }
    }

    /// Sum of the block sizes of `get_matching_blocks()` (the final merge of adjacent blocks
    /// does not change the sum, so it is skipped).
    fn matching_characters(&self) -> usize {
        let mut queue = vec![(0, self.a.len(), 0, self.b.len())];
        let mut rows = Rows::new(self.b.len());
        let mut total = 0;
        while let Some((alo, ahi, blo, bhi)) = queue.pop() {
            let m = self.find_longest_match((alo, ahi, blo, bhi), &mut rows);
            if m.size > 0 {
                total += m.size;
                if alo < m.i && blo < m.j {
                    queue.push((alo, m.i, blo, m.j));
                }
                if m.i + m.size < ahi && m.j + m.size < bhi {
                    queue.push((m.i + m.size, ahi, m.j + m.size, bhi));
                }
            }
        }
        total
    }
}

/// Two dense rows standing in for difflib's per-row `j2len` dicts, with the indices each row
/// set so that clearing costs what filling did.
struct Rows {
    /// Row of a[i-1]: match lengths by b position + 1.
    prev: Vec<usize>,
    /// Row of a[i] being built.
    next: Vec<usize>,
    /// Indices set in `prev` (to clear it cheaply).
    prev_touched: Vec<usize>,
    /// Indices set in `next`.
    next_touched: Vec<usize>,
}

impl Rows {
    fn new(len_b: usize) -> Rows {
        Rows {
            prev: vec![0; len_b + 1],
            next: vec![0; len_b + 1],
            prev_touched: Vec::new(),
            next_touched: Vec::new(),
        }
    }

    /// The row just built becomes the previous one; the old previous row is cleared.
    fn advance(&mut self) {
        for &t in &self.prev_touched {
            self.prev[t] = 0;
        }
        self.prev_touched.clear();
        std::mem::swap(&mut self.prev, &mut self.next);
        std::mem::swap(&mut self.prev_touched, &mut self.next_touched);
    }
}

/// difflib's `Match(a, b, size)`: `a[i..i + size] == b[j..j + size]`.
struct Match {
    /// Start in `a`.
    i: usize,
    /// Start in `b`.
    j: usize,
    /// Length of the block (0: no match).
    size: usize,
}

/// Python's `str.isprintable()` for one character: false for the categories Cc, Cf, Cs, Co,
/// Zl, Zp and Zs except the ASCII space. (Unassigned code points also count as unprintable in
/// Python; the category tables here predate recent Unicode versions, so code points they do not
/// know are taken as printable, which is right for characters assigned since.)
fn is_py_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    !(c.is_other_control() || c.is_other_format() || c.is_other_private_use() || c.is_separator())
}

/// Python's `repr(s)` of a `str`.
pub fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_py_printable(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// Python's `str((name, value))` for a tuple of two strings.
pub fn py_pair_repr(name: &str, value: &str) -> String {
    format!("({}, {})", py_str_repr(name), py_str_repr(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_escapes_like_python() {
        assert_eq!(py_pair_repr("size", "x-large"), "('size', 'x-large')");
        assert_eq!(py_str_repr("a3-army\u{a0}green"), "'a3-army\\xa0green'");
        assert_eq!(py_str_repr("women's"), "\"women's\"");
        assert_eq!(py_str_repr("a'b\"c"), "'a\\'b\"c'");
    }

    #[test]
    fn full_process_drops_latin1_and_punctuation() {
        assert_eq!(full_process("  Café-Noir_2 "), "caf noir_2");
    }
}
