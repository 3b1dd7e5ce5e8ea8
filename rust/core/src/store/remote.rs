//! Object stores as Zarr stores: S3 and S3-compatible services (`s3://bucket/prefix`), Google
//! Cloud Storage (`gs://bucket/prefix`), and HTTP servers (`https://host/path`, read-only),
//! through the `object_store` crate.
//!
//! Every value is an object named by the store's prefix and its key. The crate is async; the
//! engine is not: each call blocks its engine thread on one tokio runtime per process, whose
//! own two threads drive the connections. Reads and writes of many chunks run on more engine
//! threads than there are cores ([`CONCURRENT_REQUESTS`]), each waiting on its request; a read
//! keeps more in flight still: every fetch that was not hinted counts as a device wait, so
//! the read hints the chunks ahead of each thread (see `array::read_ahead`), and each hint
//! starts fetching the whole value on the runtime; the read then takes it from there. Byte ranges (a shard's index
//! and inner chunks) are fetched as ranged GETs, ranges close together as one.
//!
//! A forked child cannot use its parent's runtime or connections (their threads are not
//! copied): both sit behind fork-safe locks, which a child finds empty, and are made again.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::path::Path;
use object_store::{
    Attribute, ClientConfigKey, GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutPayload, RetryConfig, StaticCredentialProvider,
};
use tokio::runtime::Runtime;

use super::credential_process::{self, ProcessCredentials};
use super::{
    range_of, same_version, validate_key, validate_prefix, ByteRange, ListDir, ListableStore,
    PartsRead, ReadableStore, Store, Version, WritableStore,
};
use crate::concurrency::ForkSafeMutex;
use crate::error::StorageError;

/// Byte ranges of one value at most this far apart are fetched as one request: a request
/// costs tens of milliseconds on a cloud service, a megabyte about as much.
const COALESCE_GAP: u64 = 1 << 20;
/// Reads and writes of many chunks run on at least this many threads, each waiting on its
/// own request (zarr-python keeps 10 in flight by default).
const CONCURRENT_REQUESTS: usize = 16;
/// At most this many values fetched ahead and not yet read are held.
const MAX_PREFETCHED: usize = 256;
/// At most this many fetches ahead run at once from a web server (beside the reads' own
/// requests): a small server (Python's http.server, which queues 5 connections) answering
/// slowly let the connections of hundreds time out.
const WEB_FETCHING_AHEAD: usize = 16;
/// A value fetched ahead and not read within this time is dropped (the read that hinted it
/// stopped early).
const PREFETCH_TTL: Duration = Duration::from_secs(60);
/// Values fetched ahead that parts were read from (shards: a read of many inner chunks reads
/// one shard in several runs) are kept for the other parts, up to this many bytes.
const SHARED_BYTES: usize = 64 << 20;

/// What [`RemoteStore::fetch_ranges`] found.
enum Ranges {
    /// No value at the key.
    Missing,
    /// A value of another version than the one expected.
    Other(PartsRead),
    /// The bytes of each range.
    Read(Vec<Vec<u8>>),
}

/// The kind of service a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    S3,
    Gcs,
    Http,
}

/// The process's runtime. A forked child finds none (the lock starts it afresh, leaking the
/// parent's, whose threads are not the child's), and makes its own.
fn runtime() -> Result<Arc<Runtime>, StorageError> {
    static RUNTIME: ForkSafeMutex<Option<Arc<Runtime>>> = ForkSafeMutex::new(None);
    let mut slot = RUNTIME.lock();
    if let Some(rt) = slot.as_ref() {
        return Ok(rt.clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("oxzarr-io")
        .enable_all()
        .build()
        .map_err(|source| StorageError::Io {
            key: "(the object store runtime)".into(),
            source,
        })?;
    let rt = Arc::new(rt);
    *slot = Some(rt.clone());
    Ok(rt)
}

/// A whole value and its version.
type Value = (Vec<u8>, Version);

/// A fetch ahead of a read, still running.
type Fetch = tokio::task::JoinHandle<Result<Value, object_store::Error>>;

/// A value fetched ahead of its read.
enum Ahead {
    Running(Fetch),
    /// Fetched, and parts of it read already: kept for the other parts.
    Shared(Arc<Value>),
    /// Fetched whole for a read of its parts that could not get them from one version
    /// otherwise (see [`ReadableStore::hold_whole`]): kept, whatever the budget and however
    /// long, until each of the reads holding it (their count) lets it go, or a write.
    Held(Arc<Value>, usize),
}

/// How many values served with a content coding are remembered (see [`CodedValues`]): past
/// it, they are forgotten all at once, and each is found coded again at its next read.
const MAX_CODED_VALUES: usize = 1 << 16;

/// The values served with a content coding (see `get_whole`) that were read, by path, with
/// the version their whole value was read at: its entity tag, its size coded (which a HEAD
/// gives) and decoded (which the value read has).
#[derive(Default)]
struct CodedValues {
    sizes: HashMap<String, CodedSize>,
}

#[derive(Clone, Copy)]
struct CodedSize {
    tag: Option<u64>,
    coded: u64,
    decoded: u64,
}

impl CodedValues {
    /// The value at `path` was read whole at `coded` (its version as served) and is `decoded`
    /// bytes long decoded.
    fn note(&mut self, path: &str, coded: Version, decoded: u64) {
        if self.sizes.len() >= MAX_CODED_VALUES && !self.sizes.contains_key(path) {
            self.sizes.clear();
        }
        let size = CodedSize {
            tag: coded.tag,
            coded: coded.size,
            decoded,
        };
        self.sizes.insert(path.to_string(), size);
    }

    fn forget(&mut self, path: &str) {
        self.sizes.remove(path);
    }

    fn is_coded(&self, path: &str) -> bool {
        self.sizes.contains_key(path)
    }

    /// `served`, a version a HEAD gave for `path`, with its value's decoded size if it is
    /// the coded value read before: the version its read found, so that what was decoded
    /// from that read (cached chunks, a held shard) is seen to be of the value there now.
    fn as_read(&self, path: &str, served: Version) -> Version {
        match self.sizes.get(path) {
            Some(s) if s.tag == served.tag && s.coded == served.size => Version {
                size: s.decoded,
                ..served
            },
            _ => served,
        }
    }
}

/// The values fetched ahead of their reads, by key.
#[derive(Default)]
struct FetchedAhead {
    entries: HashMap<String, (Instant, Ahead)>,
    /// Bytes held in [`Ahead::Shared`] entries.
    shared_bytes: usize,
    /// Counts the times entries were dropped: a value taken out to wait for its fetch goes
    /// back only if none was meanwhile (it may be one a write or the end of its read dropped).
    drops: u64,
}

impl FetchedAhead {
    fn remove(&mut self, key: &str) -> Option<Ahead> {
        let (_, ahead) = self.entries.remove(key)?;
        if let Ahead::Shared(value) = &ahead {
            self.shared_bytes -= value.0.len();
        }
        Some(ahead)
    }

    /// Keeps a fetched value for the reads of its other parts, within the budget.
    fn share(&mut self, key: &str, at: Instant, value: Arc<Value>) {
        if self.shared_bytes + value.0.len() <= SHARED_BYTES && !self.entries.contains_key(key) {
            self.shared_bytes += value.0.len();
            self.entries
                .insert(key.to_string(), (at, Ahead::Shared(value)));
        }
    }

    /// Holds the value at `key` once more if it is held whole: its size.
    fn hold_again(&mut self, key: &str) -> Option<u64> {
        match self.entries.get_mut(key) {
            Some((_, Ahead::Held(value, holds))) => {
                *holds += 1;
                Some(value.0.len() as u64)
            }
            _ => None,
        }
    }

    /// The keys of the values held whole (see [`Ahead::Held`]).
    fn held_keys(&self) -> Vec<String> {
        (self.entries.iter())
            .filter(|(_, (_, entry))| matches!(entry, Ahead::Held(..)))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// How many fetches ahead are still running.
    fn running(&self) -> usize {
        (self.entries.values())
            .filter(|(_, ahead)| matches!(ahead, Ahead::Running(fetch) if !fetch.is_finished()))
            .count()
    }

    /// Drops the entries `drop` picks, stopping their fetches.
    fn drop_where(&mut self, drop: impl Fn(&str, Instant) -> bool) {
        let keys: Vec<String> = (self.entries.iter())
            .filter(|(key, (at, _))| drop(key, *at))
            .map(|(key, _)| key.clone())
            .collect();
        if !keys.is_empty() {
            self.drops += 1;
        }
        for key in keys {
            if let Some(Ahead::Running(fetch)) = self.remove(&key) {
                fetch.abort();
            }
        }
    }
}

/// What a store is made from, kept to make the client again after a fork.
#[derive(Clone)]
struct Recipe {
    service: Service,
    /// The URL of the service without the path (`s3://bucket`, `gs://bucket`,
    /// `https://host:port`).
    base: String,
    options: Vec<(String, String)>,
    /// A web server's `Authorization` header, from the URL's user and password.
    authorization: Option<String>,
}

/// An object store seen as a Zarr store.
pub struct RemoteStore {
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `https://host/path`, as the user gave it
    /// (without a final `/`).
    url: String,
    /// The objects' common prefix: "" or ending in `/`.
    prefix: String,
    recipe: Option<Recipe>,
    /// The object store given to [`RemoteStore::from_object_store`], which cannot be made
    /// again from a recipe.
    given: Option<Arc<dyn ObjectStore>>,
    /// The client. These locks start afresh in a forked child, which makes its own client
    /// (the parent's connections belong to the parent's runtime) and fetches nothing ahead
    /// of the parent's reads.
    client: ForkSafeMutex<Option<Arc<dyn ObjectStore>>>,
    prefetched: ForkSafeMutex<FetchedAhead>,
    /// Fetches that were not hinted ahead: the read waited for the network.
    waits: Arc<AtomicU64>,
    /// Whether the service answered a request for part of a value with all of it (a web
    /// server that ignores Range, such as Python's http.server): parts are then cut from
    /// whole values, fetched once each.
    ranges_ignored: AtomicBool,
    /// The values found served with a content coding: their parts are cut from the whole
    /// value decoded, and a HEAD's version of them is given their decoded size.
    coded: Arc<ForkSafeMutex<CodedValues>>,
}

impl fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteStore")
            .field("url", &self.url)
            .finish()
    }
}

/// A Google Cloud Storage builder with the client's options, then the settings of the
/// `SERVICE_ACCOUNT` and `GOOGLE_*` environment variables, as `from_env` reads them (some are
/// the client's: `GOOGLE_ALLOW_HTTP`, which client options set afterwards would drop).
fn gcs_from_env(client: object_store::ClientOptions) -> GoogleCloudStorageBuilder {
    // object_store's own default for this service allows http (an emulator's base URL).
    let mut builder =
        GoogleCloudStorageBuilder::new().with_client_options(client.with_allow_http(true));
    if let Ok(path) = std::env::var("SERVICE_ACCOUNT") {
        builder = builder.with_service_account_path(path);
    }
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue; // not UTF-8: no setting object_store knows
        };
        if name.starts_with("GOOGLE_") {
            if let Ok(key) = name.to_ascii_lowercase().parse::<GoogleConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
    }
    builder
}

