//! S3 credentials from a command: an AWS profile's `credential_process`, which botocore (and
//! so zarr-python, through s3fs) runs to get the profile's keys. Organisations use it to hand
//! out short-lived keys from a vault or a single sign-on helper. The Python package also
//! names botocore itself here as such a command (its script `_botocore_keys.py PROFILE`), for
//! profiles that only botocore follows: roles to assume, single sign-on.
//!
//! The command prints one JSON document (the AWS CLI's "sourcing credentials with an external
//! process"): `Version` 1, `AccessKeyId`, `SecretAccessKey`, and optionally `SessionToken` and
//! `Expiration` (RFC 3339). The keys are kept until [`REFRESH_BEFORE`] ahead of their
//! expiration, then the command is run again; keys without an expiration are kept for the
//! store's life, as botocore keeps them.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use object_store::aws::AwsCredential;
use object_store::CredentialProvider;
use serde_json::Value;

/// The store option that names the command (the engine's own, filled in from the AWS shared
/// files by the Python package): a JSON object with `source`, what messages call the command
/// ("the credential_process of the AWS profile 'work'"), and `argv`, the command split into
/// its words as botocore splits it (`shlex.split`; no shell runs it).
pub(super) const OPTION: &str = "oxzarr_credential_process";

/// Keys this close to their expiration are fetched anew (what `object_store`'s own providers
/// leave before an expiry): a request signed now must still be valid when it arrives.
const REFRESH_BEFORE: TimeDelta = TimeDelta::minutes(5);

/// Keys and when they expire (`None`: never).
type Keys = (Arc<AwsCredential>, Option<DateTime<Utc>>);

/// A credential provider that runs the command.
#[derive(Debug)]
pub(super) struct ProcessCredentials {
    source: String,
    program: String,
    args: Vec<String>,
    /// The last keys the command gave. The lock is held while the command runs, so that
    /// requests waiting for fresh keys run it once between them.
    keys: Mutex<Option<Keys>>,
}

/// An error of the command (`source`, as messages call it), as `object_store` reports a
/// provider's.
fn failure(source: &str, reason: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: format!("{source} {reason}").into(),
    }
}

impl ProcessCredentials {
    /// The provider the option's value describes; a message for a value that is not one.
    pub(super) fn from_option(value: &str) -> Result<Self, String> {
        let bad = || format!("{OPTION} must be a JSON object with a source and an argv");
        let doc: Value = serde_json::from_str(value).map_err(|_| bad())?;
        let source = doc.get("source").and_then(Value::as_str).ok_or_else(bad)?;
        let argv = doc
            .get("argv")
            .and_then(Value::as_array)
            .ok_or_else(bad)?
            .iter()
            .map(|word| word.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        let (program, args) = argv.split_first().ok_or_else(bad)?;
        Ok(Self {
            source: source.to_string(),
            program: program.clone(),
            args: args.to_vec(),
            keys: Mutex::new(None),
        })
    }

    /// The keys to sign with now: the last ones, or the command's anew.
    fn current(&self) -> object_store::Result<Arc<AwsCredential>> {
        // A poisoned lock only means a thread panicked while holding it: the keys it guards
        // are whole either way.
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((credential, expires)) = keys.as_ref() {
            if expires.is_none_or(|at| at - Utc::now() > REFRESH_BEFORE) {
                return Ok(credential.clone());
            }
        }
        let (credential, expires) = self.run()?;
        *keys = Some((credential.clone(), expires));
        Ok(credential)
    }

    /// Runs the command and reads its keys. Its standard error goes to the user, as
    /// botocore leaves it (a helper may print a login prompt there), and into the message
    /// when it fails.
    fn run(&self) -> object_store::Result<Keys> {
        let fail = |reason: String| failure(&self.source, reason);
        let output = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::inherit())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| fail(format!("({:?}) could not be run: {e}", self.program)))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(fail(format!(
                "failed ({}): {}",
                output.status,
                stderr.trim()
            )));
        }
        parse(&output.stdout).map_err(fail)
    }
}

/// The keys in a command's output.
fn parse(stdout: &[u8]) -> Result<Keys, String> {
    let doc: Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("printed something other than a JSON document ({e})"))?;
    let text = |name: &str| doc.get(name).and_then(Value::as_str).map(str::to_string);
    match doc.get("Version").and_then(Value::as_u64) {
        Some(1) => {}
        _ => return Err("printed a document without \"Version\": 1".into()),
    }
    let (Some(key_id), Some(secret_key)) = (text("AccessKeyId"), text("SecretAccessKey")) else {
        return Err("printed no AccessKeyId and SecretAccessKey".into());
    };
    let expires = match text("Expiration") {
        None => None,
        Some(at) => Some(
            DateTime::parse_from_rfc3339(&at)
                .map_err(|e| format!("printed an Expiration that is not a date ({at:?}: {e})"))?
                .with_timezone(&Utc),
        ),
    };
    let credential = AwsCredential {
        key_id,
        secret_key,
        token: text("SessionToken"),
    };
    Ok((Arc::new(credential), expires))
}

