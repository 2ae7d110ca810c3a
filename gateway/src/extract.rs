//! Request extractors that turn every kind of bad input into a clear problem+json: a body that
//! is too large (413), not JSON (415), malformed (400), or of the wrong shape (422 naming the
//! field, e.g. `request.quantity`), bad path ids and query strings (400).

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::error::{PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, web};
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

/// Body limit when the app did not configure one.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The configured body limit, set as app data.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body, limited in size, with errors that say which field is wrong.
pub struct Json<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
        .unwrap_or(false)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is larger than {limit} bytes"))
}

/// Decodes `body` as `T`, naming the offending field on a shape error.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {inner}")))
            } else {
                let field = if path == "." { "body".to_owned() } else { path };
                // serde's message ends with " at line 1 column 42": the field says where.
                let msg = inner.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                Err(ApiError::field(field, msg))
            }
        }
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map(|l| l.0).unwrap_or(DEFAULT_BODY_LIMIT);
        let json = is_json(req);
        let declared =
            req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ));
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large(limit));
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::bad_request("bad_body", format!("could not read the body: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            if body.is_empty() {
                return Err(ApiError::bad_request("malformed_json", "the body is empty; send a JSON object"));
            }
            decode(&body).map(Json)
        })
    }
}

/// An optional JSON body: no body at all means `T::default()`; a body that is sent must be
/// valid JSON of the right shape (it is never silently ignored).
pub struct JsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for JsonOrEmpty<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let length =
            req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        let empty = length == Some(0) || (length.is_none() && req.headers().get(CONTENT_TYPE).is_none());
        if empty {
            return Box::pin(async { Ok(JsonOrEmpty(T::default())) });
        }
        let fut = Json::<T>::from_request(req, payload);
        Box::pin(async move { fut.await.map(|j| JsonOrEmpty(j.0)) })
    }
}

/// For `web::QueryConfig`: a query string of the wrong shape.
pub fn query_error(e: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let detail = match &e {
        QueryPayloadError::Deserialize(d) => d.to_string(),
        other => other.to_string(),
    };
    ApiError::bad_request("invalid_query", format!("invalid query string: {detail}")).into()
}

/// For `web::PathConfig`: an id in the path that is not a UUID, and the like.
pub fn path_error(e: PathError, _req: &HttpRequest) -> actix_web::Error {
    let detail = match &e {
        PathError::Deserialize(d) => d.to_string(),
        other => other.to_string(),
    };
    ApiError::bad_request("invalid_path", format!("invalid path parameter: {detail}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        quantity: u32,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        request: Inner,
    }

    #[test]
    fn shape_errors_name_the_field() {
        let e = decode::<Outer>(br#"{"request": {"quantity": -1}}"#).expect_err("negative");
        assert_eq!(e.code, "validation_failed");
        assert_eq!(e.errors[0].field, "request.quantity");
        let e = decode::<Outer>(br#"{"request": {"quantity": 1, "extra": true}}"#).expect_err("unknown");
        assert_eq!(e.errors[0].field, "request.extra");
        assert!(e.errors[0].message.contains("unknown field"), "{}", e.errors[0].message);
        let e = decode::<Outer>(br#"{"request": "#).expect_err("eof");
        assert_eq!(e.code, "malformed_json");
    }
}
