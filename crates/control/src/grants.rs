//! What a deployment grants and configures. The rule, the same for every client:
//!
//! - Grants listed in the request are exactly what the revision gets; each must be declared
//!   by the manifest (a list narrows, it never widens).
//! - Without a list, the revision gets what the manifest requests: on a redeployment, each
//!   request the current revision's manifest made too carries over as the current revision
//!   has it (granted, or left out by an earlier narrowing), and what the manifest newly
//!   requests (everything, on a first deployment) is granted only when the deployer confirmed
//!   it, else the deployment is refused with [`ControlError::GrantsUnconfirmed`] naming it.
//! - Config carries over from the current revision; the request's values replace or add keys,
//!   and its `unset_config` keys are removed.

use std::collections::BTreeMap;

use nexus_core::{Grants, Name};
use nexus_host::capability;
use nexus_host::http::{HostPattern, OutboundPolicy};
use nexus_package::Manifest;

use crate::{ControlError, GRANTABLE};

/// What `manifest` requests, as grants: its capabilities by name, then its hosts, in manifest
/// order.
pub fn requested(manifest: &Manifest) -> Grants {
    Grants {
        capabilities: manifest
            .capabilities
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        hosts: manifest.capabilities.hosts.clone(),
    }
}

/// What the agent had before a redeployment: its current revision's grants and what that
/// revision's manifest requested.
pub(crate) struct Current<'a> {
    pub(crate) granted: &'a Grants,
    pub(crate) requested: Grants,
}

/// The grants of a deployment that lists none (see the module's rule): the manifest's
/// requests, less those an earlier revision was deployed without; what is newly requested
/// needs `confirmed`.
pub(crate) fn from_manifest(
    agent: &Name,
    manifest: &Manifest,
    current: Option<&Current<'_>>,
    confirmed: bool,
) -> Result<Grants, ControlError> {
    let wanted = requested(manifest);
    let mut grants = Grants::default();
    let mut unconfirmed = Vec::new();
    // Carried over as the current revision has it, or new.
    let mut decide =
        |item: &String, before: Option<(&[String], &[String])>, into: &mut Vec<_>| match before {
            Some((requested, granted)) if requested.contains(item) => {
                if granted.contains(item) {
                    into.push(item.clone());
                }
            }
            _ => {
                unconfirmed.push(item.clone());
                into.push(item.clone());
            }
        };
    for capability in &wanted.capabilities {
        let before = current.map(|c| {
            (
                c.requested.capabilities.as_slice(),
                c.granted.capabilities.as_slice(),
            )
        });
        decide(capability, before, &mut grants.capabilities);
    }
    for host in &wanted.hosts {
        let before = current.map(|c| (c.requested.hosts.as_slice(), c.granted.hosts.as_slice()));
        decide(host, before, &mut grants.hosts);
    }
    if !unconfirmed.is_empty() && !confirmed {
        return Err(ControlError::GrantsUnconfirmed(format!(
            "the package requests grants agent `{agent}` does not have yet: {}; they are given \
             only when the deployer confirms them, or when the deployment lists its grants",
            unconfirmed.join(", ")
        )));
    }
    Ok(grants)
}

/// The config of a new revision: the current revision's, with `set` added or replacing and
/// `unset` removed. Unsetting a key that is not there, or setting and unsetting one at once,
/// is refused rather than ignored: it is most likely a typo.
pub(crate) fn config(
    agent: &Name,
    current: Option<&BTreeMap<String, String>>,
    set: BTreeMap<String, String>,
    unset: &[String],
) -> Result<BTreeMap<String, String>, ControlError> {
    let mut config = current.cloned().unwrap_or_default();
    for key in unset {
        if set.contains_key(key) {
            return Err(ControlError::Invalid(format!(
                "config `{}` is both set and unset",
                key.escape_debug()
            )));
        }
        if config.remove(key).is_none() {
            return Err(ControlError::Invalid(format!(
                "agent `{agent}` has no config `{}` to unset",
                key.escape_debug()
            )));
        }
    }
    config.extend(set);
    Ok(config)
}

/// On a node that keeps agents off non-public addresses, a host grant that can only ever name
/// one (a private IP literal, `localhost`) is refused when deployed, rather than every call
/// failing later. Grants whose names resolve to private addresses are refused at each call.
pub(crate) fn check_private_hosts(
    grants: &Grants,
    allow_private: bool,
) -> Result<(), ControlError> {
    if allow_private {
        return Ok(());
    }
    for host in &grants.hosts {
        let pattern = HostPattern::parse(host).map_err(|e| ControlError::Grant(e.to_string()))?;
        if pattern.is_private_only() {
            return Err(ControlError::Grant(format!(
                "host `{host}` is a private, loopback or link-local address, which this node \
                 does not let agents reach (the operator's `[runtime] allow_private_addresses`)"
            )));
        }
    }
    Ok(())
}