/// The client's options before those given: no limit on a whole request, which a large
/// shard over a slow link outlasts while its bytes still arrive (object_store's default is 30 s
/// in all); a server that sends nothing for 30 s is given up on. Options given (`timeout`,
/// `read_timeout`) replace these.
fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_timeout_disabled()
        .with_read_timeout(Duration::from_secs(30))
}

/// The engine's option of a web server's store holding headers to send with every request,
/// as a JSON object of names and values.
pub const HEADERS_OPTION: &str = "headers";

/// The options a store takes, in `object_store`'s names; anything else is refused rather than
/// ignored (a misspelt endpoint would send requests to AWS).
fn build(recipe: &Recipe) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
    // A dead endpoint fails in seconds rather than after the crate's default of ten retries
    // over three minutes.
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    };
    let client = client_options();
    let unknown = |key: &str| object_store::Error::Generic {
        store: "options",
        source: format!("unknown option {key:?}").into(),
    };
    match recipe.service {
        Service::S3 => {
            // The engine's own option, not object_store's: keys from a command.
            let is_process = |key: &str| key == credential_process::OPTION;
            let process = recipe.options.iter().find(|(key, _)| is_process(key));
            let given = recipe
                .options
                .iter()
                .filter(|(key, _)| !is_process(key))
                .map(|(key, value)| {
                    let parsed: AmazonS3ConfigKey =
                        key.to_ascii_lowercase().parse().map_err(|_| unknown(key))?;
                    Ok((parsed, value.clone()))
                })
                .collect::<Result<Vec<_>, object_store::Error>>()?;
            // The client's options first: the environment's (AWS_ALLOW_HTTP) and the given
            // ones set their fields of them.
            let mut builder = AmazonS3Builder::new().with_client_options(client);
            for (key, value) in s3_environment(&given) {
                builder = builder.with_config(key, value);
            }
            builder = builder.with_url(recipe.base.clone()).with_retry(retry);
            for (key, value) in given {
                builder = builder.with_config(key, value);
            }
            if let Some((_, process)) = process {
                let provider = ProcessCredentials::from_option(process).map_err(|reason| {
                    object_store::Error::Generic {
                        store: "options",
                        source: reason.into(),
                    }
                })?;
                builder = builder.with_credentials(Arc::new(provider));
            } else if asks_instance_metadata(&builder) && instance_metadata_disabled() {
                builder = builder.with_credentials(Arc::new(NoCredentials {
                    bucket: recipe.base.clone(),
                }));
            }
            Ok(Arc::new(builder.build()?))
        }
        Service::Gcs => {
            // The `GOOGLE_*` environment variables first, then the options given: the same
            // order as S3's. Credentials not found there come from the application default
            // credentials file (`GOOGLE_APPLICATION_CREDENTIALS`, or gcloud's), then the
            // machine's metadata service.
            let mut builder = gcs_from_env(client)
                .with_url(recipe.base.clone())
                .with_retry(retry);
            let mut anonymous = false;
            for (key, value) in &recipe.options {
                let key: GoogleConfigKey =
                    key.to_ascii_lowercase().parse().map_err(|_| unknown(key))?;
                if key == GoogleConfigKey::SkipSignature {
                    anonymous = matches!(
                        value.to_ascii_lowercase().as_str(),
                        "1" | "true" | "on" | "yes" | "y"
                    );
                }
                builder = builder.with_config(key, value.clone());
            }
            if anonymous {
                // object_store leaves the token out of the requests it does not sign, but
                // still asks for one before others (uploads), from the metadata service when
                // nothing else is set: an anonymous store has an empty one, and never asks.
                builder = builder.with_credentials(Arc::new(StaticCredentialProvider::new(
                    GcpCredential {
                        bearer: String::new(),
                    },
                )));
            }
            Ok(Arc::new(builder.build()?))
        }
        Service::Http => {
            let mut builder = HttpBuilder::new()
                .with_url(recipe.base.clone())
                .with_retry(retry);
            let bad_header = |what: &str| object_store::Error::Generic {
                store: "options",
                source: what.to_string().into(),
            };
            let mut headers = object_store::HeaderMap::new();
            if let Some(authorization) = &recipe.authorization {
                let value = object_store::HeaderValue::from_str(authorization).map_err(|_| {
                    bad_header("the URL's user and password do not make an HTTP header")
                })?;
                headers.insert("authorization", value);
            }
            // Headers sent with every request (a bearer token), as fsspec's `headers`.
            for (_, value) in recipe.options.iter().filter(|(k, _)| k == HEADERS_OPTION) {
                let given: std::collections::HashMap<String, String> = serde_json::from_str(value)
                    .map_err(|_| bad_header("headers must map header names to text values"))?;
                let parsed = object_store::HeaderMap::try_from(&given)
                    .map_err(|e| bad_header(&format!("invalid HTTP header in headers: {e}")))?;
                headers.extend(parsed);
            }
            for value in headers.values_mut() {
                value.set_sensitive(true); // kept out of debug output and logs
            }
            // Before the options, which set their fields of these client options.
            builder = builder.with_client_options(client.with_default_headers(headers));
            for (key, value) in &recipe.options {
                if key == HEADERS_OPTION {
                    continue;
                }
                let key: ClientConfigKey =
                    key.to_ascii_lowercase().parse().map_err(|_| unknown(key))?;
                builder = builder.with_config(key, value.clone());
            }
            Ok(Arc::new(builder.build()?))
        }
    }
}

/// The S3 settings of the `AWS_*` environment variables, as `AmazonS3Builder::from_env` reads
/// them, but for its credentials when `given` has an access key (credentials are a set, and a
/// session token of the environment sent with another key fails every request), and for the
/// endpoint when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true, as botocore ignores it then.
fn s3_environment(given: &[(AmazonS3ConfigKey, String)]) -> Vec<(AmazonS3ConfigKey, String)> {
    use AmazonS3ConfigKey::{AccessKeyId, Endpoint, SecretAccessKey, Token};
    let own_credentials = given.iter().any(|(key, _)| matches!(key, AccessKeyId));
    // botocore's test: the word "true" in any case.
    let endpoint_ignored = std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"));
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let (name, value) = (name.into_string().ok()?, value.into_string().ok()?);
            if !name.starts_with("AWS_") {
                return None;
            }
            let key: AmazonS3ConfigKey = name.to_ascii_lowercase().parse().ok()?;
            let credential = matches!(key, AccessKeyId | SecretAccessKey | Token);
            let ignored = endpoint_ignored && matches!(key, Endpoint);
            (!(ignored || own_credentials && credential)).then_some((key, value))
        })
        .collect()
}

/// Whether `builder` holds no credentials, nor a way to get them but the instance metadata
/// service (the last place `object_store` looks, as botocore does).
fn asks_instance_metadata(builder: &AmazonS3Builder) -> bool {
    use AmazonS3ConfigKey::{
        AccessKeyId, ContainerAuthorizationTokenFile, ContainerCredentialsFullUri,
        ContainerCredentialsRelativeUri, RoleArn, SecretAccessKey, SkipSignature,
        WebIdentityTokenFile,
    };
    let set = |key: AmazonS3ConfigKey| builder.get_config_value(&key).is_some();
    // True as `object_store` reads it.
    let anonymous = builder
        .get_config_value(&SkipSignature)
        .is_some_and(|value| {
            matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "on" | "yes" | "y"
            )
        });
    !(anonymous
        || set(AccessKeyId)
        || set(SecretAccessKey)
        || (set(WebIdentityTokenFile) && set(RoleArn))
        || set(ContainerCredentialsRelativeUri)
        || (set(ContainerCredentialsFullUri) && set(ContainerAuthorizationTokenFile)))
}

