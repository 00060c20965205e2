//! A JSON tree that keeps object keys in file order (serde_json's `Value` sorts them unless the
//! crate-wide `preserve_order` feature is on, and option groups must keep their catalog order:
//! it is the order pages show them and the order of the indexed option text), plus typed field
//! access that reports the file, record and field of any problem.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::WebShopError;

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<Json>),
    /// Key-value pairs in file order.
    Obj(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Num(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Num(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Num(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut pairs = Vec::new();
        while let Some((k, v)) = map.next_entry()? {
            pairs.push((k, v));
        }
        Ok(Json::Obj(pairs))
    }
}

/// Read and parse a JSON file.
pub fn read_file(path: &str) -> Result<Json, WebShopError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebShopError::Io {
        file: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| WebShopError::Json {
        file: path.to_owned(),
        problem: e.to_string(),
    })
}

impl Json {
    /// The value under `key` of an object (the last one if repeated, as Python's `json` keeps).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(pairs) => pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Num(_) => "a number",
            Json::Str(_) => "a string",
            Json::List(_) => "a list",
            Json::Obj(_) => "an object",
        }
    }
}

/// Where a record came from, so that every problem names file, record and field.
pub struct RecordAt<'a> {
    pub file: &'a str,
    /// 0-based position of the record in the file (or its key, for objects keyed by ASIN).
    pub record: String,
    pub value: &'a Json,
}

impl RecordAt<'_> {
    pub fn error(&self, field: &str, problem: impl Into<String>) -> WebShopError {
        WebShopError::Record {
            file: self.file.to_owned(),
            record: self.record.clone(),
            field: field.to_owned(),
            problem: problem.into(),
        }
    }

    fn required(&self, field: &str) -> Result<&Json, WebShopError> {
        self.value
            .get(field)
            .ok_or_else(|| self.error(field, "missing"))
    }

    pub fn string(&self, field: &str) -> Result<String, WebShopError> {
        let v = self.required(field)?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.error(field, format!("expected a string, found {}", v.kind())))
    }

    /// A list of strings; a lone string counts as a one-element list (the original wraps a
    /// string `small_description` that way).
    pub fn strings(&self, field: &str) -> Result<Vec<String>, WebShopError> {
        strings_of(self.required(field)?).map_err(|p| self.error(field, p))
    }

    pub fn numbers(&self, field: &str) -> Result<Vec<f64>, WebShopError> {
        match self.required(field)? {
            Json::List(items) => items
                .iter()
                .map(|x| match x {
                    Json::Num(n) => Ok(*n),
                    other => {
                        Err(self.error(field, format!("expected numbers, found {}", other.kind())))
                    }
                })
                .collect(),
            other => Err(self.error(field, format!("expected a list, found {}", other.kind()))),
        }
    }

    /// An object of string lists, in file order.
    pub fn string_lists(&self, field: &str) -> Result<Vec<(String, Vec<String>)>, WebShopError> {
        match self.required(field)? {
            Json::Obj(pairs) => pairs
                .iter()
                .map(|(k, v)| {
                    strings_of(v)
                        .map(|list| (k.clone(), list))
                        .map_err(|p| self.error(&format!("{field}.{k}"), p))
                })
                .collect(),
            other => Err(self.error(field, format!("expected an object, found {}", other.kind()))),
        }
    }
}

pub fn strings_of(v: &Json) -> Result<Vec<String>, String> {
    match v {
        Json::Str(s) => Ok(vec![s.clone()]),
        Json::List(items) => items
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("expected strings, found {}", x.kind()))
            })
            .collect(),
        other => Err(format!(
            "expected a list of strings, found {}",
            other.kind()
        )),
    }
}
