//! What of a request body is kept in its record: at most [`MAX_BODY`] bytes, and never the
//! values of a Secret.
//!
//! A body of a Secret request (the `secrets` resource, or any JSON object of kind `Secret`,
//! `SecretList` or `List` holding one) keeps its shape with every value under `data` and
//! `stringData` replaced by `"***"`; a Secret body that is not JSON (protobuf, YAML) is not kept
//! at all. Redaction happens before the cap, so a cut never reveals a value.

use serde_json::Value;

/// Bytes of a request body kept in its record.
pub const MAX_BODY: usize = 4096;

/// What replaces a Secret's values.
const REDACTED: &str = "***";

/// The text the record keeps of `body` (`None`: no body).
pub fn body_for_record(body: &[u8], secret_request: bool) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(mut value) => {
            let found = redact_secrets(&mut value);
            if secret_request && !found {
                // A secrets request whose body is no Secret (a patch): keep nothing of it.
                return Some(format!("(body of {} bytes not kept: a Secret)", body.len()));
            }
            let text = serde_json::to_string(&value).unwrap_or_default();
            Some(rampart_session::database::bounded(&text, MAX_BODY))
        }
        Err(_) if secret_request => {
            Some(format!("(body of {} bytes not kept: a Secret)", body.len()))
        }
        Err(_) if std::str::from_utf8(body).is_ok() => Some(rampart_session::database::bounded(
            &String::from_utf8_lossy(body),
            MAX_BODY,
        )),
        Err(_) => Some(format!("({} bytes, not text)", body.len())),
    }
}

/// Replaces the values of every Secret in `value` (itself, or the items of a list); whether
/// there was one.
pub fn redact_secrets(value: &mut Value) -> bool {
    let Some(object) = value.as_object_mut() else {
        return false;
    };
    let mut found = false;
    if object.get("kind").and_then(Value::as_str) == Some("Secret") {
        for field in ["data", "stringData"] {
            if let Some(Value::Object(values)) = object.get_mut(field) {
                for v in values.values_mut() {
                    *v = Value::String(REDACTED.to_owned());
                }
            } else if object.contains_key(field) {
                object.insert(field.to_owned(), Value::String(REDACTED.to_owned()));
            }
        }
        // `kubectl apply` keeps the whole object in an annotation.
        if let Some(Value::Object(annotations)) = object
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            && annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration")
        {
            annotations.insert(
                "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                Value::String(REDACTED.to_owned()),
            );
        }
        found = true;
    }
    if let Some(Value::Array(items)) = object.get_mut("items") {
        for item in items {
            found |= redact_secrets(item);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "c2VjcmV0LWNhbmFyeQ==";

    #[test]
    fn secret_values_never_reach_the_record() {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"db","annotations":{{"kubectl.kubernetes.io/last-applied-configuration":"{{\"data\":{{\"p\":\"{CANARY}\"}}}}"}}}},"data":{{"password":"{CANARY}"}},"stringData":{{"token":"plain-{CANARY}"}}}}"#
        );
        let kept = body_for_record(body.as_bytes(), true).unwrap();
        assert!(!kept.contains(CANARY), "{kept}");
        assert!(kept.contains("\"password\":\"***\""), "{kept}");
        let list =
            format!(r#"{{"kind":"List","items":[{{"kind":"Secret","data":{{"a":"{CANARY}"}}}}]}}"#);
        assert!(
            !body_for_record(list.as_bytes(), false)
                .unwrap()
                .contains(CANARY)
        );
        // Not JSON, or JSON that is no Secret, on a secrets request: nothing of it is kept.
        for body in [
            format!("data:\n  a: {CANARY}\n"),
            format!(r#"{{"data":{{"a":"{CANARY}"}}}}"#),
        ] {
            let kept = body_for_record(body.as_bytes(), true).unwrap();
            assert!(!kept.contains(CANARY), "{kept}");
        }
    }

    #[test]
    fn bodies_are_capped() {
        let body = format!(
            r#"{{"kind":"ConfigMap","data":{{"a":"{}"}}}}"#,
            "x".repeat(10_000)
        );
        let kept = body_for_record(body.as_bytes(), false).unwrap();
        assert!(kept.len() < MAX_BODY + 100, "{}", kept.len());
        assert!(kept.contains("more bytes"));
        assert_eq!(body_for_record(b"", false), None);
    }
}