/// `AWS_EC2_METADATA_DISABLED=true`: botocore then never asks the instance metadata service
/// (off EC2 it answers nothing, and each ask waits out a timeout). `object_store` does not
/// read the variable, so the engine honours it itself.
fn instance_metadata_disabled() -> bool {
    // botocore's test: the word "true" in any case.
    std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

/// The credentials of an S3 store that has none and may not ask the instance metadata
/// service: every signed request fails, saying so, as botocore's "Unable to locate
/// credentials" does.
#[derive(Debug)]
struct NoCredentials {
    /// `s3://bucket`, for the message.
    bucket: String,
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for NoCredentials {
    type Credential = object_store::aws::AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<Self::Credential>> {
        Err(object_store::Error::Unauthenticated {
            path: self.bucket.clone(),
            source: "no AWS credentials were found (storage options, AWS_* variables, AWS \
                     profile), and AWS_EC2_METADATA_DISABLED forbids asking the instance \
                     metadata service; give credentials, or anon=True for a public bucket"
                .into(),
        })
    }
}

/// A version from an object's size and entity tag; without one (a web server that sends
/// none), its modification time, which tells apart rewrites a second or more apart.
fn version_of(meta: &ObjectMeta) -> Version {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match &meta.e_tag {
        Some(etag) => etag.hash(&mut h),
        None => meta.last_modified.hash(&mut h),
    }
    Version {
        size: meta.size,
        tag: Some(h.finish()),
        exact: meta.e_tag.is_some(),
    }
}

/// An `object_store` error as a storage error naming `what` (a key's URL).
fn io_error(what: &str, err: object_store::Error) -> StorageError {
    use std::io::ErrorKind;
    if let object_store::Error::Generic { source, .. } = &err {
        if let Some(TooLargeToHold(bytes)) = source.downcast_ref() {
            return StorageError::OutOfMemory {
                key: what.to_string(),
                bytes: *bytes,
            };
        }
    }
    // The causes below object_store's message say what happened ("operation timed out"),
    // which its own message leaves out.
    let refused = is_refused_method(&err);
    let mut message = match &err {
        // Not "not found", as object_store's own message says: the server's answer.
        object_store::Error::NotFound { source, .. } if refused => source.to_string(),
        _ => err.to_string(),
    };
    let mut timed_out = false;
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        let text = c.to_string();
        timed_out |= text.contains("timed out")
            || c.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == ErrorKind::TimedOut);
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    let kind = match &err {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => ErrorKind::PermissionDenied,
        object_store::Error::NotFound { .. } if !refused => ErrorKind::NotFound,
        object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
            ErrorKind::Unsupported
        }
        _ if timed_out => ErrorKind::TimedOut,
        _ => ErrorKind::Other,
    };
    StorageError::Io {
        key: what.to_string(),
        source: std::io::Error::new(kind, one_line(&message)),
    }
}

/// `message` on one line and at most [`MESSAGE_CHARS`] long: object_store's errors end
/// with the body the server answered, which may be a whole HTML page. (An S3 error's code
/// and message come in the body's first few hundred characters, so they stay.)
fn one_line(message: &str) -> String {
    let joined = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= MESSAGE_CHARS {
        return joined;
    }
    let kept: String = joined.chars().take(MESSAGE_CHARS).collect();
    format!("{kept} (...)")
}

/// How much of a remote store's error message is kept (see [`one_line`]).
const MESSAGE_CHARS: usize = 600;

/// A failed listing: a web server that does not take oxzarr's listing request (WebDAV's
/// PROPFIND; static servers answer 405 or 501) is an unsupported operation, which readers
/// of consolidated metadata can do without. Other failures (5xx after retries, lost
/// connections) stay failures.
fn list_error(store: &RemoteStore, prefix: &str, err: object_store::Error) -> StorageError {
    // object_store keeps the status in a type of its own it does not export: its message
    // ("... status code: 501 Not Implemented ...") is what says it.
    let text = err.to_string();
    let refused = ["status code: 405 ", "status code: 501 "]
        .iter()
        .any(|status| text.contains(status));
    // A listing finds nothing rather than failing, but for a bucket that is not there
    // (S3's NoSuchBucket), which object_store reports as a plain error: not found, as a read
    // of a key in it is (and as botocore reports it).
    let missing = text.contains("status code: 404 ");
    // A listing refused (S3's AccessDenied to a role that may read objects but not list the
    // bucket), which object_store reports as a plain error too: permission denied, as a read
    // refused is (and as botocore reports it).
    let denied = ["status code: 401 ", "status code: 403 "]
        .iter()
        .any(|status| text.contains(status));
    let failed = io_error(&store.name(prefix), err);
    let status_kind = if missing {
        Some(std::io::ErrorKind::NotFound)
    } else if denied {
        Some(std::io::ErrorKind::PermissionDenied)
    } else {
        None
    };
    match (failed, status_kind) {
        (StorageError::Io { key, source }, Some(kind))
            if source.kind() == std::io::ErrorKind::Other =>
        {
            StorageError::Io {
                key,
                source: std::io::Error::new(kind, source.to_string()),
            }
        }
        (StorageError::Io { key, source }, _) if store.is_web_server() && refused => {
            StorageError::Io {
                key,
                source: std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    format!(
                        "the web server does not list its files (oxzarr lists with WebDAV's \
                         PROPFIND; a group with consolidated metadata needs no listing): \
                         {source}"
                    ),
                ),
            }
        }
        (other, _) => other,
    }
}

/// A store that cannot be made from its URL and options.
fn invalid_options(url: &str, err: object_store::Error) -> StorageError {
    StorageError::InvalidOptions {
        store: url.to_string(),
        reason: err.to_string(),
    }
}

/// Whether `err` says there is no value at the key: an HTTP 404. object_store's web server
/// client reports a 405 (Method Not Allowed) as not found too (some servers answer it for a
/// directory), but a proxy or firewall refusing an object answers it as well: read as a
/// missing chunk, that chunk's fill value came back in silence.
fn is_not_found(err: &object_store::Error) -> bool {
    matches!(err, object_store::Error::NotFound { .. }) && !is_refused_method(err)
}

/// Whether `err` is an HTTP 405 (Method Not Allowed). object_store keeps the status in a type
/// of its own it does not export: its message is what says it.
fn is_refused_method(err: &object_store::Error) -> bool {
    err.to_string().contains("status code: 405 ")
}

/// Splits a URL into the service, its base (scheme and bucket or host) and the path in it.
fn split_url(url: &str) -> Result<(Service, String, String), StorageError> {
    let bad = |reason: &str| StorageError::invalid_key(url, reason);
    let parsed = url::Url::parse(url).map_err(|e| bad(&format!("not a URL: {e}")))?;
    let service = match parsed.scheme() {
        "s3" | "s3a" => Service::S3,
        // gcsfs's two names for the same service.
        "gs" | "gcs" => Service::Gcs,
        "http" | "https" => Service::Http,
        other => return Err(bad(&format!("unsupported scheme {other}://"))),
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no bucket or host"))?;
    if service == Service::Http && parsed.query().is_some() {
        // Requests go to the keys below the URL's path: its query would not be sent, and
        // another dataset read in silence (`?version=2`) or a token left out. Named without
        // it, so that a token is not printed.
        let shown = url.split_once('?').map_or(url, |(before, _)| before);
        return Err(StorageError::invalid_key(
            &format!("{shown}?..."),
            "a web server's URL with a query string (?...) is not supported: oxzarr requests \
             the keys below its path, without the query",
        ));
    }
    let base = match (service, parsed.port()) {
        // object_store knows a bucket's URL by `gs://` only.
        (Service::Gcs, _) => format!("gs://{host}"),
        (_, Some(port)) => format!("{}://{host}:{port}", parsed.scheme()),
        (_, None) => format!("{}://{host}", parsed.scheme()),
    };
    // The path without the slashes around it. A bucket's object names are taken as written,
    // as s3fs, gcsfs and the AWS command line take them ("%20" is three characters of a
    // name); a web server's path is a URL's, percent-encoded.
    let path = match service {
        Service::Http => percent_encoding::percent_decode_str(parsed.path())
            .decode_utf8()
            .map_err(|_| bad("the path is not UTF-8"))?
            .into_owned(),
        Service::S3 | Service::Gcs => url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map_or("", |(_, path)| path)
            .to_string(),
    };
    Ok((service, base, path.trim_matches('/').to_string()))
}

/// The Basic authentication of a web server's URL with a user (`https://user:pass@host/`),
/// as an `Authorization` header's value: object_store sends no URL's credentials itself, and
/// aiohttp (zarr-python's fsspec) sends these.
fn basic_authorization(url: &str) -> Option<String> {
    use base64::Engine;
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https")
        || (parsed.username().is_empty() && parsed.password().is_none())
    {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(parsed.username());
    let password = decode(parsed.password().unwrap_or_default());
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Some(format!("Basic {pair}"))
}

/// `url` as messages show it: a password in it is left out.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => match parsed.set_password(Some("***")) {
            Ok(()) => parsed.to_string(),
            Err(()) => url.to_string(),
        },
        _ => url.to_string(),
    }
}

