//! Constrained replies: a trie over the token sequences of every well-formed reply, so that
//! decoding can only produce one of them (`train.constrained_reply`).
//!
//! Why: a model trained from scratch spends most of its reply on structure (`<answer>`, `||`,
//! `</answer>`, end of turn) and one or two tokens on the decision. Sampling the structure gives
//! format errors that carry no information about the task, and training on it lets noisy
//! advantages push the structure around (measured: learning rates >= 1e-3 broke the format
//! within 15 updates). With the trie, a position with a single allowed token is *forced*: it
//! is emitted without sampling and left out of the loss, and only the *choice* positions
//! (which action, whether to add a second one) are sampled and trained.

/// One node's allowed continuations.
#[derive(Debug, Clone, Default, PartialEq)]
struct Node {
    /// (token, child node), sorted by token.
    children: Vec<(u32, usize)>,
}

/// A trie of allowed replies, each ending with the end-of-turn token.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyGrammar {
    nodes: Vec<Node>,
}

/// Where a decoded token left the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Still inside the trie, at this node.
    At(usize),
    /// The token is not an allowed continuation (never produced by constrained decoding).
    Outside,
}

impl ReplyGrammar {
    /// The trie over `replies` (token ids, each ending with the end-of-turn id). Duplicates
    /// collapse; an empty list allows nothing and is rejected by the caller.
    pub fn new(replies: &[Vec<u32>]) -> ReplyGrammar {
        let mut nodes = vec![Node::default()];
        for reply in replies {
            let mut at = 0;
            for &tok in reply {
                at = match nodes[at].children.binary_search_by_key(&tok, |c| c.0) {
                    Ok(i) => nodes[at].children[i].1,
                    Err(i) => {
                        nodes.push(Node::default());
                        let child = nodes.len() - 1;
                        nodes[at].children.insert(i, (tok, child));
                        child
                    }
                };
            }
        }
        ReplyGrammar { nodes }
    }

    pub fn root(&self) -> usize {
        0
    }

    /// Tokens allowed after reaching `node` (empty at the end of a reply).
    pub fn allowed(&self, node: usize) -> impl Iterator<Item = u32> + '_ {
        self.nodes[node].children.iter().map(|c| c.0)
    }

    /// Number of allowed tokens after `node`: 1 means the next token is forced.
    pub fn branching(&self, node: usize) -> usize {
        self.nodes[node].children.len()
    }

    pub fn step(&self, node: usize, token: u32) -> Step {
        match self.nodes[node]
            .children
            .binary_search_by_key(&token, |c| c.0)
        {
            Ok(i) => Step::At(self.nodes[node].children[i].1),
            Err(_) => Step::Outside,
        }
    }

    /// The loss mask for constrained replies: of the assistant tokens (`assistant_mask` = 1),
    /// keep those at a choice position (two or more allowed tokens). Each contiguous run of
    /// assistant tokens is one reply walked from the root; a reply that leaves the trie (it was
    /// not decoded under this grammar) keeps its remaining tokens, so nothing is silently lost.
    pub fn choice_mask(&self, tokens: &[u32], assistant_mask: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; assistant_mask.len()];
        let mut at: Option<Step> = None;
        for (i, (&tok, &m)) in tokens.iter().zip(assistant_mask).enumerate() {
            if m == 0 {
                at = None;
                continue;
            }
            let node = at.get_or_insert(Step::At(self.root()));
            *node = match *node {
                Step::At(n) => {
                    out[i] = (self.branching(n) != 1) as u8;
                    self.step(n, tok)
                }
                Step::Outside => {
                    out[i] = 1;
                    Step::Outside
                }
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grammar() -> ReplyGrammar {
        // Replies "7 1 9", "7 2 9", "7 2 3 9" (9 = end of turn).
        ReplyGrammar::new(&[
            vec![7, 1, 9],
            vec![7, 2, 9],
            vec![7, 2, 3, 9],
            vec![7, 1, 9],
        ])
    }

    #[test]
    fn trie_allows_exactly_the_replies() {
        let g = grammar();
        assert_eq!(g.allowed(g.root()).collect::<Vec<_>>(), vec![7]);
        let Step::At(a) = g.step(g.root(), 7) else {
            panic!("7 is allowed")
        };
        assert_eq!(g.allowed(a).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(g.step(a, 5), Step::Outside);
        let Step::At(b) = g.step(a, 2) else { panic!() };
        assert_eq!(g.allowed(b).collect::<Vec<_>>(), vec![3, 9]);
        let Step::At(end) = g.step(b, 9) else {
            panic!()
        };
        assert_eq!(g.branching(end), 0);
    }

    #[test]
    fn choice_mask_keeps_choice_positions_of_each_reply() {
        let g = grammar();
        // prompt 4 4 | reply 7 2 9 | prompt 4 | reply 7 2 3 9
        let tokens = [4, 4, 7, 2, 9, 4, 7, 2, 3, 9];
        let mask = [0, 0, 1, 1, 1, 0, 1, 1, 1, 1];
        assert_eq!(
            g.choice_mask(&tokens, &mask),
            vec![0, 0, 0, 1, 1, 0, 0, 1, 1, 0]
        );
        // A reply outside the grammar keeps its tokens from where it left.
        let tokens = [4, 7, 5, 5, 9];
        let mask = [0, 1, 1, 1, 1];
        assert_eq!(g.choice_mask(&tokens, &mask), vec![0, 0, 1, 1, 1]);
    }
}
