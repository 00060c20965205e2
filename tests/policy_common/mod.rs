//! Shared by the policy test files: a small corpus, a tiny preset policy over a tokenizer built
//! from it, and a chat prompt.
#![allow(dead_code)]

use tsr::policy::{ChatMessage, ModelSection, Policy, Tokenizer};

pub fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..40 {
        out.push(format!(
            "#####\n#P.X#\n#..O#\n#####\nStep {i}: which action? <think>the box is left of the target</think><answer>Right</answer>"
        ));
        out.push(format!(
            "You are on a frozen lake. Goal at row {i}. Moves: Up, Down, Left, Right."
        ));
    }
    out
}

pub fn tiny() -> (Tokenizer, ModelSection, Policy) {
    let tok = Tokenizer::build_for_corpus(&corpus()).unwrap();
    let s = ModelSection {
        context_limit: 256,
        max_new_tokens: 16,
        ..ModelSection::default()
    };
    let p = Policy::from_section(&s, &tok, 3).unwrap();
    (tok, s, p)
}

pub fn prompt(tok: &Tokenizer) -> Vec<u32> {
    let msgs = [ChatMessage {
        role: "user".into(),
        content: "#####\n#P.X#\nWhich action?".into(),
    }];
    tok.encode(&Tokenizer::chat_text(&msgs, true)).unwrap()
}
