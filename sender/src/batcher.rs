//! Request bodies built from already-serialized events, and their exact size: a body is
//! `{"api_key":K[,"options":{...}],"events":[e1,e2,...]}` (spec §3.1), measured on the bytes
//! actually sent (spec §3.4).

use serde_json::json;

/// Builds bodies for one project and knows their size before building them.
#[derive(Debug, Clone)]
pub struct BodyBuilder {
    prefix: Vec<u8>,
}

const SUFFIX: &[u8] = b"]}";

impl BodyBuilder {
    /// A builder for `api_key`, with `options.min_id_length` when given (spec §3.1).
    pub fn new(api_key: &str, min_id_length: Option<u32>) -> Self {
        let key = serde_json::Value::String(api_key.to_owned()).to_string();
        let mut prefix = format!("{{\"api_key\":{key},");
        if let Some(n) = min_id_length {
            prefix.push_str(&format!("\"options\":{},", json!({ "min_id_length": n })));
        }
        prefix.push_str("\"events\":[");
        Self {
            prefix: prefix.into_bytes(),
        }
    }

    /// Size in bytes of a body holding `events` events whose JSON totals `event_bytes` bytes.
    pub fn body_len(&self, events: usize, event_bytes: usize) -> usize {
        self.prefix.len() + event_bytes + events.saturating_sub(1) + SUFFIX.len()
    }

    /// The body for `events` (each one event's JSON), in order.
    pub fn build<'a>(
        &self,
        events: impl IntoIterator<Item = &'a [u8]>,
        size_hint: usize,
    ) -> Vec<u8> {
        let mut body = Vec::with_capacity(size_hint);
        body.extend_from_slice(&self.prefix);
        for (i, e) in events.into_iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(e);
        }
        body.extend_from_slice(SUFFIX);
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amplitude_wire::UploadRequest;

    #[test]
    fn body_is_a_valid_upload_request_of_the_predicted_size() {
        // spec §3.1 body shape; spec §3.4 sizes measured on serialized bytes
        let b = BodyBuilder::new("KEY\"x", Some(1));
        let evs: Vec<&[u8]> = vec![
            br#"{"event_type":"A","user_id":"user-1"}"#,
            br#"{"event_type":"B","device_id":"dev-12"}"#,
        ];
        let total: usize = evs.iter().map(|e| e.len()).sum();
        let body = b.build(evs.iter().copied(), 0);
        assert_eq!(body.len(), b.body_len(2, total));
        let req: UploadRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(req.api_key.as_deref(), Some("KEY\"x"));
        assert_eq!(req.events.map(|e| e.len()), Some(2));
        assert_eq!(req.options.and_then(|o| o.min_id_length), Some(1));
        let empty = b.build(std::iter::empty(), 0);
        assert_eq!(empty.len(), b.body_len(0, 0));
    }
}