impl RemoteStore {
    /// The store at `url` (`s3://bucket/prefix`, `gs://bucket/prefix`, `https://host/path`),
    /// with `options` in `object_store`'s names (`aws_endpoint`, `aws_region`,
    /// `aws_skip_signature`, `google_service_account`, `google_base_url`, `allow_http`, ...).
    /// Credentials not given are taken from the `AWS_*` or `GOOGLE_*` environment variables,
    /// or the instance's metadata service (not when `AWS_EC2_METADATA_DISABLED=true`). Nothing
    /// is fetched yet.
    pub fn open(url: &str, options: Vec<(String, String)>) -> Result<Self, StorageError> {
        let (service, base, path) = split_url(url)?;
        if !path.is_empty() {
            validate_key(&path).map_err(|_| {
                StorageError::invalid_key(url, "the path holds an empty, '.' or '..' component")
            })?;
        }
        let recipe = Recipe {
            service,
            base,
            options,
            authorization: basic_authorization(url),
        };
        let url = without_password(url);
        let store = build(&recipe).map_err(|e| invalid_options(&url, e))?;
        let url = url.trim_end_matches('/').to_string();
        Self::with_client(url, &path, store, Some(recipe), None)
    }

    /// A store over an `object_store` made elsewhere (an in-memory one in tests), its values
    /// under `path`; `url` names it in messages.
    pub fn from_object_store(
        url: &str,
        path: &str,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Self, StorageError> {
        let given = Some(store.clone());
        Self::with_client(
            url.trim_end_matches('/').to_string(),
            path,
            store,
            None,
            given,
        )
    }

    fn with_client(
        url: String,
        path: &str,
        store: Arc<dyn ObjectStore>,
        recipe: Option<Recipe>,
        given: Option<Arc<dyn ObjectStore>>,
    ) -> Result<Self, StorageError> {
        let path = path.trim_matches('/');
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        Ok(Self {
            url,
            prefix,
            recipe,
            given,
            client: ForkSafeMutex::new(Some(store)),
            prefetched: ForkSafeMutex::new(FetchedAhead::default()),
            waits: Arc::new(AtomicU64::new(0)),
            ranges_ignored: AtomicBool::new(false),
            coded: Arc::new(ForkSafeMutex::new(CodedValues::default())),
        })
    }

    /// Why oxzarr only reads this store, if it does: a web server takes no writes, and
    /// Google Cloud Storage's uploads are not tested (no emulator here takes them).
    pub fn read_only_reason(&self) -> Option<&'static str> {
        match self.recipe.as_ref()?.service {
            Service::Http => Some("oxzarr reads web servers but cannot write to them"),
            Service::Gcs => Some("oxzarr reads Google Cloud Storage but cannot write to it yet"),
            Service::S3 => None,
        }
    }

    fn is_web_server(&self) -> bool {
        self.recipe.as_ref().map(|r| r.service) == Some(Service::Http)
    }

    /// The client and runtime of this process.
    fn client(&self) -> Result<(Arc<dyn ObjectStore>, Arc<Runtime>), StorageError> {
        let mut client = self.client.lock();
        let store = match client.as_ref() {
            Some(store) => store.clone(),
            // Made in a parent process: made again here.
            None => {
                let store = match (&self.recipe, &self.given) {
                    (Some(recipe), _) => {
                        build(recipe).map_err(|e| invalid_options(&self.url, e))?
                    }
                    (None, Some(given)) => given.clone(),
                    (None, None) => {
                        return Err(invalid_options(
                            &self.url,
                            object_store::Error::Generic {
                                store: "options",
                                source: "nothing to make the store from".into(),
                            },
                        ))
                    }
                };
                *client = Some(store.clone());
                store
            }
        };
        Ok((store, runtime()?))
    }

    fn path(&self, key: &str) -> Result<Path, StorageError> {
        validate_key(key)?;
        Path::parse(format!("{}{key}", self.prefix))
            .map_err(|e| StorageError::invalid_key(key, &e.to_string()))
    }

    /// How a key is named in messages: its full URL.
    fn name(&self, key: &str) -> String {
        format!("{}/{key}", self.url)
    }

    /// A key of this store from an object's location under its prefix.
    /// The objects object_store lists below `prefix` (a valid prefix of this store).
    fn objects_below(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let (store, runtime) = self.client()?;
        let full = format!("{}{prefix}", self.prefix);
        let path =
            Path::parse(&full).map_err(|e| StorageError::invalid_key(prefix, &e.to_string()))?;
        runtime
            .block_on(store.list(Some(&path)).try_collect())
            .map_err(|e| list_error(self, prefix, e))
    }

    /// The store key of a listed object, if it has one (an object named with '\' has
    /// none: it is left out of listings, as on a filesystem).
    fn key_of(&self, location: &Path) -> Option<String> {
        location
            .as_ref()
            .strip_prefix(self.prefix.as_str())
            .filter(|key| key.is_empty() || validate_key(key).is_ok())
            .map(str::to_string)
    }

    /// Whether the service may hold folder markers: empty objects named with a final `/`
    /// ("sub/"), which the S3 and Google Cloud consoles' "Create folder" and many upload
    /// tools make. object_store lists one under its name without the `/` ("sub"), as if it
    /// were an empty value.
    fn may_hold_folder_markers(&self) -> bool {
        matches!(
            self.recipe.as_ref().map(|r| r.service),
            Some(Service::S3 | Service::Gcs)
        )
    }

    /// The listed objects of `listed` that are folder markers. Only an empty object can be
    /// one; it is one when no object is named as it was listed (the name without the `/`),
    /// which a HEAD request of that name finds.
    fn folder_markers(
        &self,
        listed: &[ObjectMeta],
    ) -> Result<std::collections::HashSet<Path>, StorageError> {
        let empty: Vec<&Path> = (listed.iter())
            .filter(|meta| meta.size == 0)
            .map(|meta| &meta.location)
            .collect();
        if empty.is_empty() || !self.may_hold_folder_markers() {
            return Ok(Default::default());
        }
        let (store, runtime) = self.client()?;
        let found = runtime.block_on(
            futures_util::stream::iter(empty.into_iter().map(|location| {
                let store = store.clone();
                async move {
                    match store.head(location).await {
                        Ok(_) => Ok(None),
                        Err(e) if is_not_found(&e) => Ok(Some(location.clone())),
                        Err(e) => Err((location.to_string(), e)),
                    }
                }
            }))
            .buffer_unordered(CONCURRENT_REQUESTS)
            .try_collect::<Vec<Option<Path>>>(),
        );
        match found {
            Ok(found) => Ok(found.into_iter().flatten().collect()),
            Err((location, e)) => Err(io_error(&self.object_name(&location), e)),
        }
    }

    /// How an object of the service is named in messages: its URL.
    fn object_name(&self, location: &str) -> String {
        match location.strip_prefix(self.prefix.as_str()) {
            Some(key) => self.name(key),
            None => location.to_string(),
        }
    }

    /// The whole value at `key`, taken from a fetch ahead if there is one.
    fn fetch(&self, key: &str) -> Result<Option<Value>, StorageError> {
        let (store, runtime) = self.client()?;
        let ahead = {
            let mut ahead = self.prefetched.lock();
            match ahead.entries.get(key) {
                // A value held whole stays held for the reads of its parts that follow
                // (see `hold_whole`): a copy is taken.
                Some((_, Ahead::Held(value, _))) => Some(Ahead::Shared(value.clone())),
                _ => ahead.remove(key),
            }
        };
        let result = match ahead {
            Some(Ahead::Running(fetch)) => runtime
                .block_on(fetch)
                .unwrap_or_else(|e| Err(object_store::Error::JoinError { source: e })),
            Some(Ahead::Shared(value) | Ahead::Held(value, _)) => {
                Ok(Arc::try_unwrap(value).unwrap_or_else(|value| (*value).clone()))
            }
            None => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                let path = self.path(key)?;
                runtime.block_on(get_whole(store, path, self.coded.clone()))
            }
        };
        match result {
            Ok(found) => Ok(Some(found)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(io_error(&self.name(key), e)),
        }
    }

    /// The value at `key` if it was fetched ahead, to read parts of: kept for reads of its
    /// other parts while the budget allows. `None` if it was not (or its fetch failed: the
    /// read then asks for its parts itself, and reports what it finds).
    fn fetched_ahead(&self, key: &str) -> Option<Arc<Value>> {
        let mut ahead = self.prefetched.lock();
        let (at, entry) = ahead.entries.get(key)?;
        let at = *at;
        if let Ahead::Held(value, _) = entry {
            return Some(value.clone());
        }
        if at.elapsed() >= PREFETCH_TTL {
            ahead.drop_where(|k, _| k == key);
            return None;
        }
        let fetch = match ahead.remove(key)? {
            Ahead::Held(value, holds) => {
                // (Not reached: held values are returned above.)
                ahead
                    .entries
                    .insert(key.to_string(), (at, Ahead::Held(value.clone(), holds)));
                return Some(value);
            }
            Ahead::Shared(value) => {
                ahead.share(key, at, value.clone());
                return Some(value);
            }
            Ahead::Running(fetch) => fetch,
        };
        let drops = ahead.drops;
        drop(ahead);
        let (_, runtime) = self.client().ok()?;
        let value = Arc::new(runtime.block_on(fetch).ok()?.ok()?);
        let mut ahead = self.prefetched.lock();
        if ahead.drops == drops {
            ahead.share(key, at, value.clone());
        }
        Some(value)
    }

    /// Drops fetches ahead of keys that are about to change, or whose read is over, so that
    /// no read sees a value fetched before a change.
    fn forget_prefetched(&self, matches: impl Fn(&str) -> bool) {
        let mut ahead = self.prefetched.lock();
        // Counted even when nothing here matches: a value being waited for is out of the map.
        ahead.drops += 1;
        ahead.drop_where(|key, _| matches(key));
    }

