//! JSON-RPC 1.0 messages as OVSDB uses them (RFC 7047 §4): requests,
//! responses and notifications, plus matching responses to pending requests.

use std::collections::HashMap;

use serde_json::{Value, json};
use thiserror::Error;

/// Why a JSON value is not a JSON-RPC message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RpcError {
    /// Not an object, or missing the members every message has.
    #[error("not a JSON-RPC message: {0}")]
    NotAMessage(String),
}

/// One JSON-RPC message on an OVSDB connection.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A call that expects a response with the same id.
    Request {
        /// Any JSON value chosen by the caller; echoed back in the response.
        id: Value,
        /// Method name, e.g. `transact` or `echo`.
        method: String,
        /// Positional parameters.
        params: Value,
    },
    /// A call with a null id that expects no response (`update`, `locked`, `stolen`).
    Notification {
        /// Method name.
        method: String,
        /// Positional parameters.
        params: Value,
    },
    /// The answer to a request.
    Response {
        /// The id of the request being answered.
        id: Value,
        /// `Ok(result)`, or `Err(error)` when the error member is not null.
        result: Result<Value, Value>,
    },
}

impl Message {
    /// Classifies a parsed JSON value.
    pub fn from_json(v: Value) -> Result<Self, RpcError> {
        let Value::Object(mut obj) = v else {
            return Err(RpcError::NotAMessage(v.to_string()));
        };
        if let Some(method) = obj.get("method") {
            let method = method
                .as_str()
                .ok_or_else(|| RpcError::NotAMessage("method is not a string".into()))?
                .to_owned();
            let params = obj.remove("params").unwrap_or(Value::Array(vec![]));
            let id = obj.remove("id").unwrap_or(Value::Null);
            return Ok(if id.is_null() {
                Message::Notification { method, params }
            } else {
                Message::Request { id, method, params }
            });
        }
        let Some(id) = obj.remove("id") else {
            return Err(RpcError::NotAMessage(Value::Object(obj).to_string()));
        };
        let error = obj.remove("error").unwrap_or(Value::Null);
        // ovsdb-server omits "result" entirely for an unknown method.
        let result = if error.is_null() {
            Ok(obj.remove("result").unwrap_or(Value::Null))
        } else {
            Err(error)
        };
        Ok(Message::Response { id, result })
    }

    /// The JSON form of this message, ready to serialize onto the stream.
    pub fn to_json(&self) -> Value {
        match self {
            Message::Request { id, method, params } => {
                json!({"id": id, "method": method, "params": params})
            }
            Message::Notification { method, params } => {
                json!({"id": null, "method": method, "params": params})
            }
            Message::Response { id, result } => match result {
                Ok(r) => json!({"id": id, "result": r, "error": null}),
                Err(e) => json!({"id": id, "result": null, "error": e}),
            },
        }
    }
}

/// Requests sent and not yet answered, keyed by the numeric ids we allocate.
///
/// `T` is whatever the caller needs to finish the request (a reply channel in
/// the client, a label in tests); this type does no I/O.
#[derive(Debug)]
pub struct Pending<T> {
    next_id: u64,
    waiting: HashMap<u64, T>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            next_id: 1,
            waiting: HashMap::new(),
        }
    }
}

impl<T> Pending<T> {
    /// Allocates an id, remembers `waiter` under it and returns the request to send.
    pub fn start(&mut self, method: &str, params: Value, waiter: T) -> Message {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.waiting.insert(id, waiter);
        Message::Request {
            id: json!(id),
            method: method.to_owned(),
            params,
        }
    }

    /// Takes the waiter for a response id; `None` for ids we never sent
    /// (including ids of our own echo probes, which are strings).
    pub fn finish(&mut self, id: &Value) -> Option<T> {
        id.as_u64().and_then(|n| self.waiting.remove(&n))
    }

    /// Takes every waiter, for failing them all when the connection drops.
    pub fn drain(&mut self) -> Vec<T> {
        self.waiting.drain().map(|(_, w)| w).collect()
    }

    /// Number of requests still unanswered.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True when nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Message {
        Message::from_json(serde_json::from_str(s).unwrap()).unwrap()
    }

    // Captured from ovsdb-server 3.1.0 on a unix socket with a small Python
    // client that printed each raw reply (see replica.rs for the setup).
    #[test]
    fn classifies_captured_messages() {
        assert_eq!(
            parse(r#"{"id":4,"result":{"locked":true},"error":null}"#),
            Message::Response {
                id: json!(4),
                result: Ok(json!({"locked":true}))
            }
        );
        assert_eq!(
            parse(r#"{"id":null,"method":"locked","params":["l1"]}"#),
            Message::Notification {
                method: "locked".into(),
                params: json!(["l1"])
            }
        );
        assert_eq!(
            parse(r#"{"id":7,"error":"unknown method"}"#),
            Message::Response {
                id: json!(7),
                result: Err(json!("unknown method"))
            }
        );
        assert_eq!(
            parse(r#"{"id":"echo","method":"echo","params":[]}"#),
            Message::Request {
                id: json!("echo"),
                method: "echo".into(),
                params: json!([])
            }
        );
        assert!(Message::from_json(json!([1])).is_err());
        assert!(Message::from_json(json!({"result": 1})).is_err());
        assert!(Message::from_json(json!({"method": 1})).is_err());
    }

    #[test]
    fn pending_matches_ids() {
        let mut p = Pending::default();
        let Message::Request { id: a, .. } = p.start("echo", json!([]), "a") else {
            panic!()
        };
        let Message::Request { id: b, .. } = p.start("echo", json!([]), "b") else {
            panic!()
        };
        assert_ne!(a, b);
        assert_eq!(p.finish(&b), Some("b"));
        assert_eq!(p.finish(&b), None);
        assert_eq!(p.finish(&json!("echo")), None);
        assert_eq!(p.len(), 1);
        assert_eq!(p.drain(), vec!["a"]);
        assert!(p.is_empty());
    }

    #[test]
    fn round_trips() {
        for m in [
            Message::Request {
                id: json!(1),
                method: "list_dbs".into(),
                params: json!([]),
            },
            Message::Notification {
                method: "update".into(),
                params: json!(["m", {}]),
            },
            Message::Response {
                id: json!(1),
                result: Ok(json!(["a"])),
            },
            Message::Response {
                id: json!(1),
                result: Err(json!({"error": "x"})),
            },
        ] {
            assert_eq!(Message::from_json(m.to_json()).unwrap(), m);
        }
    }
}