#[async_trait::async_trait]
impl CredentialProvider for ProcessCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        // Run on the thread that asks: the command runs once an hour or so, and a request
        // cannot be signed before it is done anyway.
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn reads_what_the_command_prints() -> TestResult {
        let (credential, expires) = parse(
            br#"{"Version": 1, "AccessKeyId": "AK", "SecretAccessKey": "s",
                 "SessionToken": "t", "Expiration": "2030-01-02T03:04:05+01:00"}"#,
        )?;
        assert_eq!(
            (
                credential.key_id.as_str(),
                credential.secret_key.as_str(),
                credential.token.as_deref()
            ),
            ("AK", "s", Some("t"))
        );
        assert_eq!(
            expires.map(|at| at.to_rfc3339()),
            Some("2030-01-02T02:04:05+00:00".to_string())
        );
        let (credential, expires) =
            parse(br#"{"Version": 1, "AccessKeyId": "AK", "SecretAccessKey": "s"}"#)?;
        assert_eq!((credential.token.clone(), expires), (None, None));
        Ok(())
    }

    #[test]
    fn refuses_other_output() {
        for (stdout, says) in [
            (&b"not json"[..], "other than a JSON document"),
            (br#"{"AccessKeyId": "AK", "SecretAccessKey": "s"}"#, "Version"),
            (br#"{"Version": 2, "AccessKeyId": "AK", "SecretAccessKey": "s"}"#, "Version"),
            (br#"{"Version": 1, "AccessKeyId": "AK"}"#, "SecretAccessKey"),
            (
                br#"{"Version": 1, "AccessKeyId": "AK", "SecretAccessKey": "s", "Expiration": "soon"}"#,
                "\"soon\"",
            ),
        ] {
            let refused = parse(stdout).err().unwrap_or_default();
            assert!(refused.contains(says), "{refused:?} for {stdout:?}");
        }
    }

    #[test]
    fn the_option_names_a_profile_and_a_command() -> TestResult {
        let provider =
            ProcessCredentials::from_option(r#"{"source": "p", "argv": ["echo", "x"]}"#)?;
        assert_eq!(
            (
                provider.source.as_str(),
                provider.program.as_str(),
                provider.args.len()
            ),
            ("p", "echo", 1)
        );
        for bad in [
            "echo x",
            r#"{"argv": ["echo"]}"#,
            r#"{"source": "p", "argv": []}"#,
            r#"{"source": "p", "argv": [1]}"#,
        ] {
            assert!(ProcessCredentials::from_option(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    /// The key ids of `n` requests' keys.
    fn key_ids(provider: &ProcessCredentials, n: usize) -> object_store::Result<Vec<String>> {
        (0..n)
            .map(|_| provider.current().map(|keys| keys.key_id.clone()))
            .collect()
    }

    #[test]
    fn keys_are_kept_until_near_their_expiration() -> TestResult {
        let dir = tempfile::tempdir()?;
        let runs = dir.path().join("runs");
        let script = dir.path().join("keys.sh");
        // Each run appends a line and prints keys numbered by the lines so far, expiring in
        // $1 minutes.
        std::fs::write(
            &script,
            format!(
                "echo run >> {runs}\nn=$(wc -l < {runs})\n\
                 printf '{{\"Version\": 1, \"AccessKeyId\": \"AK%s\", \"SecretAccessKey\": \"s\", \
                 \"Expiration\": \"%s\"}}' $n $(date -u -d \"+$1 minutes\" +%Y-%m-%dT%H:%M:%SZ)\n",
                runs = runs.display()
            ),
        )?;
        let provider = |minutes: u32| {
            ProcessCredentials::from_option(
                &serde_json::json!({
                    "source": "p",
                    "argv": ["sh", script, minutes.to_string()],
                })
                .to_string(),
            )
        };
        let lasting = provider(60)?;
        assert_eq!(key_ids(&lasting, 3)?, ["AK1", "AK1", "AK1"]);
        // Keys that expire within the refresh margin are fetched anew for every request.
        let expiring = provider(1)?;
        assert_eq!(key_ids(&expiring, 2)?, ["AK2", "AK3"]);
        Ok(())
    }

    #[test]
    fn a_failing_command_is_reported_with_its_message() -> TestResult {
        let provider = ProcessCredentials::from_option(
            r#"{"source": "the helper of work", "argv": ["sh", "-c", "echo no login >&2; exit 3"]}"#,
        )?;
        let Err(err) = provider.current() else {
            return Err("a failing command gave keys".into());
        };
        let err = err.to_string();
        assert!(
            err.contains("the helper of work failed")
                && err.contains("no login")
                && err.contains('3'),
            "{err}"
        );
        let missing =
            ProcessCredentials::from_option(r#"{"source": "p", "argv": ["/no/such/helper"]}"#)?;
        let Err(err) = missing.current() else {
            return Err("a missing command gave keys".into());
        };
        let err = err.to_string();
        assert!(
            err.contains("/no/such/helper") && err.contains("could not be run"),
            "{err}"
        );
        Ok(())
    }
}
