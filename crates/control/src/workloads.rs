//! Workload identities: a client certificate that the TLS layer verified against the client CA
//! and that names `spiffe://<trust domain>/tenants/<tenant>/service-accounts/<name>` in its
//! subjectAltName authenticates as that service account (`Principal::Service`, with the
//! account's role), for machines that hold certificates (a service mesh, SPIRE, cert-manager)
//! rather than API keys. A bearer credential, when the request has one, wins.
//!
//! Off unless a trust domain is set (`[server.tls] trust_domain`): without one, client
//! certificates only admit connections. Refusals count in
//! `nexus_auth_failures_total{reason="workload_…"}` and are audited like unknown keys.

use nexus_core::{Caller, Name, Principal};
use nexus_store::StoreError;

use crate::{ControlError, ControlPlane};

/// The URI scheme of SPIFFE ids.
pub const SPIFFE_SCHEME: &str = "spiffe://";

/// Which service account a SPIFFE id names, if it is one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadId {
    pub tenant: Name,
    pub service_account: Name,
}

impl WorkloadId {
    /// Parses `spiffe://<trust_domain>/tenants/<tenant>/service-accounts/<name>`; `None` for
    /// any other URI, another trust domain, or names that are not names.
    pub fn parse(uri: &str, trust_domain: &str) -> Option<Self> {
        let rest = uri.strip_prefix(SPIFFE_SCHEME)?;
        let (domain, path) = rest.split_once('/')?;
        if domain != trust_domain {
            return None;
        }
        let mut segments = path.split('/');
        match (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) {
            (Some("tenants"), Some(tenant), Some("service-accounts"), Some(account), None) => {
                Some(Self {
                    tenant: Name::parse(tenant).ok()?,
                    service_account: Name::parse(account).ok()?,
                })
            }
            _ => None,
        }
    }
}

impl ControlPlane {
    /// Accepts workload certificates of `trust_domain` (see the module documentation).
    #[must_use]
    pub fn with_trust_domain(mut self, trust_domain: Option<String>) -> Self {
        self.trust_domain = trust_domain;
        self
    }

    /// Whether client certificates can authenticate requests here.
    pub fn accepts_workload_certificates(&self) -> bool {
        self.trust_domain.is_some()
    }

    /// The service account that the verified client certificate's subjectAltName `uris` name.
    /// `Unauthenticated` when none of them is a SPIFFE id of the trust domain naming an
    /// existing service account (or when workload certificates are off).
    pub async fn authenticate_workload(&self, uris: &[String]) -> Result<Caller, ControlError> {
        let refuse = |reason: &'static str, message: &str| {
            metrics::counter!("nexus_auth_failures_total", "reason" => reason).increment(1);
            ControlError::Unauthenticated(message.to_owned())
        };
        let Some(domain) = &self.trust_domain else {
            return Err(refuse(
                "workload_off",
                "client certificates do not authenticate requests here; send a bearer credential",
            ));
        };
        let Some(id) = uris.iter().find_map(|uri| WorkloadId::parse(uri, domain)) else {
            self.record_auth_failure("workload_foreign").await;
            return Err(refuse(
                "workload_foreign",
                "the client certificate names no service account of this platform's trust domain",
            ));
        };
        let found = match self.store.get_tenant_by_name(&id.tenant).await {
            Ok(tenant) => {
                match self
                    .store
                    .get_service_account(tenant.id, &id.service_account)
                    .await
                {
                    Ok(account) => Ok(account),
                    Err(StoreError::NotFound { .. }) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            }
            Err(StoreError::NotFound { .. }) => Err(None),
            Err(e) => Err(Some(e)),
        };
        let account = match found {
            Ok(account) => account,
            Err(Some(e)) => return Err(e.into()),
            Err(None) => {
                self.record_auth_failure("workload_unknown").await;
                return Err(refuse(
                    "workload_unknown",
                    "the client certificate names a tenant or service account that does not exist",
                ));
            }
        };
        Ok(Caller {
            tenant: account.tenant_id,
            principal: Principal::Service {
                id: account.id,
                name: account.name,
            },
            role: account.role,
            platform_admin: false,
            trace_id: None,
            teams: Vec::new(),
            client_ip: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_trust_domains_service_account_ids_parse() {
        let domain = "nexus.example.com";
        let ok = WorkloadId::parse(
            "spiffe://nexus.example.com/tenants/acme/service-accounts/ci",
            domain,
        );
        assert_eq!(
            ok,
            Some(WorkloadId {
                tenant: Name::parse("acme").unwrap(),
                service_account: Name::parse("ci").unwrap(),
            })
        );
        for refused in [
            "spiffe://other.example.com/tenants/acme/service-accounts/ci",
            "spiffe://nexus.example.com.evil/tenants/acme/service-accounts/ci",
            "https://nexus.example.com/tenants/acme/service-accounts/ci",
            "spiffe://nexus.example.com/tenants/acme/service-accounts/ci/extra",
            "spiffe://nexus.example.com/tenants/acme/service-accounts/",
            "spiffe://nexus.example.com/tenants/acme/users/ci",
            "spiffe://nexus.example.com/tenants/ACME/service-accounts/ci",
            "spiffe://nexus.example.com/tenants/../service-accounts/ci",
            "spiffe://nexus.example.com",
            "",
        ] {
            assert_eq!(WorkloadId::parse(refused, domain), None, "{refused}");
        }
    }
}