    /// Fetches the given ranges of the value at `key` with one request per run of ranges
    /// closer than [`COALESCE_GAP`], all at once; `None` if there is no value. Each range is
    /// checked against the value's size and, with `expected`, the version.
    fn fetch_ranges(
        &self,
        key: &str,
        ranges: &[Range<u64>],
        expected: Option<Version>,
    ) -> Result<Ranges, StorageError> {
        if let Some(value) = self.fetched_ahead(key) {
            // Fetched ahead whole (a shard, say): the ranges are cut from it.
            return self.cut_ranges(key, &value, ranges, expected);
        }
        let path = self.path(key)?;
        if self.ranges_ignored.load(Ordering::Relaxed) || self.coded.lock().is_coded(path.as_ref())
        {
            return self.cut_from_whole(key, ranges, expected);
        }
        let (store, runtime) = self.client()?;
        self.waits.fetch_add(1, Ordering::Relaxed);
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_by_key(|&i| ranges[i].start);
        let mut runs: Vec<Range<u64>> = Vec::new();
        for &i in &order {
            let r = &ranges[i];
            match runs.last_mut() {
                Some(run) if r.start <= run.end.saturating_add(COALESCE_GAP) => {
                    run.end = run.end.max(r.end);
                }
                _ => runs.push(r.clone()),
            }
        }
        let fetched = runtime.block_on(try_join_all(runs.iter().map(|run| {
            let store = store.clone();
            let path = path.clone();
            let run = run.clone();
            async move {
                if run.is_empty() {
                    // An empty range cannot be asked for: the size says whether it is in.
                    let meta = store.head(&path).await?;
                    return Ok::<_, object_store::Error>((Vec::new(), version_of(&meta)));
                }
                let options = GetOptions {
                    range: Some(GetRange::Bounded(run)),
                    ..GetOptions::default()
                };
                let got = store.get_opts(&path, options).await?;
                refuse_coded_parts(&got)?;
                let version = version_of(&got.meta);
                Ok((body_of(got).await?, version))
            }
        })));
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Ok(Ranges::Missing),
            // This value is served coded (its whole read notes it so): its parts are cut
            // from it decoded. Other values' parts are still asked for.
            Err(e) if is_coded_part(&e) => return self.cut_from_whole(key, ranges, expected),
            Err(object_store::Error::NotSupported { .. }) => {
                // The whole value came back for a part of it (object_store refuses that
                // answer): from now on whole values are asked for, and parts cut from them.
                self.ranges_ignored.store(true, Ordering::Relaxed);
                return self.cut_from_whole(key, ranges, expected);
            }
            Err(e) => {
                let ranges: Vec<ByteRange> = ranges
                    .iter()
                    .map(|r| ByteRange::FromStart {
                        offset: r.start,
                        length: Some(r.end - r.start),
                    })
                    .collect();
                let size = self.size(key).ok().flatten();
                return Err(self.failed_range(key, &ranges, size, e));
            }
        };
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            // The run holding `r`: the last one starting at or before it.
            let at = runs
                .partition_point(|run| run.start <= r.start)
                .saturating_sub(1);
            let (bytes, version) = &fetched[at];
            if let Some(expected) = expected {
                let same = same_version(expected, *version);
                if same != PartsRead::Done {
                    return Ok(Ranges::Other(same));
                }
            }
            // A range past the end comes back short: the service sends what there is.
            let start = (r.start - runs[at].start) as usize;
            let end = start + (r.end - r.start) as usize;
            if r.end > version.size || end > bytes.len() {
                let range = ByteRange::FromStart {
                    offset: r.start,
                    length: Some(r.end - r.start),
                };
                return Err(StorageError::out_of_range(
                    &self.name(key),
                    range,
                    version.size,
                ));
            }
            out.push(bytes[start..end].to_vec());
        }
        Ok(Ranges::Read(out))
    }

    /// `ranges` of `value`, the whole value at `key`, if it is still the `expected` version.
    fn cut_ranges(
        &self,
        key: &str,
        value: &Value,
        ranges: &[Range<u64>],
        expected: Option<Version>,
    ) -> Result<Ranges, StorageError> {
        let (bytes, version) = value;
        if let Some(expected) = expected {
            let same = same_version(expected, *version);
            if same != PartsRead::Done {
                return Ok(Ranges::Other(same));
            }
        }
        let name = self.name(key);
        let cut = ranges.iter().map(|r| {
            let range = ByteRange::FromStart {
                offset: r.start,
                length: Some(r.end - r.start),
            };
            range_of(&name, bytes, range)
        });
        Ok(Ranges::Read(cut.collect::<Result<_, _>>()?))
    }

    /// `range` of the value at `key`, cut from the whole value fetched, with its version.
    fn range_of_whole(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        match self.fetch(key)? {
            Some((bytes, version)) => {
                Ok(Some((range_of(&self.name(key), &bytes, range)?, version)))
            }
            None => Ok(None),
        }
    }

    /// `ranges` of the value at `key`, cut from the whole value fetched.
    fn cut_from_whole(
        &self,
        key: &str,
        ranges: &[Range<u64>],
        expected: Option<Version>,
    ) -> Result<Ranges, StorageError> {
        match self.fetch(key)? {
            Some(value) => self.cut_ranges(key, &value, ranges, expected),
            None => Ok(Ranges::Missing),
        }
    }

    /// The error for a ranged read of `key` that failed with `err`, the value holding `size`
    /// bytes if it is known: a service refuses a range starting past the end of the value
    /// (HTTP 416), which is reported as such.
    fn failed_range(
        &self,
        key: &str,
        ranges: &[ByteRange],
        size: Option<u64>,
        err: object_store::Error,
    ) -> StorageError {
        if let Some(size) = size {
            if let Some(range) = ranges.iter().find(|r| r.to_range(size).is_none()) {
                return StorageError::out_of_range(&self.name(key), *range, size);
            }
        }
        io_error(&self.name(key), err)
    }

    /// One range (a suffix too) of the value at `key`, with the value's version.
    fn fetch_range(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        if let Some(value) = self.fetched_ahead(key) {
            // A shard fetched ahead: its index is read from it.
            let (bytes, version) = &*value;
            return Ok(Some((range_of(&self.name(key), bytes, range)?, *version)));
        }
        let path = self.path(key)?;
        if self.ranges_ignored.load(Ordering::Relaxed) || self.coded.lock().is_coded(path.as_ref())
        {
            return self.range_of_whole(key, range);
        }
        let (store, runtime) = self.client()?;
        self.waits.fetch_add(1, Ordering::Relaxed);
        let get = match range {
            // An empty range cannot be asked for: the size says whether it is in the value.
            ByteRange::FromStart {
                length: Some(0), ..
            }
            | ByteRange::Suffix(0) => None,
            ByteRange::FromStart {
                offset,
                length: Some(len),
            } => Some(GetRange::Bounded(offset..offset.saturating_add(len))),
            ByteRange::FromStart {
                offset,
                length: None,
            } => Some(GetRange::Offset(offset)),
            ByteRange::Suffix(n) => Some(GetRange::Suffix(n)),
        };
        let result = runtime.block_on(async {
            let Some(get) = get else {
                let meta = store.head(&path).await?;
                let size = meta.size;
                return Ok((Vec::new(), version_of(&meta), size..size));
            };
            let options = GetOptions {
                range: Some(get),
                ..GetOptions::default()
            };
            let got = store.get_opts(&path, options).await?;
            refuse_coded_parts(&got)?;
            let version = version_of(&got.meta);
            let got_range = got.range.clone();
            Ok::<_, object_store::Error>((body_of(got).await?, version, got_range))
        });
        let (bytes, version, got_range) = match result {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) if is_coded_part(&e) => return self.range_of_whole(key, range),
            Err(object_store::Error::NotSupported { .. }) => {
                // The whole value came back (see `fetch_ranges`).
                self.ranges_ignored.store(true, Ordering::Relaxed);
                return self.range_of_whole(key, range);
            }
            Err(e) => {
                // Services refuse an empty range at the very end (HTTP 416), which is in the
                // value all the same.
                let found = self.version(key).ok().flatten();
                if let Some(version) = found {
                    if range.to_range(version.size).is_some_and(|r| r.is_empty()) {
                        return Ok(Some((Vec::new(), version)));
                    }
                }
                return Err(self.failed_range(key, &[range], found.map(|v| v.size), e));
            }
        };
        // The service sends what there is of a range reaching past the end: the bytes that
        // came must be the range asked for.
        match range.to_range(version.size) {
            Some(want)
                if bytes.len() as u64 == want.end - want.start
                    && (bytes.is_empty() || want == got_range) =>
            {
                Ok(Some((bytes, version)))
            }
            _ => Err(StorageError::out_of_range(
                &self.name(key),
                range,
                version.size,
            )),
        }
    }
}

