//! Parsing a model's reply into action names, with the format-penalty rule of the spec:
//! `<think>(.*?)</think>\s*<answer>(.*?)</answer>` (dot matches newline), split on `||`, trim,
//! drop empty parts, keep at most `max_actions`.

use std::sync::LazyLock;

use regex::Regex;

static FULL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s)<think>(.*?)</think>\s*<answer>(.*?)</answer>").expect("static regex")
});
static ANSWER_ONLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<answer>(.*?)</answer>").expect("static regex"));

/// The action texts found in a reply, before they are matched against a task's actions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedReply {
    /// Trimmed, non-empty parts of the answer, at most `max_actions` of them.
    pub parts: Vec<String>,
    /// The reply matched the required tag pattern at all.
    pub matched: bool,
}

/// Parse a reply. `require_think = false` is the compact form for from-scratch models, where
/// only `<answer>...</answer>` is required.
pub fn parse_reply(text: &str, max_actions: usize, require_think: bool) -> ParsedReply {
    let answer = if require_think {
        FULL.captures(text).and_then(|c| c.get(2))
    } else {
        ANSWER_ONLY.captures(text).and_then(|c| c.get(1))
    };
    let Some(answer) = answer else {
        return ParsedReply::default();
    };
    let parts = answer
        .as_str()
        .split("||")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .take(max_actions)
        .map(str::to_owned)
        .collect();
    ParsedReply {
        parts,
        matched: true,
    }
}
