//! The original Porter stemmer (Porter, 1980) as Lucene's `PorterStemmer` implements it (the
//! ANSI C reference release, with its "bli" -> "ble" and "logi" -> "log" departures and the
//! bug fixes marked Bug 1 / Bug 2), which is what the original WebShop index uses.
//!
//! Ported by hand because the Rust stemming crates implement Snowball's "english" stemmer
//! (Porter2: different rules, e.g. "generously" -> "generous" instead of "gener"), or Porter
//! variants without the reference release's departures; both would change search results.

/// Stem one lower-cased token. Words of two characters or fewer are returned unchanged.
pub fn stem(word: &str) -> String {
    let mut s = Stemmer {
        b: word.chars().collect(),
        k: 0,
        j: 0,
    };
    if s.b.len() <= 2 {
        return word.to_owned();
    }
    s.k = s.b.len() - 1;
    s.step1ab();
    s.step1c();
    s.step2();
    s.step3();
    s.step4();
    s.step5();
    s.b[..=s.k].iter().collect()
}

/// Working state: `b[0..=k]` is the current word, `j` marks the end of the stem before a suffix
/// found by `ends`.
struct Stemmer {
    b: Vec<char>,
    k: usize,
    j: usize,
}

impl Stemmer {
    /// `b[i]` is a consonant; 'y' is one at the start or after a vowel.
    fn cons(&self, i: usize) -> bool {
        match self.b[i] {
            'a' | 'e' | 'i' | 'o' | 'u' => false,
            'y' => i == 0 || !self.cons(i - 1),
            _ => true,
        }
    }

    /// The measure m of `b[0..=j]`: the number of VC sequences in [C](VC)^m[V].
    fn m(&self) -> usize {
        let j = self.j as isize;
        let mut n = 0;
        let mut i: isize = 0;
        loop {
            if i > j {
                return n;
            }
            if !self.cons(i as usize) {
                break;
            }
            i += 1;
        }
        i += 1;
        loop {
            loop {
                if i > j {
                    return n;
                }
                if self.cons(i as usize) {
                    break;
                }
                i += 1;
            }
            i += 1;
            n += 1;
            loop {
                if i > j {
                    return n;
                }
                if !self.cons(i as usize) {
                    break;
                }
                i += 1;
            }
            i += 1;
        }
    }

    /// `b[0..=j]` contains a vowel.
    fn vowel_in_stem(&self) -> bool {
        self.j != usize::MAX && (0..=self.j).any(|i| !self.cons(i))
    }

    /// `b[i-1..=i]` is a double consonant.
    fn doublec(&self, i: usize) -> bool {
        i >= 1 && self.b[i] == self.b[i - 1] && self.cons(i)
    }

    /// `b[i-2..=i]` is consonant-vowel-consonant and the last is not w, x or y.
    fn cvc(&self, i: usize) -> bool {
        if i < 2 || !self.cons(i) || self.cons(i - 1) || !self.cons(i - 2) {
            return false;
        }
        !matches!(self.b[i], 'w' | 'x' | 'y')
    }

    /// `b[0..=k]` ends with `s`; sets `j` to the end of the stem before it.
    fn ends(&mut self, s: &str) -> bool {
        let l = s.chars().count();
        if l > self.k + 1 {
            return false;
        }
        let o = self.k + 1 - l;
        if !s.chars().zip(&self.b[o..=self.k]).all(|(c, b)| c == *b) {
            return false;
        }
        // j = k - l, which is -1 when the suffix is the whole word: represented by wrapping,
        // and every use of j below guards against that case as the reference does.
        self.j = (self.k + 1).wrapping_sub(l).wrapping_sub(1);
        true
    }

    /// Replace `b[j+1..=k]` by `s`.
    fn setto(&mut self, s: &str) {
        let start = self.j.wrapping_add(1);
        self.b.truncate(start);
        self.b.extend(s.chars());
        self.k = self.b.len() - 1;
    }

    /// `setto(s)` when m > 0.
    fn r(&mut self, s: &str) {
        if self.m() > 0 {
            self.setto(s);
        }
    }

    /// Plurals and -ed / -ing.
    fn step1ab(&mut self) {
        if self.b[self.k] == 's' {
            if self.ends("sses") {
                self.k -= 2;
            } else if self.ends("ies") {
                self.setto("i");
            } else if self.b[self.k - 1] != 's' {
                self.k -= 1;
            }
        }
        if self.ends("eed") {
            if self.m() > 0 {
                self.k -= 1;
            }
        } else if (self.ends("ed") || self.ends("ing")) && self.vowel_in_stem() {
            self.k = self.j;
            if self.ends("at") {
                self.setto("ate");
            } else if self.ends("bl") {
                self.setto("ble");
            } else if self.ends("iz") {
                self.setto("ize");
            } else if self.doublec(self.k) {
                self.k -= 1;
                if matches!(self.b[self.k], 'l' | 's' | 'z') {
                    self.k += 1;
                }
            } else if self.m() == 1 && self.cvc(self.k) {
                self.setto("e");
            }
        }
        self.b.truncate(self.k + 1);
    }