/// The whole value at `path`, with its version. A value served with a content coding (an
/// object uploaded gzipped with `Content-Encoding: gzip`, as static sites and some upload
/// tools store JSON) is decoded, as zarr-python's HTTP clients decode it; the version's size
/// is then the decoded value's, which the parts of it are cut from.
///
/// Such a value is noted in `coded`, with its sizes coded and decoded: a HEAD gives the coded
/// size, and the value's version is the one its decoded bytes were read at.
async fn get_whole(
    store: Arc<dyn ObjectStore>,
    path: Path,
    coded: Arc<ForkSafeMutex<CodedValues>>,
) -> Result<(Vec<u8>, Version), object_store::Error> {
    let got = store.get(&path).await?;
    let mut version = version_of(&got.meta);
    let coding = content_coding(&got);
    let body = body_of(got).await?;
    let value = match coding {
        ContentCoding::Identity => {
            coded.lock().forget(path.as_ref());
            body
        }
        ContentCoding::Gzip => {
            let value = gunzip(&body)?;
            coded
                .lock()
                .note(path.as_ref(), version, value.len() as u64);
            value
        }
        ContentCoding::Other(name) => return Err(unknown_coding(&name)),
    };
    version.size = value.len() as u64;
    Ok((value, version))
}

/// A part of a value served with a content coding is a part of the coded bytes, which
/// cannot be decoded alone: refused as a server ignoring ranges is, so that the whole value
/// is fetched (and decoded) and parts cut from it.
fn refuse_coded_parts(got: &GetResult) -> Result<(), object_store::Error> {
    match content_coding(got) {
        ContentCoding::Identity => Ok(()),
        _ => Err(object_store::Error::Generic {
            store: "oxzarr",
            source: Box::new(CodedPart),
        }),
    }
}

/// A part of a value came coded (see `refuse_coded_parts`).
#[derive(Debug, thiserror::Error)]
#[error("a part of a value served with a content coding")]
struct CodedPart;

fn is_coded_part(err: &object_store::Error) -> bool {
    matches!(err, object_store::Error::Generic { source, .. } if source.is::<CodedPart>())
}

/// How a response's body is encoded (its `Content-Encoding`).
#[derive(Debug, PartialEq, Eq)]
enum ContentCoding {
    Identity,
    Gzip,
    Other(String),
}

fn content_coding(got: &GetResult) -> ContentCoding {
    let Some(coding) = got.attributes.get(&Attribute::ContentEncoding) else {
        return ContentCoding::Identity;
    };
    let coding = coding.trim().to_ascii_lowercase();
    match coding.as_str() {
        "" | "identity" => ContentCoding::Identity,
        "gzip" | "x-gzip" => ContentCoding::Gzip,
        _ => ContentCoding::Other(coding),
    }
}

/// A body served with a content coding oxzarr does not decode.
#[derive(Debug, thiserror::Error)]
#[error("it was served with Content-Encoding: {0}, which oxzarr does not decode (only gzip)")]
struct UnknownContentCoding(String);

fn unknown_coding(name: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "oxzarr",
        source: Box::new(UnknownContentCoding(name.to_string())),
    }
}

/// A gzip-coded body that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("it was served with Content-Encoding: gzip, and its body is no gzip stream: {0}")]
struct BadGzipBody(String);

/// The decoded bytes of a gzip-coded body, grown fallibly (a small hostile body can decode
/// to more than memory holds: the caller gets an error, not an abort).
fn gunzip(body: &[u8]) -> Result<Vec<u8>, object_store::Error> {
    use std::io::Read;
    let failed = |message: String| object_store::Error::Generic {
        store: "oxzarr",
        source: Box::new(BadGzipBody(message)),
    };
    let mut decoder = flate2::read::MultiGzDecoder::new(body);
    let mut out: Vec<u8> = Vec::new();
    let mut block = vec![0u8; 1 << 16];
    loop {
        let n = decoder
            .read(&mut block)
            .map_err(|e| failed(e.to_string()))?;
        if n == 0 {
            return Ok(out);
        }
        let needed = out.len().saturating_add(n);
        if needed > out.capacity() {
            // Doubled, not grown by each block: a copy per block would be quadratic.
            let doubled = needed.max(out.capacity().saturating_mul(2));
            crate::alloc::reserve(&mut out, doubled)
                .or_else(|_| crate::alloc::reserve(&mut out, needed))
                .map_err(|e| failed(e.to_string()))?;
        }
        out.extend_from_slice(&block[..n]);
    }
}

/// A value's size, as a server gave it, that no buffer of this machine could hold.
#[derive(Debug, thiserror::Error)]
#[error("cannot allocate the {0} bytes it holds")]
struct TooLargeToHold(u64);

/// The body of a response, in a buffer allocated fallibly for the size the server announced
/// (object_store's own collection of it aborts the process when that allocation fails, and a
/// hostile or broken server can announce any size): see crate::alloc.
async fn body_of(got: GetResult) -> Result<Vec<u8>, object_store::Error> {
    let announced = got.range.end.saturating_sub(got.range.start);
    let too_large = |bytes: u64| object_store::Error::Generic {
        store: "oxzarr",
        source: Box::new(TooLargeToHold(bytes)),
    };
    let mut buf = Vec::new();
    let room = usize::try_from(announced).map_err(|_| too_large(announced))?;
    crate::alloc::reserve(&mut buf, room).map_err(|_| too_large(announced))?;
    let mut stream = got.into_stream();
    while let Some(bytes) = stream.try_next().await? {
        // (A body longer than announced grows the buffer fallibly too.)
        let needed = buf.len().saturating_add(bytes.len());
        crate::alloc::reserve(&mut buf, needed).map_err(|_| too_large(needed as u64))?;
        buf.extend_from_slice(&bytes);
    }
    Ok(buf)
}

impl ReadableStore for RemoteStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.fetch(key)?.map(|(value, _)| value))
    }

    fn get_ranges(
        &self,
        key: &str,
        ranges: &[ByteRange],
    ) -> Result<Option<Vec<Vec<u8>>>, StorageError> {
        // Ranges from the start with a length go together; others (rare: suffixes, open
        // ends) one by one.
        let bounded: Option<Vec<Range<u64>>> = ranges
            .iter()
            .map(|r| match *r {
                ByteRange::FromStart {
                    offset,
                    length: Some(len),
                } => offset.checked_add(len).map(|end| offset..end),
                _ => None,
            })
            .collect();
        if let Some(bounded) = bounded {
            return Ok(match self.fetch_ranges(key, &bounded, None)? {
                Ranges::Read(values) => Some(values),
                // Without a version expected, every other answer is a missing value.
                Ranges::Missing | Ranges::Other(_) => None,
            });
        }
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            match self.fetch_range(key, *r)? {
                Some((bytes, _)) => out.push(bytes),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    fn get_range_and_version(
        &self,
        key: &str,
        range: ByteRange,
    ) -> Result<Option<(Vec<u8>, Version)>, StorageError> {
        self.fetch_range(key, range)
    }

    fn read_parts_into(
        &self,
        key: &str,
        parts: &mut [(u64, &mut [u8])],
        expected: Option<Version>,
    ) -> Result<PartsRead, StorageError> {
        let mut ranges = Vec::with_capacity(parts.len());
        for (offset, dst) in parts.iter() {
            let end = offset.checked_add(dst.len() as u64).ok_or_else(|| {
                let range = ByteRange::FromStart {
                    offset: *offset,
                    length: Some(dst.len() as u64),
                };
                StorageError::out_of_range(&self.name(key), range, 0)
            })?;
            ranges.push(*offset..end);
        }
        match self.fetch_ranges(key, &ranges, expected)? {
            Ranges::Missing => Ok(PartsRead::Missing),
            Ranges::Other(other) => Ok(other),
            Ranges::Read(values) => {
                for ((_, dst), value) in parts.iter_mut().zip(values) {
                    dst.copy_from_slice(&value);
                }
                Ok(PartsRead::Done)
            }
        }
    }

    fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        Ok(self.version(key)?.map(|v| v.size))
    }

    fn version(&self, key: &str) -> Result<Option<Version>, StorageError> {
        if let Some((_, Ahead::Held(held, _))) = self.prefetched.lock().entries.get(key) {
            // Held whole for a read (see `hold_whole`): the version it reads, where a server
            // answering each request with its own version would give another.
            return Ok(Some(held.1));
        }
        let (store, runtime) = self.client()?;
        let path = self.path(key)?;
        match runtime.block_on(store.head(&path)) {
            Ok(meta) => Ok(Some(
                self.coded.lock().as_read(path.as_ref(), version_of(&meta)),
            )),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(io_error(&self.name(key), e)),
        }
    }

    fn prefetch(&self, key: &str) {
        let Ok((store, runtime)) = self.client() else {
            return;
        };
        let Ok(path) = self.path(key) else {
            return;
        };
        let mut ahead = self.prefetched.lock();
        if ahead.entries.contains_key(key) {
            return;
        }
        let now = Instant::now();
        let held = ahead.held_keys();
        ahead.drop_where(|k, at| {
            now.duration_since(at) >= PREFETCH_TTL && !held.iter().any(|h| h == k)
        });
        if ahead.entries.len() >= MAX_PREFETCHED
            || (self.is_web_server() && ahead.running() >= WEB_FETCHING_AHEAD)
        {
            return;
        }
        let fetch = runtime.spawn(get_whole(store, path, self.coded.clone()));
        ahead
            .entries
            .insert(key.to_string(), (now, Ahead::Running(fetch)));
    }

    fn concurrent_requests(&self) -> usize {
        CONCURRENT_REQUESTS
    }

    fn hold_whole(&self, key: &str) -> Result<Option<u64>, StorageError> {
        // Held already (a read of one shard within a read of many that holds it): held once
        // more, the value it holds unchanged.
        if let Some(size) = self.prefetched.lock().hold_again(key) {
            return Ok(Some(size));
        }
        let Some(value) = self.fetch(key)? else {
            return Ok(Some(0));
        };
        let mut ahead = self.prefetched.lock();
        // Another thread of the read may have held it meanwhile, from another answer: its
        // value is the one held (replacing it would change the version under that thread).
        if let Some(size) = ahead.hold_again(key) {
            return Ok(Some(size));
        }
        let size = value.0.len() as u64;
        ahead.remove(key);
        ahead.entries.insert(
            key.to_string(),
            (Instant::now(), Ahead::Held(Arc::new(value), 1)),
        );
        Ok(Some(size))
    }

    fn release_whole(&self, key: &str) {
        let mut ahead = self.prefetched.lock();
        match ahead.entries.get_mut(key) {
            Some((_, Ahead::Held(_, holds))) if *holds > 1 => *holds -= 1,
            Some((_, Ahead::Held(..))) => {
                ahead.remove(key);
            }
            _ => {}
        }
    }

    fn hints_done(&self, keys: &[String]) {
        // Values held whole stay until their reads let them go (`release_whole`): another
        // read's hints may name them.
        let mut ahead = self.prefetched.lock();
        ahead.drops += 1;
        let held = ahead.held_keys();
        ahead.drop_where(|k, _| keys.iter().any(|key| key == k) && !held.iter().any(|h| h == k));
    }

    fn device_waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

impl WritableStore for RemoteStore {
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let (store, runtime) = self.client()?;
        let path = self.path(key)?;
        // Dropped before and after: a hint may come while the PUT is on its way.
        self.forget_prefetched(|k| k == key);
        // An object is replaced whole by a PUT: readers see the old value or the new.
        let payload = PutPayload::from(value.to_vec());
        let put = runtime.block_on(store.put(&path, payload));
        self.forget_prefetched(|k| k == key);
        // Written as it is given, with no content coding.
        self.coded.lock().forget(path.as_ref());
        put.map(|_| ()).map_err(|e| io_error(&self.name(key), e))
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        let (store, runtime) = self.client()?;
        let path = self.path(key)?;
        self.forget_prefetched(|k| k == key);
        let deleted = runtime.block_on(store.delete(&path));
        self.forget_prefetched(|k| k == key);
        self.coded.lock().forget(path.as_ref());
        match deleted {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(io_error(&self.name(key), e)),
        }
    }

    fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        validate_prefix(prefix)?;
        self.forget_prefetched(|k| k.starts_with(prefix));
        let (store, runtime) = self.client()?;
        // Every object below the prefix: those no key names (with '\' in their names, left
        // out of listings) go too, as everything below a deleted node does.
        let full = format!("{}{prefix}", self.prefix);
        let mut paths: Vec<Path> = Vec::new();
        for meta in self.objects_below(prefix)? {
            let location = meta.location;
            // Folder markers go too ("sub/" and those below it, listed without their final
            // `/`), as s3fs deletes them. An empty object may be one (see
            // `folder_markers`): both names are deleted, and a name that is not there is
            // deleted without complaint. (`join("")` gives the name its final `/` back,
            // which `Path::parse` strips.)
            let marker = self.may_hold_folder_markers() && meta.size == 0;
            if marker && format!("{location}/") == full {
                paths.push(location.join(""));
            } else if location.as_ref().starts_with(full.as_str()) {
                if marker {
                    paths.push(location.clone().join(""));
                }
                paths.push(location);
            }
        }
        let deleted = runtime.block_on(async {
            let stream =
                futures_util::stream::iter(paths.into_iter().map(Ok::<_, object_store::Error>));
            store
                .delete_stream(Box::pin(stream))
                .try_for_each(|_| async { Ok(()) })
                .await
        });
        self.forget_prefetched(|k| k.starts_with(prefix));
        match deleted {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(io_error(&self.name(prefix), e)),
        }
    }
}

