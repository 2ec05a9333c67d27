//! Groups of users; grants can name a group instead of a user.

use crate::rows::{self, new_id, now, time_text};
use crate::{Result, Store, StoreError, audit_log};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Group, Name};
use sqlx::AnyConnection;
use std::collections::HashMap;
use uuid::Uuid;

impl Store {
    pub async fn add_group(&self, actor: &Actor, name: &Name) -> Result<Group> {
        let mut tx = self.begin_write().await?;
        if rows::find_id(&mut tx, rows::Named::Group, name)
            .await?
            .is_some()
        {
            return Err(StoreError::already_exists("group", name));
        }
        sqlx::query("INSERT INTO groups (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(new_id().to_string())
            .bind(name.as_str())
            .bind(time_text(now()))
            .execute(&mut *tx)
            .await?;
        audit_log::append(
            &mut tx,
            actor,
            &AuditEvent::GroupAdded {
                group: name.to_string(),
            },
        )
        .await?;
        let group = load_group(&mut tx, name).await?;
        tx.commit().await?;
        Ok(group)
    }

    pub async fn add_group_member(
        &self,
        actor: &Actor,
        group: &Name,
        user: &Name,
    ) -> Result<Group> {
        let mut tx = self.begin_write().await?;
        let group_id = rows::id_of(&mut tx, rows::Named::Group, group).await?;
        let user_id = rows::id_of(&mut tx, rows::Named::User, user).await?;
        let added = sqlx::query(
            "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(group_id.to_string())
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 0 {
            return Err(StoreError::already_exists(
                "member",
                format!("{user} of group {group}"),
            ));
        }
        let event = AuditEvent::GroupMemberAdded {
            group: group.to_string(),
            user: user.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let loaded = load_group(&mut tx, group).await?;
        tx.commit().await?;
        Ok(loaded)
    }

    /// Takes `user` out of `group`; grants to the group no longer reach them (live sessions
    /// they allowed end at the next policy check).
    pub async fn remove_group_member(
        &self,
        actor: &Actor,
        group: &Name,
        user: &Name,
    ) -> Result<Group> {
        let mut tx = self.begin_write().await?;
        let group_id = rows::id_of(&mut tx, rows::Named::Group, group).await?;
        let user_id = rows::id_of(&mut tx, rows::Named::User, user).await?;
        let removed = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id.to_string())
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(StoreError::not_found(
                "member",
                format!("{user} of group {group}"),
            ));
        }
        let event = AuditEvent::GroupMemberRemoved {
            group: group.to_string(),
            user: user.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let loaded = load_group(&mut tx, group).await?;
        tx.commit().await?;
        Ok(loaded)
    }

    /// Removes a group with the grants that name it; returns how many grants went.
    pub async fn remove_group(&self, actor: &Actor, group: &Name) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::Group, group)
            .await?
            .to_string();
        let grants_removed = sqlx::query("DELETE FROM grants WHERE group_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::GroupRemoved {
            group: group.to_string(),
            grants_removed,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(grants_removed)
    }

    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        let mut conn = self.pool.acquire().await?;
        load_groups(&mut conn, None).await
    }
}

async fn load_group(conn: &mut AnyConnection, name: &Name) -> Result<Group> {
    load_groups(conn, Some(name))
        .await?
        .pop()
        .ok_or_else(|| StoreError::not_found("group", name))
}

async fn load_groups(conn: &mut AnyConnection, only: Option<&Name>) -> Result<Vec<Group>> {
    let only = only.map(Name::as_str);
    let group_rows = sqlx::query(
        "SELECT id, name, created_at FROM groups WHERE $1 IS NULL OR name = $1 ORDER BY name",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let member_rows = sqlx::query(
        "SELECT m.group_id, u.name FROM group_members m JOIN users u ON u.id = m.user_id \
         JOIN groups g ON g.id = m.group_id WHERE $1 IS NULL OR g.name = $1 ORDER BY u.name",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let mut members: HashMap<Uuid, Vec<Name>> = HashMap::new();
    for row in &member_rows {
        members
            .entry(rows::uuid(row, "group_id")?)
            .or_default()
            .push(rows::name(row, "name")?);
    }
    group_rows
        .iter()
        .map(|row| {
            let id = rows::uuid(row, "id")?;
            Ok(Group {
                id,
                name: rows::name(row, "name")?,
                members: members.remove(&id).unwrap_or_default(),
                created_at: rows::time(row, "created_at")?,
            })
        })
        .collect()
}
