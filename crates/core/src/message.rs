//! Message parts and artifacts exchanged with agents (the A2A shapes, protocol-neutral).

use serde::{Deserialize, Serialize};

/// One piece of a message or artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
    },
    /// Structured data.
    Data {
        data: serde_json::Value,
    },
    /// A file, inline (base64 on the wire).
    File {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        media_type: Option<String>,
        #[serde(with = "base64_bytes")]
        #[schema(value_type = String, format = Byte)]
        bytes: Vec<u8>,
    },
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }

    /// Bytes this part contributes to a task's output size.
    pub fn size(&self) -> usize {
        match self {
            Self::Text { text } => text.len(),
            Self::Data { data } => data.to_string().len(),
            Self::File {
                name,
                media_type,
                bytes,
            } => {
                bytes.len()
                    + name.as_ref().map_or(0, String::len)
                    + media_type.as_ref().map_or(0, String::len)
            }
        }
    }
}

/// Concatenated text of the text parts, newline-separated.
pub fn text_of(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Agent,
}

/// A message in a task's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
    /// The sender's id for the message (A2A `messageId`), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// An output of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Artifact {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub parts: Vec<Part>,
}

impl Artifact {
    /// Bytes this artifact contributes to a task's output size.
    pub fn size(&self) -> usize {
        self.id.len()
            + self.name.as_ref().map_or(0, String::len)
            + self.parts.iter().map(Part::size).sum::<usize>()
    }
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_through_json() {
        let parts = vec![
            Part::text("hi"),
            Part::Data {
                data: serde_json::json!({"a": 1}),
            },
            Part::File {
                name: Some("f.bin".into()),
                media_type: None,
                bytes: vec![0, 255, 7],
            },
        ];
        let json = serde_json::to_string(&parts).unwrap_or_default();
        assert!(json.contains(r#""bytes":"AP8H""#), "{json}");
        let back: Vec<Part> = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, parts);
        assert!(serde_json::from_str::<Part>(r#"{"kind":"file","bytes":"***"}"#).is_err());
        assert_eq!(text_of(&parts), "hi");
    }
}
