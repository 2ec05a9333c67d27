//! The session core every protocol front uses: one authorization from one snapshot of the policy
//! facts, one lifecycle (start, observers, live enforcement, an end that happens exactly once),
//! and one dialer for every connection to a target. A front brings only its wire protocol.

pub mod authorize;
pub mod explain;
