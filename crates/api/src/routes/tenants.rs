//! `/v1/tenants`: the organisations that own everything else.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use nexus_api_model::{CreateTenant, ExportTrailer};
use nexus_control::TenantRef;
use nexus_core::{Cursor, ErrorCode, Name, Page, PageRequest, Tenant};
use serde::Deserialize;

use crate::Scope;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query};

/// Paging parameters of list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub after: Option<String>,
}

impl ListParams {
    /// The page these parameters ask for.
    pub fn page(self) -> PageRequest {
        PageRequest::after(
            self.after.map(Cursor),
            self.limit.unwrap_or(nexus_core::page::DEFAULT_PAGE_SIZE),
        )
    }
}

/// List tenants, oldest first.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(ListParams),
    responses(
        (status = 200, description = "A page of tenants", body = Page<Tenant>),
        (status = 400, description = "Invalid paging parameter", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn list_tenants(
    state: Scope,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<Tenant>>, ApiError> {
    Ok(Json(
        state
            .control
            .list_tenants(&state.caller, params.page())
            .await?,
    ))
}

/// Create a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses(
        (status = 201, description = "Created", body = Tenant),
        (status = 409, description = "The name is taken", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or body", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn create_tenant(
    state: Scope,
    Json(body): Json<CreateTenant>,
) -> Result<impl IntoResponse, ApiError> {
    let name = Name::parse(&body.name)
        .map_err(|e| ApiError::new(ErrorCode::ValidationFailed, format!("name: {e}")))?;
    let tenant = state
        .control
        .create_tenant(&state.caller, name, body.display_name)
        .await?;
    let location = format!("/v1/tenants/{}", tenant.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(tenant),
    ))
}

/// Get a tenant by name or id.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name or id", example = "default")),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 400, description = "Not a valid name or id", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn get_tenant(
    state: Scope,
    Path(tenant): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    Ok(Json(resolve_tenant(&state, &tenant).await?))
}

/// Delete a tenant and all its data (platform admins only). Its data key is destroyed first,
/// so nothing of it decrypts afterwards.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name or id", example = "acme")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not a platform admin", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 409, description = "The tenant the caller acts in", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn delete_tenant(
    state: Scope,
    Path(tenant): Path<String>,
) -> Result<StatusCode, ApiError> {
    let reference = parse_reference(&tenant)?;
    state
        .control
        .delete_tenant(&state.caller, &reference)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Media type of exports: one JSON record per line.
pub const NDJSON: &str = "application/x-ndjson";

/// Export all of a tenant's data (owners): one JSON object per line, each with a `record`
/// (`tenant` first, then `package`, `agent`, `revision`, `secret` (name only), `state`,
/// `task`, `task_event`, `push_config`, `api_key`, `member`, `team`, `service_account`,
/// `policy`, `audit_event`), ending with an `ExportTrailer`: `{"record":"end","records":N}`,
/// or `{"record":"error",...}` (a problem) if reading failed part-way: an export without its
/// `end` line is incomplete.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/export", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant name or id", example = "acme")),
    responses(
        (status = 200, description = "The tenant's records", content_type = "application/x-ndjson",
            body = String),
        (status = 403, description = "Not an owner of the tenant", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn export_tenant(
    state: Scope,
    Path(tenant): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let reference = parse_reference(&tenant)?;
    let (tenant, records) = state
        .control
        .export_tenant(&state.caller, &reference)
        .await?;
    let lines = ndjson_lines(records);
    let disposition = format!("attachment; filename=\"{}.ndjson\"", tenant.name);
    Ok((
        [
            (header::CONTENT_TYPE, NDJSON.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(lines),
    ))
}

/// Each record as a line, then the `end` line, or an `error` line where the export failed.
fn ndjson_lines(
    records: nexus_control::ExportStream,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::convert::Infallible>> {
    use futures::StreamExt;
    let mut count: u64 = 0;
    let mut done = false;
    records
        .map(Some)
        .chain(futures::stream::once(async { None }))
        .filter_map(move |item| {
            let line = if done {
                None
            } else {
                match item {
                    Some(Ok(record)) => {
                        count += 1;
                        Some(serde_json::to_value(&record).map_err(|e| {
                            ApiError::new(ErrorCode::Internal, format!("export record: {e}"))
                        }))
                    }
                    Some(Err(e)) => Some(Err(ApiError::from(e))),
                    None => Some(
                        serde_json::to_value(ExportTrailer::End { records: count }).map_err(|e| {
                            ApiError::new(ErrorCode::Internal, format!("export end: {e}"))
                        }),
                    ),
                }
            };
            let line = line.map(|value| {
                let value = value.unwrap_or_else(|error| {
                    done = true;
                    serde_json::to_value(ExportTrailer::Error(error.problem()))
                        .unwrap_or_else(|_| serde_json::json!({ "record": "error" }))
                });
                let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
                bytes.push(b'\n');
                Ok(bytes)
            });
            async move { line }
        })
}

fn parse_reference(name_or_id: &str) -> Result<TenantRef, ApiError> {
    TenantRef::parse(name_or_id).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("`tenant` must be a tenant name or id: {e}"),
        )
    })
}

/// Finds a tenant by id (a UUID) or by name, if the caller may see it.
pub async fn resolve_tenant(state: &Scope, name_or_id: &str) -> Result<Tenant, ApiError> {
    let reference = parse_reference(name_or_id)?;
    Ok(state.control.tenant(&state.caller, &reference).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::StreamExt;
    use nexus_control::{ControlError, ExportRecord};

    use super::ndjson_lines;

    async fn lines(items: Vec<Result<ExportRecord, ControlError>>) -> Vec<serde_json::Value> {
        let stream: nexus_control::ExportStream = Box::pin(futures::stream::iter(items));
        ndjson_lines(stream)
            .map(|line| {
                let line = line.unwrap();
                assert_eq!(line.last(), Some(&b'\n'));
                serde_json::from_slice(&line).unwrap()
            })
            .collect()
            .await
    }

    fn secret(name: &str) -> ExportRecord {
        ExportRecord::Secret {
            agent_id: nexus_core::AgentId::new(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn a_complete_export_ends_with_its_count_and_a_broken_one_with_its_error() {
        let whole = lines(vec![Ok(secret("a")), Ok(secret("b"))]).await;
        let records: Vec<&str> = whole
            .iter()
            .map(|l| l["record"].as_str().unwrap())
            .collect();
        assert_eq!(records, ["secret", "secret", "end"]);
        assert_eq!(whole[2]["records"], 2);

        let broken = lines(vec![
            Ok(secret("a")),
            Err(ControlError::Internal("disk on fire".into())),
        ])
        .await;
        let records: Vec<&str> = broken
            .iter()
            .map(|l| l["record"].as_str().unwrap())
            .collect();
        assert_eq!(records, ["secret", "error"], "no end after an error");
        assert_eq!(broken[1]["code"], "internal");

        let empty = lines(vec![]).await;
        assert_eq!(empty[0]["record"], "end");
        assert_eq!(empty[0]["records"], 0);
    }
}
