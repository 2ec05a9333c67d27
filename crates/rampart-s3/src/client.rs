//! A small blocking S3 client: requests presigned by rusty-s3 (AWS SigV4), sent with ureq.
//! Only the calls Rampart makes: objects (put with Object Lock, get, head, delete), the
//! bucket's versioning and Object Lock configuration, an object's retention, bucket creation.

use base64::Engine as _;
use md5::Digest as _;
use rusty_s3::actions::{DeleteObject, GetObject, HeadObject, PutObject};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::path::PathBuf;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;
use zeroize::Zeroizing;

/// How long a presigned request stays valid: it is sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(300);
/// The largest answer body read (a manifest or a chunk is far smaller).
const MAX_BODY: u64 = 256 << 20;

/// Where recordings go and how they are written there.
#[derive(Clone)]
pub struct S3Settings {
    /// `http(s)://host:port` of the S3 API.
    pub endpoint: Url,
    pub bucket: String,
    pub region: String,
    /// Addresses the bucket in the path (`endpoint/bucket/key`, most self-hosted stores)
    /// instead of the host name (`bucket.endpoint/key`, AWS).
    pub path_style: bool,
    /// Put before every object key (`recordings/` by default).
    pub prefix: String,
    pub access_key: String,
    pub secret_key: Zeroizing<String>,
    /// WORM mode: every object is written under COMPLIANCE retention, and `serve` refuses a
    /// bucket without versioning and Object Lock.
    pub object_lock: bool,
    /// The retention of each object under Object Lock (`audit.retention_days`).
    pub retention_days: u32,
    /// A PEM file of the certificate authority that signed the endpoint's certificate.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret key.
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint.as_str())
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("object_lock", &self.object_lock)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("the S3 endpoint {endpoint} cannot be reached: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("S3 refused {what}: HTTP {status} {code}")]
    Refused {
        what: String,
        status: u16,
        code: String,
    },
    #[error("S3 settings: {0}")]
    Settings(String),
}

/// An answer from the store.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `x-amz-version-id`, when the store sent one.
    pub version_id: Option<String>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `<Code>` of an S3 error body (`AccessDenied`, `NoSuchKey`, ...).
    pub fn code(&self) -> String {
        xml_value(&String::from_utf8_lossy(&self.body), "Code").unwrap_or_default()
    }

    fn refused(&self, what: &str) -> S3Error {
        S3Error::Refused {
            what: what.to_owned(),
            status: self.status,
            code: self.code(),
        }
    }
}

/// What `check-bucket` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketFacts {
    pub versioning: bool,
    pub object_lock: bool,
}

