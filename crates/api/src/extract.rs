//! Extractors that turn every malformed-input rejection into a problem+json [`ApiError`].

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nexus_core::ErrorCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// JSON body extractor and responder with problem+json rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let code = match &rejection {
        JsonRejection::JsonDataError(_) => ErrorCode::InvalidBody,
        JsonRejection::JsonSyntaxError(_) => ErrorCode::InvalidJson,
        JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        _ => ErrorCode::InvalidBody,
    };
    ApiError::new(code, rejection.body_text())
}

/// Path parameters with problem+json rejections.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection: PathRejection| {
                ApiError::new(ErrorCode::InvalidParameter, rejection.body_text())
            })
    }
}

/// Query parameters with problem+json rejections.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::new(ErrorCode::InvalidParameter, rejection.body_text())
            })
    }
}

/// The raw request body, with problem+json rejections (e.g. 413 past the body limit).
#[derive(Debug)]
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|rejection: BytesRejection| {
                let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorCode::PayloadTooLarge
                } else {
                    ErrorCode::InvalidBody
                };
                ApiError::new(code, rejection.body_text())
            })
    }
}

/// Media types a JSON request body may be declared as: JSON, and A2A's own (A2A 1.0 §11.1).
/// Parameters (`; charset=utf-8`) are allowed; the type is compared without case.
const JSON_MEDIA_TYPES: [&str; 2] = ["application/json", "application/a2a+json"];

/// Whether `headers` declare one [JSON media type](JSON_MEDIA_TYPES).
pub fn declares_json(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    match (types.next(), types.next()) {
        (Some(value), None) => value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| {
                JSON_MEDIA_TYPES
                    .iter()
                    .any(|json| essence.trim().eq_ignore_ascii_case(json))
            }),
        _ => false,
    }
}

/// Refuses (`415 unsupported_media_type`) a body that is not declared JSON, before anything
/// reads it. A browser page may send `text/plain`, form types or no type at all to any origin
/// without a CORS preflight, so accepting them would let any web page call the endpoint.
/// A request with neither a body nor a `Content-Type` passes when `body_required` is false
/// (the A2A REST binding's `tasks/{id}:subscribe` is such a `POST`).
pub fn require_json(headers: &HeaderMap, body: &[u8], body_required: bool) -> Result<(), ApiError> {
    let untyped_and_empty = !headers.contains_key(header::CONTENT_TYPE) && body.is_empty();
    if declares_json(headers) || (untyped_and_empty && !body_required) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::UnsupportedMediaType,
        "the body must be declared `Content-Type: application/json` (or `application/a2a+json`)",
    ))
}
