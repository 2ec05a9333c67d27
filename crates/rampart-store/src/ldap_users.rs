//! Users kept by an LDAP directory (migration 33, `ldap_users`): what one sync changes.
//!
//! The directory's client (`rampart-ldap`) reads the directory and hands the store the whole
//! picture, [`DirectorySnapshot`]; [`Store::apply_ldap_sync`] makes Rampart agree with it. Each
//! user's change is one write transaction with its audit events (`user_added`,
//! `user_key_added`, `group_member_removed`, `user_disabled`, ...), then one `directory_synced`
//! event sums the run up.
//!
//! INVARIANTS:
//! - A local user is never taken over: a directory entry with a local user's name is skipped.
//! - A directory user the snapshot does not list is disabled (`directory_disabled`), with the
//!   auth epoch bumped, so live enforcement ends their sessions; only a later sync that lists
//!   them again enables them, and only if the sync was what disabled them.
//! - Directory users have no local password; their keys, role and the mapped groups are the
//!   directory's (other groups are left alone).

use crate::rows::{self, new_id, now, time_text};
use crate::ssh_keys::ParsedPublicKey;
use crate::users::{bump_auth_epoch, insert_key, load_user};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Name, Role, UserSource};
use sqlx::{AnyConnection, Row};
use std::collections::BTreeSet;
use uuid::Uuid;

/// One user as the directory lists them, already mapped to Rampart's terms.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    pub name: Name,
    pub dn: String,
    /// The directory's SSH public keys (`sshPublicKey`) that parsed.
    pub keys: Vec<ParsedPublicKey>,
    /// The Rampart groups their directory groups map to.
    pub groups: BTreeSet<Name>,
    /// The role their directory groups map to (`user` when none does).
    pub role: Role,
}

/// A whole directory read: every user it lists and the groups the mapping manages.
#[derive(Debug, Clone, Default)]
pub struct DirectorySnapshot {
    pub users: Vec<DirectoryUser>,
    /// Every Rampart group the mapping names: memberships of these follow the directory.
    pub managed_groups: BTreeSet<Name>,
}

/// What one sync changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncSummary {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub disabled: Vec<String>,
    pub enabled: Vec<String>,
    /// Directory entries not applied, with why (a local user of that name).
    pub skipped: Vec<String>,
    pub unchanged: u64,
}

enum Applied {
    Created,
    Updated { enabled: bool },
    Unchanged,
    Skipped(String),
}

