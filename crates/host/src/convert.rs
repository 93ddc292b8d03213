//! Conversions between the WIT types and `nexus-core`'s message types.

use nexus_core::message::{Artifact, Message, Part, Role};

use crate::bindings::nexus::agent::types as wit;

/// A WIT part as a core part. A `data` part whose text is not JSON becomes a text part, so a
/// guest cannot produce output that fails to serialise.
pub fn part_from_wit(part: wit::Part) -> Part {
    match part {
        wit::Part::Text(text) => Part::Text { text },
        wit::Part::Data(json) => match serde_json::from_str(&json) {
            Ok(data) => Part::Data { data },
            Err(_) => Part::Text { text: json },
        },
        wit::Part::File(file) => Part::File {
            name: file.name,
            media_type: file.media_type,
            bytes: file.bytes,
        },
    }
}

/// A core part as a WIT part.
pub fn part_to_wit(part: &Part) -> wit::Part {
    match part {
        Part::Text { text } => wit::Part::Text(text.clone()),
        Part::Data { data } => wit::Part::Data(data.to_string()),
        Part::File {
            name,
            media_type,
            bytes,
        } => wit::Part::File(wit::FilePart {
            name: name.clone(),
            media_type: media_type.clone(),
            bytes: bytes.clone(),
        }),
    }
}

pub fn artifact_from_wit(artifact: wit::Artifact) -> Artifact {
    Artifact {
        id: artifact.id,
        name: artifact.name,
        parts: artifact.parts.into_iter().map(part_from_wit).collect(),
    }
}

pub fn message_to_wit(message: &Message) -> wit::Message {
    wit::Message {
        role: match message.role {
            Role::User => wit::Role::User,
            Role::Agent => wit::Role::Agent,
        },
        parts: message.parts.iter().map(part_to_wit).collect(),
    }
}
