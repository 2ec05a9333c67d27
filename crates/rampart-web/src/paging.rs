//! Every list the API answers is one page: at most `limit` items (default 500, at most 10 000)
//! and, when more may follow, the cursor that continues after them in the `X-Next-Cursor`
//! header (passed back as `cursor`). The body stays the JSON array it always was.

use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Items in a page when the request names no limit.
pub const DEFAULT_LIMIT: u32 = 500;
/// The most items one page holds, whatever the request asks.
pub const MAX_LIMIT: u32 = 10_000;
/// The response header with the cursor of the next page.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// `limit` and `cursor` alone, for lists with no other parameter.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The page size for `asked`: `default` when absent, at most [`MAX_LIMIT`]; 0 is refused.
pub fn limit(asked: Option<u32>, default: u32) -> ApiResult<u32> {
    match asked {
        Some(0) => Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_LIMIT}"
        ))),
        Some(limit) => Ok(limit.min(MAX_LIMIT)),
        None => Ok(default.min(MAX_LIMIT)),
    }
}

/// The JSON array of `items`, with the next page's cursor if there is one.
pub fn respond<T: Serialize>(items: &[T], next: Option<String>) -> Response {
    let mut response = Json(items).into_response();
    if let Some(value) = next.and_then(|next| HeaderValue::from_str(&next).ok()) {
        response.headers_mut().insert(NEXT_CURSOR, value);
    }
    response
}

/// The order of a list paged in memory, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    /// Newest first, for keys that grow with time (UUID v7 ids).
    Descending,
}

/// One page of a list the store returns whole (users, assets, grants...: lists an
/// administrator builds, not ones the network can grow): ordered by `key`, after `cursor`.
pub fn in_memory<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    order: Order,
    limit: u32,
    cursor: Option<&str>,
) -> (Vec<T>, Option<String>) {
    items.sort_by_cached_key(&key);
    if order == Order::Descending {
        items.reverse();
    }
    let after = |item: &T| {
        cursor.is_none_or(|cursor| match order {
            Order::Ascending => key(item).as_str() > cursor,
            Order::Descending => key(item).as_str() < cursor,
        })
    };
    let wanted = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut page: Vec<T> = items
        .into_iter()
        .filter(after)
        .take(wanted.saturating_add(1))
        .collect();
    let next = if page.len() > wanted {
        page.truncate(wanted);
        page.last().map(&key)
    } else {
        None
    };
    (page, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let items: Vec<String> = (0..25).rev().map(|n| format!("item-{n:02}")).collect();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = in_memory(
                items.clone(),
                Clone::clone,
                Order::Ascending,
                10,
                cursor.as_deref(),
            );
            assert!(page.len() <= 10);
            seen.extend(page);
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut expected = items;
        expected.sort();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_limit_is_bounded_and_zero_is_refused() {
        assert_eq!(limit(None, 100).unwrap(), 100);
        assert_eq!(limit(Some(1_000_000), 100).unwrap(), MAX_LIMIT);
        assert!(limit(Some(0), 100).is_err());
    }
}
