//! Conversions between stored columns and domain values, failing loudly on corrupt data.

use crate::{Result, StoreError};
use rampart_core::Name;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A time as the store writes it: UTC RFC 3339 with exactly six fraction digits
/// (`2026-01-02T03:04:05.000000Z`, sub-microseconds truncated). INVARIANT: every stored time has
/// this one width, so SQL compares and orders times by comparing their text (migration 35).
pub(crate) fn time_text(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

pub(crate) fn new_id() -> Uuid {
    Uuid::now_v7()
}

pub(crate) fn text(row: &AnyRow, column: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(column)?)
}

/// A yes/no column or expression: PostgreSQL answers a boolean, SQLite an integer (it has no
/// boolean type, and sqlx's `Any` driver does not convert).
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool> {
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

pub(crate) fn uuid(row: &AnyRow, column: &str) -> Result<Uuid> {
    Uuid::parse_str(&text(row, column)?).map_err(|_| StoreError::Corrupt(column.into()))
}

pub(crate) fn name(row: &AnyRow, column: &str) -> Result<Name> {
    Name::parse(column, &text(row, column)?).map_err(|_| StoreError::Corrupt(column.into()))
}

pub(crate) fn time(row: &AnyRow, column: &str) -> Result<OffsetDateTime> {
    parse_time(column, &text(row, column)?)
}

pub(crate) fn optional_time(row: &AnyRow, column: &str) -> Result<Option<OffsetDateTime>> {
    row.try_get::<Option<String>, _>(column)?
        .map(|value| parse_time(column, &value))
        .transpose()
}

fn parse_time(column: &str, value: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| StoreError::Corrupt(column.into()))
}

/// The tables whose rows people name.
#[derive(Debug, Clone, Copy)]
pub enum Named {
    User,
    Group,
    Asset,
}

impl Named {
    fn what(self) -> &'static str {
        match self {
            Named::User => "user",
            Named::Group => "group",
            Named::Asset => "asset",
        }
    }
}

/// The id of the named row, if it exists.
pub(crate) async fn find_id(
    conn: &mut AnyConnection,
    table: Named,
    name: &Name,
) -> Result<Option<Uuid>> {
    // One static statement per table: table names cannot be bound parameters.
    let sql = match table {
        Named::User => "SELECT id FROM users WHERE name = $1",
        Named::Group => "SELECT id FROM groups WHERE name = $1",
        Named::Asset => "SELECT id FROM assets WHERE name = $1",
    };
    let id: Option<String> = sqlx::query_scalar(sql)
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    id.map(|id| {
        Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt(format!("{}s.id", table.what())))
    })
    .transpose()
}

/// The id of the named row, or a not-found error naming it.
pub(crate) async fn id_of(conn: &mut AnyConnection, table: Named, name: &Name) -> Result<Uuid> {
    find_id(conn, table, name)
        .await?
        .ok_or_else(|| StoreError::not_found(table.what(), name))
}

/// The `VALUES` list of a multi-row INSERT: `rows` groups, each binding `width` parameters,
/// where `columns` names each column's parameter within its row (1-based; a number may repeat
/// when two columns take one value). Built from numbers only: nothing of the rows is in it.
pub(crate) fn values_placeholders(rows: usize, width: usize, columns: &[usize]) -> String {
    (0..rows)
        .map(|row| {
            let base = row * width;
            let slots: Vec<String> = columns.iter().map(|c| format!("${}", base + c)).collect();
            format!("({})", slots.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