/// A bucket and the credentials to use it.
pub struct Client {
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
    settings: S3Settings,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(settings: S3Settings) -> Result<Self, S3Error> {
        let style = if settings.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            settings.endpoint.clone(),
            style,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|err| S3Error::Settings(format!("bucket {:?}: {err}", settings.bucket)))?;
        let credentials =
            Credentials::new(settings.access_key.clone(), settings.secret_key.to_string());
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|err| S3Error::Settings(format!("{}: {err}", path.display())))?;
            let cert = ureq::tls::Certificate::from_pem(&pem).map_err(|err| {
                S3Error::Settings(format!("{}: not a PEM certificate: {err}", path.display()))
            })?;
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                        cert.to_owned(),
                    ])))
                    .build(),
            );
        }
        Ok(Self {
            bucket,
            credentials,
            agent: config.build().into(),
            settings,
        })
    }

    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    /// The object key of `name` (the configured prefix before it).
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.settings.prefix)
    }

    /// Puts `body` at `key` (already prefixed), with Content-MD5, and under COMPLIANCE
    /// retention for `retention_days` when the store is in WORM mode.
    pub fn put(&self, key: &str, body: &[u8]) -> Result<Answer, S3Error> {
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), key);
        action.headers_mut().insert("content-md5", md5.clone());
        let mut headers = vec![("content-md5", md5)];
        if self.settings.object_lock {
            let until = retain_until(self.settings.retention_days);
            action
                .headers_mut()
                .insert("x-amz-object-lock-mode", "COMPLIANCE");
            action
                .headers_mut()
                .insert("x-amz-object-lock-retain-until-date", until.clone());
            headers.push(("x-amz-object-lock-mode", "COMPLIANCE".to_owned()));
            headers.push(("x-amz-object-lock-retain-until-date", until));
        }
        let answer = self.send("PUT", action.sign(SIGNED_FOR), &headers, Some(body))?;
        if answer.ok() {
            Ok(answer)
        } else {
            Err(answer.refused(&format!("writing {key}")))
        }
    }

    /// The object at `key`, or `None` when the bucket has none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        self.get_version(key, None)
    }

    /// One version of the object at `key` (the latest without `version`).
    pub fn get_version(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<Vec<u8>>, S3Error> {
        let mut action = GetObject::new(&self.bucket, Some(&self.credentials), key);
        if let Some(version) = version {
            action.query_mut().insert("versionId", version.to_owned());
        }
        let answer = self.send("GET", action.sign(SIGNED_FOR), &[], None)?;
        match answer.status {
            404 => Ok(None),
            _ if answer.ok() => Ok(Some(answer.body)),
            _ => Err(answer.refused(&format!("reading {key}"))),
        }
    }

    /// Whether an object exists at `key`.
    pub fn exists(&self, key: &str) -> Result<bool, S3Error> {
        Ok(self.head(key)?.is_some())
    }

    /// The latest version of `key`: `None` when there is none, else its version id (empty
    /// when the bucket keeps no versions).
    pub fn head(&self, key: &str) -> Result<Option<String>, S3Error> {
        let action = HeadObject::new(&self.bucket, Some(&self.credentials), key);
        let answer = self.send("HEAD", action.sign(SIGNED_FOR), &[], None)?;
        match answer.status {
            404 => Ok(None),
            _ if answer.ok() => Ok(Some(answer.version_id.unwrap_or_default())),
            _ => Err(answer.refused(&format!("looking up {key}"))),
        }
    }

    /// Deletes `key` (a version of it, if given); the answer as the store gave it (a locked
    /// version is refused).
    pub fn delete(&self, key: &str, version: Option<&str>) -> Result<Answer, S3Error> {
        let mut action = DeleteObject::new(&self.bucket, Some(&self.credentials), key);
        if let Some(version) = version {
            action.query_mut().insert("versionId", version.to_owned());
        }
        self.send("DELETE", action.sign(SIGNED_FOR), &[], None)
    }

    /// Sets a version's retention (COMPLIANCE until `until`); the answer as the store gave it
    /// (shortening a COMPLIANCE retention is refused).
    pub fn put_retention(
        &self,
        key: &str,
        version: Option<&str>,
        until: OffsetDateTime,
    ) -> Result<Answer, S3Error> {
        let until = format_time(until);
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode>\
             <RetainUntilDate>{until}</RetainUntilDate></Retention>"
        );
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), key);
        action.query_mut().insert("retention", "");
        if let Some(version) = version {
            action.query_mut().insert("versionId", version.to_owned());
        }
        action.headers_mut().insert("content-md5", md5.clone());
        self.send(
            "PUT",
            action.sign(SIGNED_FOR),
            &[("content-md5", md5)],
            Some(body.as_bytes()),
        )
    }

    /// A version's retention: the `RetainUntilDate` the store reports, if any.
    pub fn retention(&self, key: &str) -> Result<Option<String>, S3Error> {
        let mut action = GetObject::new(&self.bucket, Some(&self.credentials), key);
        action.query_mut().insert("retention", "");
        let answer = self.send("GET", action.sign(SIGNED_FOR), &[], None)?;
        if !answer.ok() {
            return Ok(None);
        }
        Ok(xml_value(
            &String::from_utf8_lossy(&answer.body),
            "RetainUntilDate",
        ))
    }

    /// Whether the bucket has versioning and Object Lock on.
    pub fn bucket_facts(&self) -> Result<BucketFacts, S3Error> {
        let versioning = self.bucket_get("versioning")?;
        if !versioning.ok() {
            return Err(versioning.refused("reading the bucket's versioning"));
        }
        let versioning = xml_value(&String::from_utf8_lossy(&versioning.body), "Status").as_deref()
            == Some("Enabled");
        let lock = self.bucket_get("object-lock")?;
        let object_lock = if lock.ok() {
            xml_value(&String::from_utf8_lossy(&lock.body), "ObjectLockEnabled").as_deref()
                == Some("Enabled")
        } else if lock.status == 404 || lock.code() == "ObjectLockConfigurationNotFoundError" {
            false
        } else {
            return Err(lock.refused("reading the bucket's Object Lock configuration"));
        };
        Ok(BucketFacts {
            versioning,
            object_lock,
        })
    }

    /// Creates the bucket, with Object Lock (and so versioning) when `object_lock`.
    pub fn create_bucket(&self, object_lock: bool) -> Result<(), S3Error> {
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), "");
        let mut headers = Vec::new();
        if object_lock {
            action
                .headers_mut()
                .insert("x-amz-bucket-object-lock-enabled", "true");
            headers.push(("x-amz-bucket-object-lock-enabled", "true".to_owned()));
        }
        let answer = self.send("PUT", action.sign(SIGNED_FOR), &headers, Some(&[]))?;
        if answer.ok() {
            Ok(())
        } else {
            Err(answer.refused("creating the bucket"))
        }
    }

    /// Turns the bucket's versioning on.
    pub fn enable_versioning(&self) -> Result<(), S3Error> {
        let body = "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                    <Status>Enabled</Status></VersioningConfiguration>";
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
        let mut action = PutObject::new(&self.bucket, Some(&self.credentials), "");
        action.query_mut().insert("versioning", "");
        action.headers_mut().insert("content-md5", md5.clone());
        let answer = self.send(
            "PUT",
            action.sign(SIGNED_FOR),
            &[("content-md5", md5)],
            Some(body.as_bytes()),
        )?;
        if answer.ok() {
            Ok(())
        } else {
            Err(answer.refused("turning versioning on"))
        }
    }

    fn bucket_get(&self, subresource: &str) -> Result<Answer, S3Error> {
        let mut action = GetObject::new(&self.bucket, Some(&self.credentials), "");
        action.query_mut().insert(subresource.to_owned(), "");
        self.send("GET", action.sign(SIGNED_FOR), &[], None)
    }

    fn send(
        &self,
        method: &str,
        url: Url,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Answer, S3Error> {
        let unreachable = |reason: String| S3Error::Unreachable {
            endpoint: self.settings.endpoint.to_string(),
            reason,
        };
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(url.as_str());
        for (name, value) in headers {
            builder = builder.header(*name, value.as_str());
        }
        let result = match body {
            Some(body) => builder
                .body(body.to_vec())
                .map_err(|err| unreachable(err.to_string()))
                .and_then(|request| {
                    self.agent
                        .run(request)
                        .map_err(|err| unreachable(err.to_string()))
                }),
            None => builder
                .body(())
                .map_err(|err| unreachable(err.to_string()))
                .and_then(|request| {
                    self.agent
                        .run(request)
                        .map_err(|err| unreachable(err.to_string()))
                }),
        };
        let mut response = result?;
        let status = response.status().as_u16();
        let version_id = response
            .headers()
            .get("x-amz-version-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = if method == "HEAD" {
            Vec::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_vec()
                .map_err(|err| unreachable(err.to_string()))?
        };
        Ok(Answer {
            status,
            body,
            version_id,
        })
    }
}

/// Now plus `days`, as S3 wants a retain-until date.
fn retain_until(days: u32) -> String {
    format_time(OffsetDateTime::now_utc() + time::Duration::days(i64::from(days)))
}

fn format_time(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The text of the first `<name>` element of an XML answer (S3's answers are flat enough).
fn xml_value(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let rest = xml.get(start..)?;
    let end = rest.find("</")?;
    rest.get(..end).map(|text| text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flat_xml_values() {
        let xml = "<?xml version=\"1.0\"?><VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
        assert_eq!(xml_value(xml, "Status").as_deref(), Some("Enabled"));
        assert_eq!(
            xml_value("<Error><Code>AccessDenied</Code></Error>", "Code").as_deref(),
            Some("AccessDenied")
        );
        assert_eq!(xml_value("<VersioningConfiguration/>", "Status"), None);
    }

    #[test]
    fn retention_dates_are_whole_seconds_in_utc() {
        let text = retain_until(1);
        assert!(text.ends_with('Z') && !text.contains('.'), "{text}");
    }
}