    /// Terminal y -> i when there is another vowel in the stem.
    fn step1c(&mut self) {
        if self.ends("y") && self.vowel_in_stem() {
            self.b[self.k] = 'i';
        }
    }

    /// Double suffixes to single ones (-ization -> -ize, ...), when m > 0.
    fn step2(&mut self) {
        if self.k == 0 {
            return;
        }
        const RULES: &[(char, &[(&str, &str)])] = &[
            ('a', &[("ational", "ate"), ("tional", "tion")]),
            ('c', &[("enci", "ence"), ("anci", "ance")]),
            ('e', &[("izer", "ize")]),
            (
                'l',
                &[
                    ("bli", "ble"),
                    ("alli", "al"),
                    ("entli", "ent"),
                    ("eli", "e"),
                    ("ousli", "ous"),
                ],
            ),
            (
                'o',
                &[("ization", "ize"), ("ation", "ate"), ("ator", "ate")],
            ),
            (
                's',
                &[
                    ("alism", "al"),
                    ("iveness", "ive"),
                    ("fulness", "ful"),
                    ("ousness", "ous"),
                ],
            ),
            ('t', &[("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")]),
            ('g', &[("logi", "log")]),
        ];
        self.apply_first(self.b[self.k - 1], RULES);
    }

    /// -ic-, -full, -ness etc.
    fn step3(&mut self) {
        const RULES: &[(char, &[(&str, &str)])] = &[
            ('e', &[("icate", "ic"), ("ative", ""), ("alize", "al")]),
            ('i', &[("iciti", "ic")]),
            ('l', &[("ical", "ic"), ("ful", "")]),
            ('s', &[("ness", "")]),
        ];
        self.apply_first(self.b[self.k], RULES);
    }

    /// Apply the first rule of the group keyed by `key` whose suffix matches (the reference's
    /// `switch` + `if (ends(..)) { r(..); break; }` chains).
    fn apply_first(&mut self, key: char, rules: &[(char, &[(&str, &str)])]) {
        if let Some((_, group)) = rules.iter().find(|(c, _)| *c == key) {
            for (suffix, replacement) in *group {
                if self.ends(suffix) {
                    self.r(replacement);
                    return;
                }
            }
        }
    }

    /// Strip -ant, -ence etc. in context <c>vcvc<v>, i.e. when m > 1.
    fn step4(&mut self) {
        if self.k == 0 {
            return;
        }
        let found = match self.b[self.k - 1] {
            'a' => self.ends("al"),
            'c' => self.ends("ance") || self.ends("ence"),
            'e' => self.ends("er"),
            'i' => self.ends("ic"),
            'l' => self.ends("able") || self.ends("ible"),
            'n' => self.ends("ant") || self.ends("ement") || self.ends("ment") || self.ends("ent"),
            'o' => {
                (self.ends("ion") && self.j != usize::MAX && matches!(self.b[self.j], 's' | 't'))
                    || self.ends("ou")
            }
            's' => self.ends("ism"),
            't' => self.ends("ate") || self.ends("iti"),
            'u' => self.ends("ous"),
            'v' => self.ends("ive"),
            'z' => self.ends("ize"),
            _ => false,
        };
        if found && self.m() > 1 {
            self.k = self.j;
        }
    }

    /// Remove a final -e when m > 1 (or m = 1 and not cvc), and -ll -> -l when m > 1.
    fn step5(&mut self) {
        self.j = self.k;
        if self.b[self.k] == 'e' {
            let a = self.m();
            if a > 1 || (a == 1 && !self.cvc(self.k - 1)) {
                self.k -= 1;
            }
        }
        if self.b[self.k] == 'l' && self.doublec(self.k) && self.m() > 1 {
            self.k -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stem;

    /// Examples from Porter's paper and the reference vocabulary.
    #[test]
    fn reference_examples() {
        for (word, want) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "ti"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("conflated", "conflat"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("relational", "relat"),
            ("conditional", "condit"),
            ("generously", "gener"),
            ("archaeology", "archaeolog"),
            ("sensibility", "sensibl"),
            ("electrical", "electr"),
            ("hopefulness", "hope"),
            ("adjustment", "adjust"),
            ("adoption", "adopt"),
            ("controll", "control"),
            ("roll", "roll"),
            ("shoes", "shoe"),
            ("women", "women"),
            ("running", "run"),
            ("is", "is"),
        ] {
            assert_eq!(stem(word), want, "{word}");
        }
    }
}
