//! Rampart's integration tests, in one test binary: the real `rampart` executable against real
//! OpenSSH clients and a real `sshd`, all on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

mod access_control;
mod agents;
mod alerts;
mod api;
mod auth;
mod auth_hardening;
mod availability;
mod bounded_reads;
mod breakglass;
mod browser;
mod cli;
mod cli_messages;
mod cluster;
mod command_approvals;
mod command_rules;
mod data_dir;
mod db_common;
mod db_hostile;
mod db_rules;
mod db_tls;
mod desktop_common;
mod desktop_rdp;
mod desktop_vencrypt;
mod desktop_vnc;
mod desktop_xvnc;
mod domains;
mod evidence;
mod evidence_chain;
mod hostile_clients;
mod kube;
mod kube_namespaces;
mod kube_portal;
mod ldap;
mod login_controls;
mod mfa;
mod mysql;
mod native_rdp;
mod native_vnc;
mod oidc;
mod operations;
mod passkeys;
mod password_load;
mod policy;
mod postgres;
mod recording_durability;
mod recordings_s3;
mod redis;
mod report;
mod requests;
mod rotation;
mod rotation_mysql;
mod rotation_tls;
mod scale;
mod self_service;
mod session_lists;
mod ssh;
mod ssh_certificates;
mod ssh_web_approval;
mod store_errors;
mod store_postgres;
mod targets;
mod telnet;

const BIN: &str = env!("CARGO_BIN_EXE_rampart");
