//! Every way the policy can fail, each naming the file, tensor or setting involved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("{file}: tensor {name}: {problem}")]
    BadTensor {
        file: PathBuf,
        name: String,
        problem: String,
    },
    #[error("model configuration: {0}")]
    Config(String),
    #[error("device {0:?}: {1}")]
    Device(String, String),
    #[error("request {request}: prompt has {len} tokens but the context limit is {limit}")]
    PromptTooLong {
        request: usize,
        len: usize,
        limit: usize,
    },
    #[error("bad input: {0}")]
    Input(String),
    #[error("tensor math: {0}")]
    Candle(#[from] candle_core::Error),
}

impl PolicyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PolicyError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        PolicyError::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn bad_tensor(
        file: impl Into<PathBuf>,
        name: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        PolicyError::BadTensor {
            file: file.into(),
            name: name.into(),
            problem: problem.into(),
        }
    }
}
