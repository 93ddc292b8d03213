//! ProtoJSON field names. A2A 1.0 messages are protobuf messages written as JSON, and a
//! ProtoJSON parser accepts each field under its lowerCamelCase JSON name (`taskId`) and under
//! its proto name (`task_id`). The handlers read the JSON names; [`accept_proto_names`] renames
//! proto names to them first.

use serde_json::{Map, Value};

/// Fields whose values are the caller's own data (`google.protobuf.Struct` and `Value`), whose
/// keys are never renamed: a message's or task's `metadata` and a data part's `data`.
const FREE_FORM_FIELDS: &[&str] = &["metadata", "data"];

/// Renames every `snake_case` key in `value` to its `lowerCamelCase` JSON name, except inside
/// [`FREE_FORM_FIELDS`]. When both spellings are present the JSON name wins and the proto one
/// is dropped, as a ProtoJSON parser would see one field set twice.
pub fn accept_proto_names(value: &mut Value) {
    match value {
        Value::Object(object) => accept_proto_names_in(object),
        Value::Array(items) => items.iter_mut().for_each(accept_proto_names),
        _ => {}
    }
}

/// [`accept_proto_names`] on an object's fields.
pub fn accept_proto_names_in(object: &mut Map<String, Value>) {
    let proto_names: Vec<String> = object.keys().filter(|k| k.contains('_')).cloned().collect();
    for proto_name in proto_names {
        if let Some(value) = object.remove(&proto_name) {
            object.entry(json_name(&proto_name)).or_insert(value);
        }
    }
    for (name, value) in object.iter_mut() {
        if !FREE_FORM_FIELDS.contains(&name.as_str()) {
            accept_proto_names(value);
        }
    }
}

/// The JSON name of a field: `history_length` → `historyLength` (protoc's rule: each letter
/// after `_` upper-cased); a JSON name stays as it is.
pub fn json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proto_names_become_json_names_outside_the_callers_data() {
        let cases = [
            (
                "list request",
                json!({"context_id": "c", "page_size": 2, "history_length": 1, "status": "s"}),
                json!({"contextId": "c", "pageSize": 2, "historyLength": 1, "status": "s"}),
            ),
            (
                "nested message, data and metadata kept as sent",
                json!({"message": {"message_id": "m", "task_id": "t",
                    "parts": [{"data": {"my_key": 1}}, {"text": "hi", "media_type": "text/plain"}],
                    "metadata": {"trace_id": "x"}},
                    "configuration": {"accepted_output_modes": ["text/plain"], "history_length": 0}}),
                json!({"message": {"messageId": "m", "taskId": "t",
                    "parts": [{"data": {"my_key": 1}}, {"text": "hi", "mediaType": "text/plain"}],
                    "metadata": {"trace_id": "x"}},
                    "configuration": {"acceptedOutputModes": ["text/plain"], "historyLength": 0}}),
            ),
            (
                "the JSON name wins over the proto name",
                json!({"taskId": "json", "task_id": "proto"}),
                json!({"taskId": "json"}),
            ),
            (
                "already JSON names, and odd underscores",
                json!({"id": "t", "a__b": 1, "_x": 2, "y_": 3}),
                json!({"id": "t", "aB": 1, "X": 2, "y": 3}),
            ),
        ];
        for (what, mut input, expected) in cases {
            accept_proto_names(&mut input);
            assert_eq!(input, expected, "{what}");
        }
    }
}