impl ListableStore for RemoteStore {
    fn list_prefix(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        validate_prefix(prefix)?;
        let listed = self.objects_below(prefix)?;
        let markers = self.folder_markers(&listed)?;
        let mut keys: Vec<String> = (listed.iter())
            .filter(|meta| !markers.contains(&meta.location))
            .filter_map(|meta| self.key_of(&meta.location))
            .filter(|key| key.starts_with(prefix) && !key.is_empty())
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn list_dir(&self, prefix: &str) -> Result<ListDir, StorageError> {
        validate_prefix(prefix)?;
        let (store, runtime) = self.client()?;
        let full = format!("{}{prefix}", self.prefix);
        let path =
            Path::parse(&full).map_err(|e| StorageError::invalid_key(prefix, &e.to_string()))?;
        let listed = runtime
            .block_on(store.list_with_delimiter(Some(&path)))
            .map_err(|e| list_error(self, prefix, e))?;
        let mut out = ListDir::default();
        for meta in &listed.objects {
            if let Some(key) = self.key_of(&meta.location) {
                if key.starts_with(prefix) && key.len() > prefix.len() {
                    out.keys.push(key);
                }
            }
        }
        for p in &listed.common_prefixes {
            if let Some(key) = self.key_of(p) {
                if key.starts_with(prefix) && key.len() > prefix.len() {
                    out.prefixes.push(format!("{key}/"));
                }
            }
        }
        out.keys.sort();
        out.prefixes.sort();
        Ok(out)
    }
}

impl Store for RemoteStore {
    fn describe(&self) -> String {
        self.url.clone()
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[test]
    fn gzip_coded_bodies_decode_member_by_member_and_others_are_refused() {
        use std::io::Write;
        let gzip = |bytes: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        };
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut body = gzip(&big);
        body.extend(gzip(b"tail"));
        let mut want = big.clone();
        want.extend_from_slice(b"tail");
        assert_eq!(gunzip(&body).unwrap(), want);
        let refused = gunzip(b"{\"zarr_format\": 3}").unwrap_err().to_string();
        assert!(refused.contains("no gzip stream"), "{refused}");
    }

    #[test]
    fn a_long_download_is_not_cut_short_a_silent_server_is() {
        let client = client_options();
        assert_eq!(client.get_config_value(&ClientConfigKey::Timeout), None);
        assert_eq!(
            client
                .get_config_value(&ClientConfigKey::ReadTimeout)
                .as_deref(),
            Some("30s")
        );
    }

