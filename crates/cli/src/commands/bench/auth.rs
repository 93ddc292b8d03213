//! `nexus bench auth`: what the gateway's checks cost per request, in process: the API key
//! check (hash and cache lookup, as on every request after the first), the Cedar decision
//! (built-in roles and a tenant policy), and both together, on a fresh SQLite data directory.

use std::time::{Duration, Instant};

use nexus_control::{Action, NewKeyRequest};
use nexus_core::identity::Role;
use nexus_core::{Caller, Name};
use serde::Serialize;

use super::Latency;
use crate::exit::CliError;

/// What `nexus bench auth` reports.
#[derive(Debug, Serialize)]
pub struct AuthReport {
    pub api_key_check: Latency,
    /// A decision already made under the tenant's current policies (remembered).
    pub cedar_decision: Latency,
    /// A decision Cedar evaluates every time (a tenant policy reads the clock).
    pub cedar_evaluation: Latency,
    pub credential_check: Latency,
}

fn internal(e: impl std::fmt::Display) -> CliError {
    CliError::internal(e.to_string())
}

/// Measures `iterations` of each check after a warm-up.
pub async fn auth(iterations: usize) -> Result<AuthReport, CliError> {
    let dir = tempfile::tempdir().map_err(internal)?;
    let mut config = nexus_config::Config::default();
    config.server.data_dir = dir.path().to_owned();
    let nexus_server::Platform {
        store,
        control,
        default_tenant: tenant,
    } = super::super::server::platform(&config).await?;
    let system = Caller::system(tenant);
    // A tenant policy, so the decision evaluates one besides the built-in roles.
    control
        .create_policy(
            &system,
            tenant,
            Name::parse("no-prod-sends").map_err(internal)?,
            String::new(),
            r#"forbid (principal, action == Nexus::Action::"task.send", resource)
               when { resource has tags && resource.tags.contains("prod") };"#
                .into(),
        )
        .await
        .map_err(internal)?;
    let key = control
        .create_key(
            &system,
            tenant,
            NewKeyRequest {
                name: "bench".into(),
                role: Role::Developer,
                platform_admin: false,
                expires_at: None,
            },
        )
        .await
        .map_err(internal)?
        .secret;
    let caller = control.authenticate(&key).await.map_err(internal)?;
    // A second tenant whose policy reads the clock: its decisions cannot be remembered.
    let timed = control
        .create_tenant(&system, Name::parse("timed").map_err(internal)?, None)
        .await
        .map_err(internal)?
        .id;
    control
        .create_policy(
            &system,
            timed,
            Name::parse("never-before-epoch").map_err(internal)?,
            String::new(),
            r#"forbid (principal, action, resource) when { context.now < 0 };"#.into(),
        )
        .await
        .map_err(internal)?;
    let timed_key = control
        .create_key(
            &system,
            timed,
            NewKeyRequest {
                name: "bench".into(),
                role: Role::Developer,
                platform_admin: false,
                expires_at: None,
            },
        )
        .await
        .map_err(internal)?
        .secret;
    let timed_caller = control.authenticate(&timed_key).await.map_err(internal)?;
    let mut evaluations = Vec::with_capacity(iterations);
    let (mut keys, mut decisions, mut both) = (
        Vec::with_capacity(iterations),
        Vec::with_capacity(iterations),
        Vec::with_capacity(iterations),
    );
    for round in 0..iterations + iterations / 10 {
        let warm = round >= iterations / 10;
        let start = Instant::now();
        let authenticated = control.authenticate(&key).await.map_err(internal)?;
        let checked = start.elapsed();
        control
            .may(&authenticated, tenant, Action::AgentList)
            .await
            .map_err(internal)?;
        let total = start.elapsed();
        let decided = time(control.may(&caller, tenant, Action::AgentList)).await?;
        let evaluated = time(control.may(&timed_caller, timed, Action::AgentList)).await?;
        if warm {
            keys.push(checked);
            both.push(total);
            decisions.push(decided);
            evaluations.push(evaluated);
        }
    }
    store.close().await;
    Ok(AuthReport {
        api_key_check: Latency::of(keys),
        cedar_decision: Latency::of(decisions),
        cedar_evaluation: Latency::of(evaluations),
        credential_check: Latency::of(both),
    })
}

async fn time(
    check: impl std::future::Future<Output = Result<(), nexus_control::ControlError>>,
) -> Result<Duration, CliError> {
    let start = Instant::now();
    check.await.map_err(internal)?;
    Ok(start.elapsed())
}
