//! Admin management of users: create, list, show, change, remove. Removing or disabling a
//! user revokes its offline bundles.

use super::{Actor, Engine, EngineError, Result, now, validate_user_name};
use crate::store::UserRow;
use latchkey_proto::admin::{User, UserCreate, UserUpdate};

pub(super) fn no_user(name: &str) -> EngineError {
    EngineError::NotFound(format!("user {name:?} not found"))
}

fn validate_groups(groups: &[String]) -> Result<()> {
    if groups.len() > 100
        || groups.iter().any(|g| {
            g.is_empty() || g.len() > 128 || g.contains(',') || g.chars().any(char::is_control)
        })
    {
        return Err(EngineError::Invalid(
            "groups must be at most 100 names of 1 to 128 characters without commas".into(),
        ));
    }
    Ok(())
}

/// A free-text field an admin sets (display name, label, note, policy value).
pub(super) fn validate_text(field: &str, v: &str, max: usize) -> Result<()> {
    if v.len() > max || v.chars().any(char::is_control) {
        return Err(EngineError::Invalid(format!(
            "{field} must be at most {max} printable characters"
        )));
    }
    Ok(())
}

impl Engine {
    async fn user_view(&self, u: UserRow) -> Result<User> {
        let token_count = self.store.token_count_of(&u.name).await?
            + self.store.fido2_of(&u.name).await?.len() as i64;
        Ok(User {
            token_count: u32::try_from(token_count).unwrap_or(u32::MAX),
            locked_until: (u.locked_until > now()).then_some(u.locked_until),
            name: u.name,
            display_name: u.display_name,
            groups: u.groups,
            enabled: u.enabled,
            created_at: u.created_at,
        })
    }

    /// The user named `name`, or the 404 an admin route answers.
    pub(super) async fn existing_user(&self, name: &str) -> Result<UserRow> {
        self.store
            .user_get(name)
            .await?
            .ok_or_else(|| no_user(name))
    }

    pub async fn user_add(&self, actor: &Actor, req: UserCreate) -> Result<User> {
        validate_user_name(&req.name)?;
        validate_groups(&req.groups)?;
        let display_name = req.display_name.unwrap_or_else(|| req.name.clone());
        validate_text("display_name", &display_name, 256)?;
        let row = UserRow {
            name: req.name,
            display_name,
            groups: req.groups,
            enabled: true,
            created_at: now(),
            failures: 0,
            locked_until: 0,
        };
        self.store.user_create(&row).await?;
        self.audit(
            actor,
            "user.add",
            Some(&row.name),
            None,
            "ok",
            format!("groups: {}", row.groups.join(",")),
        )
        .await;
        self.user_view(row).await
    }

    pub async fn user_list(&self) -> Result<Vec<User>> {
        let mut out = Vec::new();
        for u in self.store.user_list().await? {
            out.push(self.user_view(u).await?);
        }
        Ok(out)
    }

    pub async fn user_show(&self, name: &str) -> Result<User> {
        let u = self.existing_user(name).await?;
        self.user_view(u).await
    }

    pub async fn user_update(&self, actor: &Actor, name: &str, req: &UserUpdate) -> Result<User> {
        if let Some(g) = &req.groups {
            validate_groups(g)?;
        }
        if let Some(d) = &req.display_name {
            validate_text("display_name", d, 256)?;
        }
        if !self
            .store
            .user_update(
                name,
                req.display_name.as_deref(),
                req.groups.as_deref(),
                req.enabled,
            )
            .await?
        {
            return Err(no_user(name));
        }
        if req.enabled == Some(true) {
            // Re-enabling also clears a lockout: the admin has looked at the account.
            self.store.user_reset_failures(name).await?;
        }
        if req.enabled == Some(false) {
            self.offline_revoke(name, "user disabled").await?;
        }
        let detail = serde_json::to_string(req).unwrap_or_default();
        self.audit(actor, "user.update", Some(name), None, "ok", detail)
            .await;
        self.user_show(name).await
    }

    /// Clears a user's lockout (failures and lock time) without enabling a disabled user.
    pub async fn user_unlock(&self, actor: &Actor, name: &str) -> Result<User> {
        let u = self.existing_user(name).await?;
        self.store.user_reset_failures(&u.name).await?;
        // The portal sign-in's own lock too (engine/web_signin.rs).
        self.store.portal_failures_reset(&u.name).await?;
        self.audit(
            actor,
            "user.unlock",
            Some(&u.name),
            None,
            "ok",
            "lockout reset",
        )
        .await;
        self.user_show(&u.name).await
    }

    pub async fn user_remove(&self, actor: &Actor, name: &str) -> Result<()> {
        if !self.store.user_delete(name).await? {
            return Err(no_user(name));
        }
        self.offline_revoke(name, "user removed").await?;
        self.audit(
            actor,
            "user.remove",
            Some(name),
            None,
            "ok",
            "user and tokens removed",
        )
        .await;
        Ok(())
    }
}
