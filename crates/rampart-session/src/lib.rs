//! The session core every protocol front uses: one authorization from one snapshot of the policy
//! facts, one lifecycle (start, observers, live enforcement, an end that happens exactly once),
//! and one dialer for every connection to a target. A front brings only its wire protocol.
//!
//! - [`lifecycle`]: [`SessionCore::start`] turns an [`Authorized`] request into a started
//!   session: recording, session record and live registration, together or not at all.
//! - [`guard`]: the [`SessionGuard`] that ends it exactly once, and the [`SessionTap`] the
//!   front's tasks pass bytes through.
//! - [`observe`]: the [`observe::Observer`] interface; [`observers`]: the terminal recorder,
//!   the command log, the SFTP and scp observers.
//! - [`live`]: live enforcement (kill, revocation, login rules, idle and duration limits) and
//!   live watching.
//! - [`authorize`]: one snapshot of the policy facts, the only caller of `rampart_core::policy`;
//!   [`explain`]: `grant explain`'s report.
//! - [`database`]: what the database fronts share: the `USER@ACCOUNT@ASSET` login, the
//!   authorization of a connection, the vaulted password's use and the per-statement record.
//! - `statement_log`: recorded database sessions' statement rows, written in batches off the
//!   relays' path by one writer per node (each statement is marked in the recording before its
//!   answer).
//! - [`framed`]: the accept loop and the relay of whole frames the database fronts share.
//! - [`command_control`]: command rules applied to exec requests and to shell lines;
//!   [`approval`]: shell lines held for an approver.
//! - [`target_tls`]: TLS to a database target, its certificate checked against the pin.
//! - [`dial`]: the one place a connection to a target is opened (direct, or through a network
//!   domain's SSH-hop [`gateway`] or dial-out [`agents`]).

pub mod agents;
pub mod approval;
pub mod authorize;
pub mod command_control;
pub mod database;
pub mod dial;
pub mod explain;
pub mod framed;
pub mod gateway;
pub mod guard;
pub mod lifecycle;
pub mod live;
pub mod observe;
pub mod observers;
pub mod screen;
pub mod statement_control;
mod statement_log;
pub use statement_log::StatementWriter;
pub mod target_tls;
mod trail;

pub use guard::{EndWatch, SessionGuard, SessionTap};
pub use lifecycle::{
    Authorized, Evidence, RecordingPlan, RecordingSettings, Refused, SessionCore, Source,
    StartRequest,
};
