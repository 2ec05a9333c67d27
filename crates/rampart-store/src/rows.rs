//! Conversions between stored columns and domain values, failing loudly on corrupt data.

use crate::{Result, StoreError};
use rampart_core::Name;
use rampart_core::time_arg::format_rfc3339;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub(crate) fn time_text(at: OffsetDateTime) -> String {
    format_rfc3339(at)
}

pub(crate) fn new_id() -> Uuid {
    Uuid::now_v7()
}

pub(crate) fn text(row: &SqliteRow, column: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(column)?)
}

pub(crate) fn uuid(row: &SqliteRow, column: &str) -> Result<Uuid> {
    Uuid::parse_str(&text(row, column)?).map_err(|_| StoreError::Corrupt(column.into()))
}

pub(crate) fn name(row: &SqliteRow, column: &str) -> Result<Name> {
    Name::parse(column, &text(row, column)?).map_err(|_| StoreError::Corrupt(column.into()))
}

pub(crate) fn time(row: &SqliteRow, column: &str) -> Result<OffsetDateTime> {
    parse_time(column, &text(row, column)?)
}

pub(crate) fn optional_time(row: &SqliteRow, column: &str) -> Result<Option<OffsetDateTime>> {
    row.try_get::<Option<String>, _>(column)?
        .map(|value| parse_time(column, &value))
        .transpose()
}

fn parse_time(column: &str, value: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| StoreError::Corrupt(column.into()))
}
