//! Text <-> token ids with the `tokenizers` crate, in the layout of Qwen2's `tokenizer.json`.

use std::path::Path;
use std::str::FromStr;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, TokenizerBuilder, TokenizerImpl};

use super::PolicyError;

/// Special tokens every tsr tokenizer has, in this order at the end of the vocabulary.
pub const ENDOFTEXT: &str = "<|endoftext|>";
pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";

/// The split of tokenizers built from scratch: Qwen2's, except that only a capitalised or
/// lowercase word (` Down`, `answer`) stays whole and every other character is its own
/// pre-token. BPE never merges across pre-tokens, so a grid row such as `_#OP_` keeps one token
/// per cell: with Qwen2's split the BPE learnt whole rows (`GOOP`, `___`) as single tokens and a
/// from-scratch model had to learn each token's width before it could tell where the player
/// stands (measured: no FrozenLake run rose above a random policy with those tokens).
const CELL_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)| ?[A-Z]?[a-z]+|\p{N}|\s*[\r\n]+|\s+(?!\S)|\s+|.";

/// One turn of a chat, rendered as `<|im_start|>role\ncontent<|im_end|>\n`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// A loaded tokenizer plus the ids of the specials the policy relies on.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// `<|im_end|>`: ends an assistant reply, so generation stops on it.
    eos: u32,
    /// `<|endoftext|>`: fills padded positions (never attended to).
    pad: u32,
    /// `<|im_start|>`: opens a chat turn.
    im_start: u32,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tokenizer(vocab {}, eos {})",
            self.vocab_size(),
            self.eos
        )
    }
}

fn tok_err(e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Byte-level BPE trained over `corpus` (task observations, prompts, actions) with
    /// 512 ids in all. See [`Tokenizer::build_for_corpus_sized`].
    pub fn build_for_corpus(corpus: &[String]) -> Result<Tokenizer, PolicyError> {
        Self::build_for_corpus_sized(corpus, 512)
    }

    /// Byte-level BPE with `vocab_size` ids: 256 bytes, merges learnt from `corpus` (specials
    /// removed from the text first) over the [`CELL_SPLIT`] pre-tokens, then the three specials. Deterministic for a given corpus.
    pub fn build_for_corpus_sized(
        corpus: &[String],
        vocab_size: usize,
    ) -> Result<Tokenizer, PolicyError> {
        if vocab_size < 256 + 3 {
            return Err(PolicyError::Tokenizer(format!(
                "vocab_size {vocab_size} leaves no room for 256 bytes and 3 specials"
            )));
        }
        let split = Split::new(
            SplitPattern::Regex(CELL_SPLIT.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(tok_err)?;
        let mut builder: TokenizerImpl<BPE, NFC, Sequence, PostProcessorWrapper, ByteLevelDecoder> =
            TokenizerBuilder::new()
                .with_model(BPE::default())
                .with_normalizer(Some(NFC))
                .with_pre_tokenizer(Some(Sequence::new(vec![
                    split.into(),
                    ByteLevel::new(false, false, false).into(),
                ])))
                .with_decoder(Some(ByteLevelDecoder::default()))
                .build()
                .map_err(tok_err)?;
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size - 3)
            .min_frequency(2)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let cleaned: Vec<String> = corpus
            .iter()
            .map(|t| {
                t.replace(ENDOFTEXT, "")
                    .replace(IM_START, "")
                    .replace(IM_END, "")
            })
            .collect();
        builder
            .train(&mut trainer, cleaned.iter())
            .map_err(tok_err)?;
        let json = builder.to_string(false).map_err(tok_err)?;
        let mut inner = tokenizers::Tokenizer::from_str(&json).map_err(tok_err)?;
        inner
            .add_special_tokens(
                [ENDOFTEXT, IM_START, IM_END].map(|s| AddedToken::from(s, true).normalized(false)),
            )
            .map_err(tok_err)?;
        Self::wrap(inner, Path::new("(built tokenizer)"))
    }

    /// Load a `tokenizer.json`; it must define the three specials.
    pub fn load(path: &Path) -> Result<Tokenizer, PolicyError> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| PolicyError::bad_file(path, format!("cannot load tokenizer: {e}")))?;
        Self::wrap(inner, path)
    }

    fn wrap(inner: tokenizers::Tokenizer, path: &Path) -> Result<Tokenizer, PolicyError> {
        let id = |s: &str| {
            inner.token_to_id(s).ok_or_else(|| {
                PolicyError::bad_file(path, format!("tokenizer has no special token {s}"))
            })
        };
        Ok(Tokenizer {
            eos: id(IM_END)?,
            pad: id(ENDOFTEXT)?,
            im_start: id(IM_START)?,
            inner,
        })
    }

    /// Write `tokenizer.json` (what `load` reads back; also loadable by HF `tokenizers`).
    pub fn save(&self, path: &Path) -> Result<(), PolicyError> {
        let json = self.inner.to_string(true).map_err(tok_err)?;
        std::fs::write(path, json).map_err(|e| PolicyError::io(path, e))
    }

    /// Ids of `text` with no added specials; special strings inside `text` become their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, PolicyError> {
        let enc = self.inner.encode(text, false).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, specials included; ids outside the vocabulary are skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, false).unwrap_or_default()
    }

    /// Text of `ids` without special tokens.
    pub fn decode_skip_special(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, true).unwrap_or_default()
    }

    /// `<|im_end|>`: the end of a reply.
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// `<|endoftext|>`: the padding id.
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// `<|im_start|>`.
    pub fn im_start_id(&self) -> u32 {
        self.im_start
    }

    /// Ids in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Chat template: each message as `<|im_start|>role\ncontent<|im_end|>\n`, then, when
    /// `open_assistant`, `<|im_start|>assistant\n` for the model to continue.
    pub fn chat_text(messages: &[ChatMessage], open_assistant: bool) -> String {
        let mut out = String::new();
        for m in messages {
            out.push_str(&format!("{IM_START}{}\n{}{IM_END}\n", m.role, m.content));
        }
        if open_assistant {
            out.push_str(&format!("{IM_START}assistant\n"));
        }
        out
    }
}