impl Store {
    /// Makes Rampart's directory users agree with `snapshot` (see the module's invariants).
    pub async fn apply_ldap_sync(
        &self,
        actor: &Actor,
        snapshot: &DirectorySnapshot,
    ) -> Result<SyncSummary> {
        let mut summary = SyncSummary::default();
        for group in &snapshot.managed_groups {
            let mut tx = self.begin_write().await?;
            if rows::find_id(&mut tx, rows::Named::Group, group)
                .await?
                .is_none()
            {
                sqlx::query("INSERT INTO groups (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(new_id().to_string())
                    .bind(group.as_str())
                    .bind(time_text(now()))
                    .execute(&mut *tx)
                    .await?;
                let event = AuditEvent::GroupAdded {
                    group: group.to_string(),
                };
                audit_log::append(&mut tx, actor, &event).await?;
            }
            tx.commit().await?;
        }
        let mut listed = BTreeSet::new();
        for user in &snapshot.users {
            listed.insert(user.name.to_string());
            let mut tx = self.begin_write().await?;
            let applied = apply_user(&mut tx, actor, user, &snapshot.managed_groups).await?;
            tx.commit().await?;
            let name = user.name.to_string();
            match applied {
                Applied::Created => summary.created.push(name),
                Applied::Updated { enabled } => {
                    if enabled {
                        summary.enabled.push(name.clone());
                    }
                    summary.updated.push(name);
                }
                Applied::Unchanged => summary.unchanged += 1,
                Applied::Skipped(why) => summary.skipped.push(format!("{name}: {why}")),
            }
        }
        let mut tx = self.begin_write().await?;
        let enabled_directory_users = sqlx::query(
            "SELECT u.id, u.name FROM users u JOIN ldap_users l ON l.user_id = u.id \
             WHERE u.disabled = FALSE ORDER BY u.name",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in &enabled_directory_users {
            let name = rows::text(row, "name")?;
            if listed.contains(&name) {
                continue;
            }
            let id = rows::uuid(row, "id")?;
            sqlx::query("UPDATE users SET disabled = TRUE WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE ldap_users SET directory_disabled = 1, synced_at = $1 WHERE user_id = $2",
            )
            .bind(time_text(now()))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            bump_auth_epoch(&mut tx, id).await?;
            let event = AuditEvent::UserDisabled { user: name.clone() };
            audit_log::append(&mut tx, actor, &event).await?;
            summary.disabled.push(name);
        }
        let count = |list: &Vec<String>| u64::try_from(list.len()).unwrap_or(u64::MAX);
        let event = AuditEvent::DirectorySynced {
            directory: "ldap".into(),
            created: count(&summary.created),
            updated: count(&summary.updated),
            disabled: count(&summary.disabled),
            enabled: count(&summary.enabled),
            skipped: count(&summary.skipped),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(summary)
    }

    /// The directory entry (DN) a directory user binds as; `None` for a local or unknown user.
    pub async fn ldap_user_dn(&self, name: &Name) -> Result<Option<String>> {
        let dn: Option<String> = sqlx::query_scalar(
            "SELECT l.dn FROM ldap_users l JOIN users u ON u.id = l.user_id WHERE u.name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(dn)
    }
}

async fn apply_user(
    tx: &mut AnyConnection,
    actor: &Actor,
    wanted: &DirectoryUser,
    managed_groups: &BTreeSet<Name>,
) -> Result<Applied> {
    let name = &wanted.name;
    let existing = match load_user(tx, name).await {
        Ok(user) => Some(user),
        Err(StoreError::NotFound { .. }) => None,
        Err(err) => return Err(err),
    };
    let Some(current) = existing else {
        create_user(tx, actor, wanted).await?;
        return Ok(Applied::Created);
    };
    if current.source != UserSource::Ldap {
        return Ok(Applied::Skipped("a local user has this name".into()));
    }
    let mut changed = false;
    let mut credentials_changed = false;
    let row = sqlx::query("SELECT dn, directory_disabled FROM ldap_users WHERE user_id = $1")
        .bind(current.id.to_string())
        .fetch_one(&mut *tx)
        .await?;
    let dn: String = row.try_get("dn")?;
    let directory_disabled = rows::flag(&row, "directory_disabled")?;
    if dn != wanted.dn {
        changed = true;
        credentials_changed = true;
    }
    // Keys: the directory's, exactly.
    let wanted_fingerprints: BTreeSet<&str> = wanted
        .keys
        .iter()
        .map(|key| key.fingerprint.as_str())
        .collect();
    for key in &current.keys {
        if !wanted_fingerprints.contains(key.fingerprint.as_str()) {
            sqlx::query("DELETE FROM user_keys WHERE user_id = $1 AND fingerprint = $2")
                .bind(current.id.to_string())
                .bind(&key.fingerprint)
                .execute(&mut *tx)
                .await?;
            let event = AuditEvent::UserKeyRemoved {
                user: name.to_string(),
                fingerprint: key.fingerprint.clone(),
            };
            audit_log::append(tx, actor, &event).await?;
            changed = true;
            credentials_changed = true;
        }
    }
    for key in &wanted.keys {
        if current
            .keys
            .iter()
            .any(|k| k.fingerprint == key.fingerprint)
        {
            continue;
        }
        if add_key(tx, actor, current.id, name, key).await? {
            changed = true;
        }
    }
    if current.role != wanted.role {
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(wanted.role.as_str())
            .bind(current.id.to_string())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::UserRoleChanged {
            user: name.to_string(),
            from: current.role.to_string(),
            to: wanted.role.to_string(),
        };
        audit_log::append(tx, actor, &event).await?;
        changed = true;
    }
    let current_groups: BTreeSet<&Name> = current.groups.iter().collect();
    for group in managed_groups {
        let member = current_groups.contains(group);
        let wanted_member = wanted.groups.contains(group);
        if member != wanted_member {
            set_member(tx, actor, group, current.id, name, wanted_member).await?;
            changed = true;
        }
    }
    let mut enabled = false;
    if current.disabled && directory_disabled {
        sqlx::query("UPDATE users SET disabled = FALSE WHERE id = $1")
            .bind(current.id.to_string())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::UserEnabled {
            user: name.to_string(),
        };
        audit_log::append(tx, actor, &event).await?;
        changed = true;
        credentials_changed = true;
        enabled = true;
    }
    if credentials_changed {
        bump_auth_epoch(tx, current.id).await?;
    }
    sqlx::query(
        "UPDATE ldap_users SET dn = $1, directory_disabled = 0, synced_at = $2 WHERE user_id = $3",
    )
    .bind(&wanted.dn)
    .bind(time_text(now()))
    .bind(current.id.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(if changed {
        Applied::Updated { enabled }
    } else {
        Applied::Unchanged
    })
}

async fn create_user(tx: &mut AnyConnection, actor: &Actor, wanted: &DirectoryUser) -> Result<()> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO users (id, name, role, disabled, created_at) VALUES ($1, $2, $3, FALSE, $4)",
    )
    .bind(id.to_string())
    .bind(wanted.name.as_str())
    .bind(wanted.role.as_str())
    .bind(time_text(now()))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO ldap_users (user_id, dn, directory_disabled, synced_at) VALUES ($1, $2, 0, $3)",
    )
    .bind(id.to_string())
    .bind(&wanted.dn)
    .bind(time_text(now()))
    .execute(&mut *tx)
    .await?;
    let mut added = Vec::new();
    for key in &wanted.keys {
        if key_owner(tx, &key.fingerprint).await?.is_some() {
            tracing::warn!(user = %wanted.name, fingerprint = %key.fingerprint, "a directory key belongs to another user; not added");
            continue;
        }
        insert_key(tx, id, key).await?;
        added.push(key.fingerprint.clone());
    }
    let event = AuditEvent::UserAdded {
        user: wanted.name.to_string(),
        role: wanted.role.to_string(),
        keys: added,
    };
    audit_log::append(tx, actor, &event).await?;
    for group in &wanted.groups {
        set_member(tx, actor, group, id, &wanted.name, true).await?;
    }
    Ok(())
}

/// Adds a directory key unless another user holds it (a key identifies one person): then it is
/// left out with a warning. Whether it was added.
async fn add_key(
    tx: &mut AnyConnection,
    actor: &Actor,
    user_id: Uuid,
    name: &Name,
    key: &ParsedPublicKey,
) -> Result<bool> {
    if let Some(owner) = key_owner(tx, &key.fingerprint).await? {
        tracing::warn!(user = %name, %owner, fingerprint = %key.fingerprint, "a directory key belongs to another user; not added");
        return Ok(false);
    }
    insert_key(tx, user_id, key).await?;
    let event = AuditEvent::UserKeyAdded {
        user: name.to_string(),
        fingerprint: key.fingerprint.clone(),
    };
    audit_log::append(tx, actor, &event).await?;
    Ok(true)
}

async fn key_owner(tx: &mut AnyConnection, fingerprint: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT u.name FROM user_keys k JOIN users u ON u.id = k.user_id WHERE k.fingerprint = $1",
    )
    .bind(fingerprint)
    .fetch_optional(&mut *tx)
    .await?)
}

async fn set_member(
    tx: &mut AnyConnection,
    actor: &Actor,
    group: &Name,
    user_id: Uuid,
    user: &Name,
    member: bool,
) -> Result<()> {
    let group_id = rows::id_of(tx, rows::Named::Group, group).await?;
    let event = if member {
        sqlx::query(
            "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(group_id.to_string())
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
        AuditEvent::GroupMemberAdded {
            group: group.to_string(),
            user: user.to_string(),
        }
    } else {
        sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id.to_string())
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        AuditEvent::GroupMemberRemoved {
            group: group.to_string(),
            user: user.to_string(),
        }
    };
    audit_log::append(tx, actor, &event).await?;
    Ok(())
}
