//! Users, their SSH public keys and their passwords.

use crate::passwords::{self, StoredPasswordHash};
use crate::rows::{self, new_id, now, time_text};
use crate::ssh_keys::ParsedPublicKey;
use crate::{Result, Store, StoreError, audit_log, login_controls};
use rampart_core::audit::{Actor, AuditEvent};
use rampart_core::{Name, Role, SecretString, User, UserKey, UserSource};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use uuid::Uuid;

impl Store {
    pub async fn add_user(
        &self,
        actor: &Actor,
        name: &Name,
        role: Role,
        keys: &[ParsedPublicKey],
    ) -> Result<User> {
        let mut tx = self.begin_write().await?;
        if rows::find_id(&mut tx, rows::Named::User, name)
            .await?
            .is_some()
        {
            return Err(StoreError::already_exists("user", name));
        }
        let id = new_id();
        sqlx::query("INSERT INTO users (id, name, role, disabled, created_at) VALUES ($1, $2, $3, FALSE, $4)")
            .bind(id.to_string())
            .bind(name.as_str())
            .bind(role.as_str())
            .bind(time_text(now()))
            .execute(&mut *tx)
            .await?;
        for key in keys {
            insert_key(&mut tx, id, key).await?;
        }
        let event = AuditEvent::UserAdded {
            user: name.to_string(),
            role: role.to_string(),
            keys: keys.iter().map(|k| k.fingerprint.clone()).collect(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let user = load_user(&mut tx, name).await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let mut conn = self.pool.acquire().await?;
        load_users(&mut conn, None).await
    }

    pub async fn user(&self, name: &Name) -> Result<User> {
        let mut conn = self.pool.acquire().await?;
        load_user(&mut conn, name).await
    }

    pub async fn set_user_disabled(
        &self,
        actor: &Actor,
        name: &Name,
        disabled: bool,
    ) -> Result<User> {
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::User, name).await?;
        sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        bump_auth_epoch(&mut tx, id).await?;
        let user = name.to_string();
        let event = if disabled {
            AuditEvent::UserDisabled { user }
        } else {
            AuditEvent::UserEnabled { user }
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let user = load_user(&mut tx, name).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Gives a user another role (from their next request: the web guard reads the role on
    /// every request). Setting the role they have changes nothing and records nothing.
    pub async fn set_user_role(&self, actor: &Actor, name: &Name, role: Role) -> Result<User> {
        let mut tx = self.begin_write().await?;
        let current = load_user(&mut tx, name).await?;
        if current.role == role {
            return Ok(current);
        }
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(current.id.to_string())
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::UserRoleChanged {
            user: name.to_string(),
            from: current.role.to_string(),
            to: role.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let user = load_user(&mut tx, name).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Removes a user with their keys, group memberships and personal grants. Their sessions
    /// and audit events stay: evidence is never removed with its subject.
    pub async fn remove_user(&self, actor: &Actor, name: &Name) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::User, name)
            .await?
            .to_string();
        let grants_removed = sqlx::query("DELETE FROM grants WHERE user_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        // A later user of the same name must not inherit this one's failures or lock.
        login_controls::delete_user_counters(&mut tx, name).await?;
        let event = AuditEvent::UserRemoved {
            user: name.to_string(),
            grants_removed,
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(grants_removed)
    }

    pub async fn add_user_key(
        &self,
        actor: &Actor,
        name: &Name,
        key: &ParsedPublicKey,
    ) -> Result<User> {
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::User, name).await?;
        insert_key(&mut tx, id, key).await?;
        let event = AuditEvent::UserKeyAdded {
            user: name.to_string(),
            fingerprint: key.fingerprint.clone(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let user = load_user(&mut tx, name).await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn remove_user_key(
        &self,
        actor: &Actor,
        name: &Name,
        fingerprint: &str,
    ) -> Result<User> {
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::User, name).await?;
        let removed = sqlx::query("DELETE FROM user_keys WHERE user_id = $1 AND fingerprint = $2")
            .bind(id.to_string())
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(StoreError::not_found(
                "key",
                format!("{fingerprint} of user {name}"),
            ));
        }
        bump_auth_epoch(&mut tx, id).await?;
        let event = AuditEvent::UserKeyRemoved {
            user: name.to_string(),
            fingerprint: fingerprint.to_owned(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        let user = load_user(&mut tx, name).await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn set_user_password(
        &self,
        actor: &Actor,
        name: &Name,
        password: &SecretString,
    ) -> Result<()> {
        // Hash before taking the write lock, on the blocking pool: Argon2id is deliberately slow
        // and must not hold an async worker thread (administrators only get here).
        let password = password.clone();
        let hash = tokio::task::spawn_blocking(move || passwords::hash_password(&password))
            .await
            .map_err(|err| StoreError::Task(err.to_string()))??;
        let mut tx = self.begin_write().await?;
        let id = rows::id_of(&mut tx, rows::Named::User, name).await?;
        let from_directory: i64 = sqlx::query_scalar(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM ldap_users WHERE user_id = $1) THEN 1 ELSE 0 END",
        )
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        if from_directory != 0 {
            return Err(StoreError::invalid(format!(
                "user {name}'s password is kept by the LDAP directory: change it there"
            )));
        }
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        bump_auth_epoch(&mut tx, id).await?;
        let event = AuditEvent::UserPasswordChanged {
            user: name.to_string(),
        };
        audit_log::append(&mut tx, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user's stored password hash, if they exist and have one. Checking a password against
    /// it is the authenticator's (off the async threads, `rampart-auth`).
    pub async fn user_password_hash(&self, name: &Name) -> Result<Option<StoredPasswordHash>> {
        let stored: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(stored.flatten().map(StoredPasswordHash::from_phc))
    }
}

pub(crate) async fn insert_key(
    conn: &mut AnyConnection,
    user_id: Uuid,
    key: &ParsedPublicKey,
) -> Result<()> {
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT u.name FROM user_keys k JOIN users u ON u.id = k.user_id WHERE k.fingerprint = $1",
    )
    .bind(&key.fingerprint)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(owner) = owner {
        return Err(StoreError::invalid(format!(
            "key {} already belongs to user {owner}: a key identifies one person",
            key.fingerprint
        )));
    }
    sqlx::query(
        "INSERT INTO user_keys (id, user_id, fingerprint, algorithm, public_key, comment, added_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id().to_string())
    .bind(user_id.to_string())
    .bind(&key.fingerprint)
    .bind(&key.algorithm)
    .bind(&key.public_key)
    .bind(&key.comment)
    .bind(time_text(now()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks a change to the user's credentials or status: sessions started before it end.
pub(crate) async fn bump_auth_epoch(conn: &mut AnyConnection, user_id: Uuid) -> Result<()> {
    sqlx::query("UPDATE users SET auth_epoch = auth_epoch + 1 WHERE id = $1")
        .bind(user_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn load_user(conn: &mut AnyConnection, name: &Name) -> Result<User> {
    load_users(conn, Some(name))
        .await?
        .pop()
        .ok_or_else(|| StoreError::not_found("user", name))
}

pub(crate) async fn load_users(conn: &mut AnyConnection, only: Option<&Name>) -> Result<Vec<User>> {
    let only = only.map(Name::as_str);
    let user_rows = sqlx::query(
        "SELECT id, name, role, CAST(disabled AS INTEGER) AS disabled, password_hash IS NOT NULL AS has_password, auth_epoch, \
         totp_secret IS NOT NULL AS mfa_enrolled, allow_from, deny_from, login_hours, created_at, \
         EXISTS (SELECT 1 FROM ldap_users l WHERE l.user_id = users.id) AS from_ldap, \
         EXISTS (SELECT 1 FROM user_passkeys p WHERE p.user_id = users.id) AS passkeys \
         FROM users WHERE $1 IS NULL OR name = $1 ORDER BY name",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let key_rows = sqlx::query(
        "SELECT k.user_id, k.fingerprint, k.algorithm, k.comment, k.public_key, k.added_at \
         FROM user_keys k JOIN users u ON u.id = k.user_id \
         WHERE $1 IS NULL OR u.name = $1 ORDER BY k.added_at, k.fingerprint",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;
    let group_rows = sqlx::query(
        "SELECT m.user_id, g.name FROM group_members m JOIN groups g ON g.id = m.group_id \
         JOIN users u ON u.id = m.user_id WHERE $1 IS NULL OR u.name = $1 ORDER BY g.name",
    )
    .bind(only)
    .fetch_all(&mut *conn)
    .await?;

    let mut keys: HashMap<Uuid, Vec<UserKey>> = HashMap::new();
    for row in &key_rows {
        keys.entry(rows::uuid(row, "user_id")?)
            .or_default()
            .push(UserKey {
                fingerprint: rows::text(row, "fingerprint")?,
                algorithm: rows::text(row, "algorithm")?,
                comment: rows::text(row, "comment")?,
                public_key: rows::text(row, "public_key")?,
                added_at: rows::time(row, "added_at")?,
            });
    }
    let mut groups: HashMap<Uuid, Vec<Name>> = HashMap::new();
    for row in &group_rows {
        groups
            .entry(rows::uuid(row, "user_id")?)
            .or_default()
            .push(rows::name(row, "name")?);
    }
    user_rows
        .iter()
        .map(|row| {
            let id = rows::uuid(row, "id")?;
            Ok(User {
                id,
                name: rows::name(row, "name")?,
                role: Role::parse(&rows::text(row, "role")?)
                    .map_err(|_| StoreError::Corrupt("users.role".into()))?,
                disabled: rows::flag(row, "disabled")?,
                has_password: rows::flag(row, "has_password")?,
                auth_epoch: row.try_get("auth_epoch")?,
                mfa_enrolled: rows::flag(row, "mfa_enrolled")?,
                passkeys: rows::flag(row, "passkeys")?,
                keys: keys.remove(&id).unwrap_or_default(),
                groups: groups.remove(&id).unwrap_or_default(),
                login_rules: login_controls::rules_from_row(row)?,
                source: if rows::flag(row, "from_ldap")? {
                    UserSource::Ldap
                } else {
                    UserSource::Local
                },
                created_at: rows::time(row, "created_at")?,
            })
        })
        .collect()
}
