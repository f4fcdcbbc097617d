//! The one error shape of the API: `{error, field, reason, errors}` with a 4xx/5xx status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::node::ProposeError;
use crate::state_machine::ApplyError;
use crate::validate::ValidationError;

/// An error answer; `field`/`reason` repeat the first entry of `errors` for simple clients.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable class: `invalid`, `conflict`, `not_found`, `not_leader`, `unavailable`.
    pub error: &'static str,
    /// Every problem found.
    pub errors: Vec<ValidationError>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    field: &'a str,
    reason: &'a str,
    errors: &'a [ValidationError],
}

impl ApiError {
    /// A 400 about one field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid",
            errors: vec![ValidationError::new(field, reason)],
        }
    }

    /// A 404.
    pub fn not_found(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            errors: vec![ValidationError::new(field, reason)],
        }
    }

    /// Parses a JSON body, naming the offending field on failure.
    pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let top = path == "." || path == "?" || path.is_empty();
            // The path already names an unknown field itself.
            let reason = e.into_inner().to_string();
            // A missing field's path is its parent, and so is an unknown
            // field's inside a tagged enum (serde buffers its content):
            // name the field itself.
            let named = |prefix: &str| {
                reason
                    .strip_prefix(prefix)
                    .and_then(|r| r.split_once('`'))
                    .map(|(f, _)| f.to_string())
            };
            let missing = named("missing field `").or_else(|| {
                named("unknown field `")
                    .filter(|f| path.rsplit('.').next() != Some(f.as_str()) && path != *f)
            });
            let field = match (missing, top) {
                (Some(f), true) => f,
                (Some(f), false) => format!("{path}.{f}"),
                (None, true) => "body".to_string(),
                (None, false) => path,
            };
            ApiError::invalid(field, reason)
        })
    }
}

impl From<ProposeError> for ApiError {
    fn from(e: ProposeError) -> ApiError {
        match e {
            ProposeError::Rejected(ApplyError::Invalid(errors)) => ApiError {
                status: StatusCode::BAD_REQUEST,
                error: "invalid",
                errors,
            },
            ProposeError::Rejected(ApplyError::Conflict(errors)) => ApiError {
                status: StatusCode::CONFLICT,
                error: "conflict",
                errors,
            },
            ProposeError::Rejected(ApplyError::NotFound(what)) => {
                let field = if what.starts_with("lease") {
                    "lease"
                } else {
                    "name"
                };
                ApiError::not_found(field, format!("{what} does not exist"))
            }
            ProposeError::NotLeader { leader } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "not_leader",
                errors: vec![ValidationError::new(
                    "leader",
                    format!("this node is not the leader (leader id {leader})"),
                )],
            },
            ProposeError::Dropped(r) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "unavailable",
                errors: vec![ValidationError::new("request", r)],
            },
            ProposeError::Stopped => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "unavailable",
                errors: vec![ValidationError::new("store", "the store is stopped")],
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (field, reason) = self
            .errors
            .first()
            .map(|e| (e.field.as_str(), e.reason.as_str()))
            .unwrap_or(("", ""));
        let body = Body {
            error: self.error,
            field,
            reason,
            errors: &self.errors,
        };
        (self.status, axum::Json(body)).into_response()
    }
}