    #[test]
    fn error_messages_are_one_line_and_keep_an_s3_errors_code() {
        let page = "Server returned non-2xx status code: 501 Not Implemented: <!DOCTYPE HTML>\n\
                    <html>\n    <head>\n</head></html>\n";
        assert_eq!(
            one_line(page),
            "Server returned non-2xx status code: 501 Not Implemented: <!DOCTYPE HTML> \
             <html> <head> </head></html>"
        );
        let s3 = "403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\
                  <Code>SignatureDoesNotMatch</Code><Message>The signature</Message></Error>";
        assert!(one_line(s3).contains("<Code>SignatureDoesNotMatch</Code>"));
        let long = "é".repeat(MESSAGE_CHARS + 10);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), MESSAGE_CHARS + " (...)".len());
        assert!(cut.ends_with("é (...)"));
    }

    fn store() -> RemoteStore {
        RemoteStore::from_object_store(
            "mem://bucket/data.zarr",
            "data.zarr",
            Arc::new(InMemory::new()),
        )
        .unwrap()
    }

    #[test]
    fn values_round_trip_under_the_prefix() {
        let s = store();
        assert_eq!(s.get("zarr.json").unwrap(), None);
        s.set("zarr.json", b"{}").unwrap();
        s.set("c/0/1", &[1, 2, 3]).unwrap();
        assert_eq!(s.get("zarr.json").unwrap().as_deref(), Some(&b"{}"[..]));
        assert_eq!(s.size("c/0/1").unwrap(), Some(3));
        assert!(s.exists("c/0/1").unwrap());
        assert_eq!(s.list_prefix("").unwrap(), ["c/0/1", "zarr.json"]);
        assert_eq!(s.list_prefix("c/").unwrap(), ["c/0/1"]);
        let dir = s.list_dir("").unwrap();
        assert_eq!(dir.keys, ["zarr.json"]);
        assert_eq!(dir.prefixes, ["c/"]);
        assert_eq!(s.list_dir("c/").unwrap().prefixes, ["c/0/"]);
        s.delete("c/0/1").unwrap();
        s.delete("c/0/1").unwrap();
        assert_eq!(s.get("c/0/1").unwrap(), None);
        s.set("c/0/2", b"x").unwrap();
        s.delete_prefix("c/").unwrap();
        assert_eq!(s.list_prefix("").unwrap(), ["zarr.json"]);
        assert!(matches!(
            s.set("../x", b""),
            Err(StorageError::InvalidKey { .. })
        ));
    }

    #[test]
    fn ranges_are_checked_and_coalesced() {
        let s = store();
        let value: Vec<u8> = (0..=255).collect();
        s.set("shard", &value).unwrap();
        let r = |offset, length| ByteRange::FromStart {
            offset,
            length: Some(length),
        };
        let got = s
            .get_ranges("shard", &[r(10, 5), r(0, 2), r(250, 6), r(7, 0)])
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            [
                value[10..15].to_vec(),
                vec![0, 1],
                value[250..].to_vec(),
                vec![]
            ]
        );
        let (tail, version) = s
            .get_range_and_version("shard", ByteRange::Suffix(4))
            .unwrap()
            .unwrap();
        assert_eq!(tail, value[252..]);
        assert_eq!(version.size, 256);
        assert!(version.tag.is_some());
        for bad in [r(250, 7), r(300, 1)] {
            let err = s.get_ranges("shard", &[bad]).unwrap_err();
            assert!(
                matches!(err, StorageError::OutOfRange { size: 256, .. }),
                "{err}"
            );
            assert!(
                err.to_string().contains("mem://bucket/data.zarr/shard"),
                "{err}"
            );
            let err = s.get_range_and_version("shard", bad).unwrap_err();
            assert!(
                matches!(err, StorageError::OutOfRange { size: 256, .. }),
                "{err}"
            );
        }
        assert!(s
            .get_range_and_version("shard", ByteRange::Suffix(300))
            .is_err());
        s.set("empty", b"").unwrap();
        let from_start = ByteRange::FromStart {
            offset: 0,
            length: None,
        };
        let (nothing, version) = s
            .get_range_and_version("empty", from_start)
            .unwrap()
            .unwrap();
        assert!(nothing.is_empty());
        assert_eq!(version.size, 0);
        assert_eq!(s.get_ranges("absent", &[r(0, 1)]).unwrap(), None);
        assert_eq!(s.get_range_and_version("absent", r(0, 1)).unwrap(), None);
    }

    #[test]
    fn parts_are_read_for_the_version_expected() {
        let s = store();
        s.set("shard", &[7; 100]).unwrap();
        let version = s.version("shard").unwrap().unwrap();
        let (mut a, mut b) = ([0u8; 3], [0u8; 5]);
        let mut parts: Vec<(u64, &mut [u8])> = vec![(90, &mut a), (2, &mut b)];
        assert_eq!(
            s.read_parts_into("shard", &mut parts, Some(version))
                .unwrap(),
            PartsRead::Done
        );
        assert_eq!((a, b), ([7; 3], [7; 5]));
        s.set("shard", &[8; 100]).unwrap();
        let mut parts: Vec<(u64, &mut [u8])> = vec![(0, &mut a)];
        assert_eq!(
            s.read_parts_into("shard", &mut parts, Some(version))
                .unwrap(),
            PartsRead::Replaced
        );
        s.set("shard", &[8; 10]).unwrap();
        assert_eq!(
            s.read_parts_into("shard", &mut parts, Some(version))
                .unwrap(),
            PartsRead::WrongSize(10)
        );
        assert_eq!(
            s.read_parts_into("none", &mut parts, None).unwrap(),
            PartsRead::Missing
        );
    }

    #[test]
    fn values_fetched_ahead_are_read_once_and_never_stale() {
        let s = store();
        s.set("c/0", b"old").unwrap();
        s.set("c/1", b"one").unwrap();
        assert_eq!(s.device_waits(), 0);
        s.prefetch("c/0");
        s.prefetch("c/1");
        s.prefetch("c/absent");
        // Written after the hint: the read sees the new value.
        s.set("c/0", b"new").unwrap();
        assert_eq!(s.get("c/0").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(s.device_waits(), 1);
        // Taken from the fetch ahead: no wait.
        assert_eq!(s.get("c/1").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(s.get("c/absent").unwrap(), None);
        assert_eq!(s.device_waits(), 1);
        s.prefetch("c/1");
        let mut part = [0u8; 2];
        let mut parts: Vec<(u64, &mut [u8])> = vec![(1, &mut part)];
        assert_eq!(
            s.read_parts_into("c/1", &mut parts, None).unwrap(),
            PartsRead::Done
        );
        assert_eq!(&part, b"ne");
        // Read in parts: kept for the other parts, until written.
        assert_eq!(s.prefetched.lock().shared_bytes, 3);
        let mut parts: Vec<(u64, &mut [u8])> = vec![(0, &mut part)];
        assert_eq!(
            s.read_parts_into("c/1", &mut parts, None).unwrap(),
            PartsRead::Done
        );
        assert_eq!(&part, b"on");
        assert_eq!(s.device_waits(), 1);
        s.set("c/1", b"ONE").unwrap();
        assert_eq!(s.prefetched.lock().shared_bytes, 0);
        let mut parts: Vec<(u64, &mut [u8])> = vec![(0, &mut part)];
        assert_eq!(
            s.read_parts_into("c/1", &mut parts, None).unwrap(),
            PartsRead::Done
        );
        assert_eq!(&part, b"ON");
        assert!(s.prefetched.lock().entries.is_empty());
        s.prefetch("c/1");
        s.delete_prefix("c/").unwrap();
        assert_eq!(s.get("c/1").unwrap(), None);
    }

    #[test]
    fn a_value_held_whole_stays_until_each_hold_is_let_go() {
        let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let s = RemoteStore::from_object_store("mem://b", "", memory.clone()).unwrap();
        let other = RemoteStore::from_object_store("mem://b", "", memory).unwrap();
        s.set("shard", b"abcdef").unwrap();
        assert_eq!(s.hold_whole("shard").unwrap(), Some(6));
        // A read of one shard within a read of many holding it holds it once more.
        assert_eq!(s.hold_whole("shard").unwrap(), Some(6));
        other.set("shard", b"ABCDEF").unwrap();
        let part = |s: &RemoteStore| {
            let got = s.get_range_and_version("shard", ByteRange::Suffix(2));
            got.unwrap().unwrap().0
        };
        assert_eq!(part(&s), b"ef");
        // Neither the end of another read's hints, nor a whole read, nor one let-go drops it.
        s.hints_done(&["shard".to_string()]);
        assert_eq!(s.get("shard").unwrap().unwrap(), b"abcdef");
        s.release_whole("shard");
        assert_eq!(part(&s), b"ef");
        s.release_whole("shard");
        assert_eq!(part(&s), b"EF");
        assert!(s.prefetched.lock().entries.is_empty());
    }

    #[test]
    fn what_a_read_fetched_ahead_is_dropped_when_it_is_over() {
        let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let s = RemoteStore::from_object_store("mem://b", "", memory.clone()).unwrap();
        let other = RemoteStore::from_object_store("mem://b", "", memory).unwrap();
        s.set("shard", b"abcdef").unwrap();
        s.prefetch("shard");
        s.prefetch("unread");
        let (first, _) = s
            .get_range_and_version("shard", ByteRange::Suffix(2))
            .unwrap()
            .unwrap();
        assert_eq!(first, b"ef");
        assert_eq!(s.device_waits(), 0);
        s.hints_done(&["shard".to_string(), "unread".to_string()]);
        assert!(s.prefetched.lock().entries.is_empty());
        assert_eq!(s.prefetched.lock().shared_bytes, 0);
        // Replaced by another writer: the next read asks the service.
        other.set("shard", b"ABCDEF").unwrap();
        let (again, _) = s
            .get_range_and_version("shard", ByteRange::Suffix(2))
            .unwrap()
            .unwrap();
        assert_eq!(again, b"EF");
        assert_eq!(s.device_waits(), 1);
    }

    #[test]
    fn only_drops_count_against_putting_a_value_back() {
        // A sweep for old entries that drops nothing (every hint makes one) must not keep a
        // value waited for out of the map; a write must, whatever the map holds then.
        let s = store();
        s.set("shard", b"abc").unwrap();
        s.prefetch("shard");
        let before = s.prefetched.lock().drops;
        s.prefetch("other");
        assert_eq!(s.prefetched.lock().drops, before);
        assert!(s.fetched_ahead("shard").is_some());
        assert_eq!(s.prefetched.lock().shared_bytes, 3);
        s.set("unrelated", b"x").unwrap();
        assert!(s.prefetched.lock().drops > before);
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn urls_and_options() -> TestResult {
        // Object names as written (as s3fs takes them); a web server's path decoded.
        let (service, base, path) = split_url("s3://bucket/a/b%20c ü.zarr/")?;
        assert_eq!(
            (service, base.as_str(), path.as_str()),
            (Service::S3, "s3://bucket", "a/b%20c ü.zarr")
        );
        let (service, base, path) = split_url("http://localhost:8080/x%20y")?;
        assert_eq!(
            (service, base.as_str(), path.as_str()),
            (Service::Http, "http://localhost:8080", "x y")
        );
        let (service, base, path) = split_url("gcs://bucket/x/y")?;
        assert_eq!(
            (service, base.as_str(), path.as_str()),
            (Service::Gcs, "gs://bucket", "x/y")
        );
        assert!(split_url("az://container/x").is_err());
        assert!(split_url("s3:///x").is_err());
        let options = |key: &str, value: &str| vec![(key.to_string(), value.to_string())];
        for (url, misspelt) in [
            ("s3://bucket/x", "aws_endpiont"),
            ("gs://bucket/x", "google_base_ulr"),
        ] {
            match RemoteStore::open(url, options(misspelt, "http://h")) {
                Err(err) => assert!(err.to_string().contains(misspelt), "{err}"),
                Ok(_) => return Err(format!("{url} took {misspelt}").into()),
            }
        }
        let s = RemoteStore::open(
            "s3://bucket/x/",
            vec![
                ("aws_endpoint".into(), "http://127.0.0.1:1".into()),
                ("aws_allow_http".into(), "true".into()),
            ],
        )?;
        assert_eq!(s.describe(), "s3://bucket/x");
        assert_eq!(s.read_only_reason(), None);
        let s = RemoteStore::open(
            "gs://bucket/x/",
            vec![
                ("google_base_url".into(), "http://127.0.0.1:1".into()),
                ("google_skip_signature".into(), "true".into()),
            ],
        )?;
        assert_eq!(s.describe(), "gs://bucket/x");
        assert!(s.read_only_reason().is_some());
        Ok(())
    }
}
