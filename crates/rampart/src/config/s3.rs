//! Where recordings are kept: `recording.store` (`local`, the default, or `s3`) and the
//! `[recording.s3]` bucket. The credentials come from a file (`recording.s3.credentials_file`)
//! or the environment, never from the configuration file itself or a flag.

use super::{ConfigError, Sourced, pick};
use rampart_s3::S3Settings;
use serde::Deserialize;
use zeroize::Zeroizing;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct S3Section {
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    prefix: Option<String>,
    credentials_file: Option<String>,
    object_lock: Option<bool>,
    ca_file: Option<String>,
}

/// Where recordings are kept.
#[derive(Debug, Clone, Default)]
pub enum RecordingStore {
    /// Only in the data directory's `recordings/`.
    #[default]
    Local,
    /// Written to `recordings/` first, then copied to the bucket chunk by chunk; the bucket is
    /// the copy `audit verify` checks.
    S3(Box<S3Settings>),
}

impl RecordingStore {
    /// The bucket, when recordings go to one.
    pub fn s3(&self) -> Option<&S3Settings> {
        match self {
            RecordingStore::Local => None,
            RecordingStore::S3(settings) => Some(settings),
        }
    }
}

/// The credentials file: TOML with the two keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
}

pub(super) fn recording_store(
    store: Option<String>,
    section: &S3Section,
    retention_days: u32,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<RecordingStore, ConfigError> {
    let get = |key: &str, env: &str, value: Option<String>| {
        pick(key, ("", None), env, env_lookup, value, file_name)
    };
    match get("recording.store", "RAMPART_RECORDING_STORE", store) {
        None => return Ok(RecordingStore::Local),
        Some(Sourced { value, .. }) if value == "local" => return Ok(RecordingStore::Local),
        Some(Sourced { value, .. }) if value == "s3" => {}
        Some(Sourced { value, source }) => {
            return Err(ConfigError(format!(
                "recording.store (from {source}): {value:?} is not local or s3"
            )));
        }
    }
    let required = |key: &str, env: &str, value: Option<String>| {
        get(key, env, value).ok_or_else(|| {
            ConfigError(format!(
                "{key} is required when recording.store is s3 (or set {env})"
            ))
        })
    };
    let endpoint = required(
        "recording.s3.endpoint",
        "RAMPART_S3_ENDPOINT",
        section.endpoint.clone(),
    )?;
    let endpoint_url = url::Url::parse(&endpoint.value)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| {
            ConfigError(format!(
                "recording.s3.endpoint (from {}): {:?} is not an http(s) URL such as https://s3.example.com",
                endpoint.source, endpoint.value
            ))
        })?;
    let bucket = required(
        "recording.s3.bucket",
        "RAMPART_S3_BUCKET",
        section.bucket.clone(),
    )?;
    let valid_bucket = (3..=63).contains(&bucket.value.len())
        && bucket
            .value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !valid_bucket {
        return Err(ConfigError(format!(
            "recording.s3.bucket (from {}): {:?} is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)",
            bucket.source, bucket.value
        )));
    }
    let region = get(
        "recording.s3.region",
        "RAMPART_S3_REGION",
        section.region.clone(),
    )
    .map_or_else(|| "us-east-1".to_owned(), |s| s.value);
    let prefix = section
        .prefix
        .clone()
        .unwrap_or_else(|| "recordings/".to_owned());
    if prefix.starts_with('/') || prefix.contains("..") {
        return Err(ConfigError(format!(
            "recording.s3.prefix (from {file_name}): {prefix:?} must not start with / or hold .."
        )));
    }
    let (access_key, secret_key) = credentials(section, env_lookup, file_name)?;
    Ok(RecordingStore::S3(Box::new(S3Settings {
        endpoint: endpoint_url,
        bucket: bucket.value,
        region,
        path_style: section.path_style.unwrap_or(true),
        prefix,
        access_key,
        secret_key,
        object_lock: section.object_lock.unwrap_or(false),
        retention_days,
        ca_file: section.ca_file.clone().map(Into::into),
    })))
}

/// The access key and secret: from `recording.s3.credentials_file` (or
/// `RAMPART_S3_CREDENTIALS_FILE`), else from `RAMPART_S3_ACCESS_KEY_ID` and
/// `RAMPART_S3_SECRET_ACCESS_KEY` (or AWS's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
fn credentials(
    section: &S3Section,
    env_lookup: &dyn Fn(&str) -> Option<String>,
    file_name: &str,
) -> Result<(String, Zeroizing<String>), ConfigError> {
    if let Some(Sourced { value, source }) = pick(
        "recording.s3.credentials_file",
        ("", None),
        "RAMPART_S3_CREDENTIALS_FILE",
        env_lookup,
        section.credentials_file.clone(),
        file_name,
    ) {
        let text = Zeroizing::new(std::fs::read_to_string(&value).map_err(|err| {
            ConfigError(format!(
                "recording.s3.credentials_file (from {source}): cannot read {value}: {err}"
            ))
        })?);
        // The parser's error could quote the secret: say only where the problem is.
        let parsed: CredentialsFile = toml::from_str(&text).map_err(|_| {
            ConfigError(format!(
                "recording.s3.credentials_file (from {source}): {value} is not TOML with \
                 access_key_id and secret_access_key"
            ))
        })?;
        let CredentialsFile {
            access_key_id,
            secret_access_key,
        } = parsed;
        return Ok((access_key_id, Zeroizing::new(secret_access_key)));
    }
    let from_env = |ours: &str, aws: &str| env_lookup(ours).or_else(|| env_lookup(aws));
    match (
        from_env("RAMPART_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        from_env("RAMPART_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(key), Some(secret)) => Ok((key, Zeroizing::new(secret))),
        _ => Err(ConfigError(
            "recording.store is s3 but no credentials: set recording.s3.credentials_file, or \
             RAMPART_S3_ACCESS_KEY_ID and RAMPART_S3_SECRET_ACCESS_KEY in the environment"
                .into(),
        )),
    }
}
