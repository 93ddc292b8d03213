//! Teams: named groups of a tenant's members. Each member has at least the team's role in the
//! tenant (the highest of its membership's and its teams' roles, fixed when a session opens);
//! every change to a team ends the sessions of the members it touches, so the new role applies
//! from their next login.

use nexus_core::identity::Role;
use nexus_core::{Caller, Name, Team, TeamId, TenantId};
use nexus_store::StoreError;

use crate::{Action, ControlError, ControlPlane, audit};

impl ControlPlane {
    /// Creates an empty team giving `role` (at most the caller's own).
    pub async fn create_team(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: Name,
        role: Role,
    ) -> Result<Team, ControlError> {
        self.authorize(caller, tenant, Action::MemberWrite).await?;
        if !caller.platform_admin && role > caller.role {
            return Err(ControlError::Denied(format!(
                "a `{}` cannot create a team with the role `{role}`",
                caller.role
            )));
        }
        let event = audit::event(
            caller,
            "team.create",
            format!("teams/{name}"),
            serde_json::json!({ "role": role }),
        );
        match self
            .store
            .create_team(tenant, TeamId::new(), &name, role, event)
            .await
        {
            Err(StoreError::AlreadyExists { .. }) => Err(ControlError::Conflict(format!(
                "the tenant has a team named `{name}`"
            ))),
            other => Ok(other?),
        }
    }

    /// The tenant's teams with their members.
    pub async fn list_teams(
        &self,
        caller: &Caller,
        tenant: TenantId,
    ) -> Result<Vec<Team>, ControlError> {
        self.authorize(caller, tenant, Action::MemberList).await?;
        Ok(self.store.list_teams(tenant).await?)
    }

    /// Deletes a team; its members keep their memberships.
    pub async fn delete_team(
        &self,
        caller: &Caller,
        tenant: TenantId,
        name: &Name,
    ) -> Result<Team, ControlError> {
        self.authorize(caller, tenant, Action::MemberWrite).await?;
        self.check_team_rank(caller, tenant, name).await?;
        let event = audit::event(
            caller,
            "team.delete",
            format!("teams/{name}"),
            serde_json::Value::Null,
        );
        let team = self.store.delete_team(tenant, name, event).await?;
        self.forget_sessions(&team);
        Ok(team)
    }

    /// Adds (`add`) or removes a member of the tenant to or from a team. Adding someone to a
    /// team whose role is above the caller's is refused, like granting that role directly.
    pub async fn set_team_member(
        &self,
        caller: &Caller,
        tenant: TenantId,
        team: &Name,
        user: &Name,
        add: bool,
    ) -> Result<Team, ControlError> {
        self.authorize(caller, tenant, Action::MemberWrite).await?;
        // Adding lifts someone to the team's role, removing takes it away: either way not
        // for a team above the caller's own role.
        self.check_team_rank(caller, tenant, team).await?;
        let event = audit::event(
            caller,
            if add { "team.add" } else { "team.remove" },
            format!("teams/{team}"),
            serde_json::json!({ "user": user }),
        );
        let changed = self
            .store
            .set_team_member(tenant, team, user, add, event)
            .await?;
        if let Some(member) = self.store.find_user(user).await? {
            self.keys.forget_user(member.0.id);
        }
        Ok(changed)
    }

    async fn check_team_rank(
        &self,
        caller: &Caller,
        tenant: TenantId,
        team: &Name,
    ) -> Result<(), ControlError> {
        if caller.platform_admin {
            return Ok(());
        }
        let teams = self.store.list_teams(tenant).await?;
        if let Some(found) = teams.iter().find(|t| &t.name == team)
            && found.role > caller.role
        {
            return Err(ControlError::Denied(format!(
                "a `{}` cannot change a `{}` team",
                caller.role, found.role
            )));
        }
        Ok(())
    }

    fn forget_sessions(&self, team: &Team) {
        // The members' ids are not in `Team`; dropping every cached session of the tenant is
        // simpler and as correct (they are read again within one request each).
        self.keys.forget_tenant(team.tenant_id);
    }
}