/// Grants may only name known capabilities the manifest declares, and hosts it lists.
pub fn check_grants(manifest: &Manifest, grants: &Grants) -> Result<(), ControlError> {
    let declared = &manifest.capabilities;
    for capability in &grants.capabilities {
        let allowed = match capability.as_str() {
            capability::STATE => declared.state,
            capability::LLM => declared.llm,
            capability::AGENTS => declared.agents,
            capability::BUS => declared.bus,
            other => {
                return Err(ControlError::Grant(format!(
                    "unknown capability `{other}`; grantable: {}",
                    GRANTABLE.join(", ")
                )));
            }
        };
        if !allowed {
            return Err(ControlError::Grant(format!(
                "`{capability}` is not declared in the package manifest's [capabilities]"
            )));
        }
    }
    for host in &grants.hosts {
        OutboundPolicy::new(&[host]).map_err(|e| ControlError::Grant(e.to_string()))?;
        if !declared.hosts.iter().any(|h| h == host) {
            return Err(ControlError::Grant(format!(
                "host `{host}` is not declared in the package manifest's [capabilities].hosts"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn manifest(capabilities: &str) -> Manifest {
        let text = format!(
            "[agent]\nname = \"a\"\nnamespace = \"n\"\nversion = \"0.1.0\"\ndescription = \"d\"\n\n\
             [[skills]]\nid = \"s\"\nname = \"S\"\ndescription = \"d\"\n\n\
             [capabilities]\n{capabilities}\n"
        );
        nexus_package::parse_manifest("nexus.toml", &text).unwrap()
    }

    fn grants(capabilities: &[&str], hosts: &[&str]) -> Grants {
        Grants {
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    /// A case: its name, the current revision (what its manifest requested, what it was
    /// granted), the new manifest's capabilities, whether the deployer confirmed, and the grants
    /// or the text naming the unconfirmed ones.
    type Case = (
        &'static str,
        Option<(Grants, Grants)>,
        &'static str,
        bool,
        Result<Grants, &'static str>,
    );

    #[test]
    fn grants_follow_the_manifest_and_carry_over() {
        let host = "https://api.example.com";
        let cases: [Case; 7] = [
            (
                "first deployment, confirmed: all requested",
                None,
                "state = true\nhosts = [\"https://api.example.com\"]",
                true,
                Ok(grants(&["state"], &[host])),
            ),
            (
                "first deployment, unconfirmed: refused, naming every request",
                None,
                "state = true\nhosts = [\"https://api.example.com\"]",
                false,
                Err("state, https://api.example.com"),
            ),
            (
                "nothing requested needs no confirmation",
                None,
                "",
                false,
                Ok(Grants::default()),
            ),
            (
                "the same requests again carry over unconfirmed",
                Some((grants(&["state"], &[]), grants(&["state"], &[]))),
                "state = true",
                false,
                Ok(grants(&["state"], &[])),
            ),
            (
                "a narrowed-out request stays out",
                Some((grants(&["state", "llm"], &[]), grants(&["state"], &[]))),
                "state = true\nllm = true",
                false,
                Ok(grants(&["state"], &[])),
            ),
            (
                "a new request needs confirmation, and only it is named",
                Some((grants(&["state"], &[]), grants(&["state"], &[]))),
                "state = true\nllm = true",
                false,
                Err("does not have yet: llm;"),
            ),
            (
                "a request the manifest dropped goes",
                Some((
                    grants(&["state", "llm"], &[]),
                    grants(&["state", "llm"], &[]),
                )),
                "llm = true",
                false,
                Ok(grants(&["llm"], &[])),
            ),
        ];
        let agent = Name::parse("a").unwrap();
        for (case, before, capabilities, confirmed, expected) in cases {
            let current = before.as_ref().map(|(requested, granted)| Current {
                granted,
                requested: requested.clone(),
            });
            let got = from_manifest(&agent, &manifest(capabilities), current.as_ref(), confirmed);
            match (got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{case}"),
                (Err(ControlError::GrantsUnconfirmed(why)), Err(named)) => {
                    assert!(why.contains(named), "{case}: {why}");
                }
                (got, expected) => panic!("{case}: {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn config_carries_over_and_unset_is_checked() {
        let agent = Name::parse("a").unwrap();
        let current: BTreeMap<String, String> = [("a", "1"), ("b", "2")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let set: BTreeMap<String, String> = [("b".to_owned(), "3".to_owned())].into();
        let merged = config(&agent, Some(&current), set.clone(), &["a".to_owned()]).unwrap();
        assert_eq!(merged, set);
        assert_eq!(
            config(&agent, Some(&current), BTreeMap::new(), &[]).unwrap(),
            current
        );
        for unset in ["zz", "b"] {
            let refused = config(&agent, Some(&current), set.clone(), &[unset.to_owned()]);
            assert!(
                matches!(refused, Err(ControlError::Invalid(_))),
                "{unset}: {refused:?}"
            );
        }
        assert!(config(&agent, None, BTreeMap::new(), &["a".to_owned()]).is_err());
    }
}
