//! ACL 1.0 on the remoting port: with `aclEnable`, every request is checked against the
//! accounts of `plain_acl.yml` before it is served, as Java's `PlainAccessValidator` checks
//! it (an RPC hook on both broker ports there, a [`RequestGuard`] on both routers here).
//!
//! In order, as Java does: an address in `globalWhiteRemoteAddresses` passes; a request
//! without `AccessKey` is refused; an unknown access key is refused; an address matching the
//! account's `whiteRemoteAddress` passes; a signature that does not verify against the
//! account's secret is refused; a send to `RMQ_SYS_TRACE_TOPIC` passes; otherwise every
//! topic and group the request touches ([`resource::needed`]) must be allowed to the
//! account, and admin codes need `admin: true`. Refusals are NO_PERMISSION (16) with Java's
//! message as the remark.
//!
//! The order of checks is [`AclValidator::judge`], over any front's [`Presented`] request:
//! the remoting front presents a `RemotingCommand` (extFields signature, [`resource::needed`]),
//! the gRPC front its `authorization` header and each RPC's resources.
//!
//! The file is polled every `aclFileWatchIntervalMs` (Java polls every 5 s too); a changed
//! file that parses replaces the policy at once, one that does not is logged and the previous
//! policy stays.
//!
//! - [`address`]: remote-address patterns;
//! - [`policy`]: the file and the permission check;
//! - [`resource`]: what each request code needs.

pub mod address;
pub mod policy;
pub mod resource;

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apogee_common::topic::TRACE_TOPIC;
use apogee_remoting::acl;
use apogee_remoting::code::response_code;
use apogee_remoting::connection::Connection;
use apogee_remoting::router::RequestGuard;
use apogee_remoting::RemotingCommand;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

pub use policy::{AclPolicy, PolicyError};

/// Java's default ACL file, relative to the RocketMQ home (system property
/// `rocketmq.acl.plain.file`).
pub const DEFAULT_PLAIN_FILE: &str = "conf/plain_acl.yml";

/// Shortest poll period of the file, so a zero setting cannot spin.
const MIN_WATCH_INTERVAL_MS: u64 = 100;

/// Checks requests against the policy read from one `plain_acl.yml`, which it swaps when the
/// file changes.
#[derive(Debug)]
pub struct AclValidator {
    path: PathBuf,
    policy: RwLock<Arc<AclPolicy>>,
    /// Hash of the file content the policy was last read from (or last refused), so an
    /// unchanged file is not parsed again.
    seen: Mutex<u64>,
}

impl AclValidator {
    /// Reads `path`. A missing file is an empty policy (every request refused), as Java's
    /// empty file is; a file that does not parse fails the start, so a typo never opens the
    /// broker.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text =
            read(path).map_err(|error| PolicyError::Invalid(format!("{}: {error}", path.display())))?;
        let policy = AclPolicy::parse(&text)
            .map_err(|error| PolicyError::Invalid(format!("{}: {error}", path.display())))?;
        tracing::info!(
            file = %path.display(),
            accounts = policy.accounts.len(),
            global_white = policy.global_white.len(),
            "ACL enabled"
        );
        Ok(Self {
            path: path.to_owned(),
            policy: RwLock::new(Arc::new(policy)),
            seen: Mutex::new(digest(&text)),
        })
    }

    /// The file the policy comes from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<AclPolicy> {
        Arc::clone(&self.policy.read())
    }

    /// Reads the file again; when its content changed and parses, the new policy replaces
    /// the old one at once. True when the policy was replaced.
    pub fn reload(&self) -> Result<bool, PolicyError> {
        let text = read(&self.path).map_err(|error| PolicyError::Invalid(error.to_string()))?;
        let hash = digest(&text);
        {
            let mut seen = self.seen.lock();
            if *seen == hash {
                return Ok(false);
            }
            // A refused content is not tried again until it changes.
            *seen = hash;
        }
        let policy = AclPolicy::parse(&text)?;
        tracing::info!(file = %self.path.display(), accounts = policy.accounts.len(), "ACL file reloaded");
        *self.policy.write() = Arc::new(policy);
        Ok(true)
    }

    /// Whether `request` from `remote` may be served; `Err` carries the refusal's remark.
    pub fn validate(&self, remote: IpAddr, request: &RemotingCommand) -> Result<(), String> {
        self.judge(remote, &RemotingRequest(request)).map_err(Refusal::into_remark)
    }

    /// Whether a request from `remote`, presented by any front (remoting or gRPC), may be
    /// served under the policy in force. The one place the order of Java's checks lives.
    pub fn judge(&self, remote: IpAddr, request: &impl Presented) -> Result<(), Refusal> {
        let policy = self.policy();
        if policy.global_white.iter().any(|pattern| pattern.matches(remote)) {
            return Ok(());
        }
        let Some(access_key) = request.access_key() else {
            return Err(Refusal::Unauthenticated("No accessKey is configured".to_owned()));
        };
        let Some(account) = policy.accounts.get(access_key) else {
            return Err(Refusal::Unauthenticated(format!("No acl config for {access_key}")));
        };
        if account.white_address.matches(remote) {
            return Ok(());
        }
        if !request.signature_verifies(&account.secret_key) {
            return Err(Refusal::Unauthenticated(format!(
                "Check signature failed for accessKey={access_key}"
            )));
        }
        let needed = request.needed().map_err(Refusal::Forbidden)?;
        // Message traces are written by every client that traces: always allowed.
        if needed
            .iter()
            .any(|(resource, permission)| resource == TRACE_TOPIC && *permission == policy::perm::PUB)
        {
            return Ok(());
        }
        account.check(request.request_code(), &needed).map_err(Refusal::Forbidden)
    }
}

/// Why the policy refused a request. Remoting answers both kinds NO_PERMISSION; the gRPC
/// front tells them apart (UNAUTHORIZED and FORBIDDEN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Who asks is not established: no access key, an unknown one, or a signature that does
    /// not verify with the account's secret.
    Unauthenticated(String),
    /// A verified account that may not do what the request asks (or whose request cannot be
    /// read to tell what it asks).
    Forbidden(String),
}

impl Refusal {
    /// The text a person reads: Java's message for the same refusal.
    pub fn remark(&self) -> &str {
        match self {
            Refusal::Unauthenticated(remark) | Refusal::Forbidden(remark) => remark,
        }
    }

    /// The remark, owned.
    pub fn into_remark(self) -> String {
        match self {
            Refusal::Unauthenticated(remark) | Refusal::Forbidden(remark) => remark,
        }
    }
}

/// One request as the policy judges it, whatever wire it came on: each front says who the
/// request names, whether its signature holds, and what it touches.
pub trait Presented {
    /// The access key the request names; `None` for an anonymous request.
    fn access_key(&self) -> Option<&str>;
    /// Whether the request's signature verifies with `secret_key` (compared in constant time).
    fn signature_verifies(&self, secret_key: &str) -> bool;
    /// The topics and groups (as retry topics) the request touches, with the permission each
    /// needs; `Err` (the remark) when the request's own data cannot be read.
    fn needed(&self) -> Result<Vec<(String, u8)>, String>;
    /// The remoting request code the request counts as, for the admin-only codes.
    fn request_code(&self) -> i32;
}

/// A remoting request before its handler: extFields signature and [`resource::needed`].
struct RemotingRequest<'a>(&'a RemotingCommand);

impl Presented for RemotingRequest<'_> {
    fn access_key(&self) -> Option<&str> {
        acl::access_key(self.0)
    }

    fn signature_verifies(&self, secret_key: &str) -> bool {
        acl::verify(self.0, secret_key).is_ok()
    }

    fn needed(&self) -> Result<Vec<(String, u8)>, String> {
        resource::needed(self.0)
    }

    fn request_code(&self) -> i32 {
        self.0.code
    }
}

impl RequestGuard for AclValidator {
    fn refuse(&self, connection: &Connection, request: &RemotingCommand) -> Option<RemotingCommand> {
        let remote = connection.remote_addr().ip();
        let remark = self.validate(remote, request).err()?;
        tracing::debug!(%remote, code = request.code, %remark, "request refused by ACL");
        Some(RemotingCommand::response(response_code::NO_PERMISSION, Some(remark)))
    }
}

/// Polls the file every `interval` until the broker stops, reloading it when it changed.
pub async fn watch_file(
    validator: Arc<AclValidator>,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let interval = interval.max(Duration::from_millis(MIN_WATCH_INTERVAL_MS));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.changed() => return,
        }
        let reloading = Arc::clone(&validator);
        match tokio::task::spawn_blocking(move || reloading.reload()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(
                file = %validator.path().display(),
                %error,
                "ACL file not reloaded; the previous policy stays"
            ),
            Err(error) => tracing::error!(%error, "ACL reload task failed"),
        }
    }
}

/// The file's text; a missing file reads as empty.
fn read(path: &Path) -> std::io::Result<String> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.len() > policy::MAX_FILE_BYTES as u64 => {
            return Err(std::io::Error::other(format!("larger than {} bytes", policy::MAX_FILE_BYTES)))
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(file = %path.display(), "ACL file missing: only whitelisted addresses are served");
            return Ok(String::new());
        }
        Err(error) => return Err(error),
    }
    std::fs::read_to_string(path)
}

/// A hash of the file's text, to tell a change.
fn digest(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apogee_remoting::code::request_code;

    const FILE: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: producer-key
    secretKey: producer-secret
    defaultTopicPerm: DENY
    topicPerms: [orders=PUB, audit=SUB]
  - accessKey: trusted-key
    secretKey: trusted-secret
    whiteRemoteAddress: 192.168.1.*
";

    fn validator(text: &str) -> (tempfile::TempDir, AclValidator) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain_acl.yml");
        std::fs::write(&path, text).unwrap();
        let validator = AclValidator::load(&path).unwrap();
        (dir, validator)
    }

    fn send(topic: &str) -> RemotingCommand {
        RemotingCommand::request(request_code::SEND_MESSAGE_V2)
            .with_ext("a", "P")
            .with_ext("b", topic)
            .with_body(&b"x"[..])
    }

    fn signed(mut request: RemotingCommand, access_key: &str, secret_key: &str) -> RemotingCommand {
        acl::sign(&mut request, &acl::SessionCredentials::new(access_key, secret_key));
        request
    }

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

    #[test]
    fn java_order_of_checks() {
        let (_dir, acl) = validator(FILE);
        // Global whitelist: anything goes.
        assert_eq!(acl.validate("10.10.103.9".parse().unwrap(), &send("orders")), Ok(()));
        assert_eq!(acl.validate(CLIENT, &send("orders")), Err("No accessKey is configured".into()));
        let stranger = signed(send("orders"), "stranger-key", "whatever");
        assert_eq!(acl.validate(CLIENT, &stranger), Err("No acl config for stranger-key".into()));
        let right = signed(send("orders"), "producer-key", "producer-secret");
        assert_eq!(acl.validate(CLIENT, &right), Ok(()));
        let wrong = signed(send("orders"), "producer-key", "not-the-secret");
        assert_eq!(
            acl.validate(CLIENT, &wrong),
            Err("Check signature failed for accessKey=producer-key".into())
        );
        let denied = signed(send("audit"), "producer-key", "producer-secret");
        assert_eq!(acl.validate(CLIENT, &denied), Err("No permission for topic:audit".into()));
        let default_denied = signed(send("other"), "producer-key", "producer-secret");
        assert_eq!(
            acl.validate(CLIENT, &default_denied),
            Err("No default permission for topic:other".into())
        );
        // Traces are always allowed to a signed account.
        let trace = signed(send(TRACE_TOPIC), "producer-key", "producer-secret");
        assert_eq!(acl.validate(CLIENT, &trace), Ok(()));
        // The account's own whitelist skips signature and permissions (as in Java).
        let unsigned = send("other").with_ext(acl::ACCESS_KEY, "trusted-key");
        assert_eq!(acl.validate("192.168.1.5".parse().unwrap(), &unsigned), Ok(()));
        assert!(acl.validate(CLIENT, &unsigned).is_err());
    }

    #[test]
    fn reload_swaps_only_a_good_changed_file() {
        let (dir, acl) = validator(FILE);
        let path = dir.path().join("plain_acl.yml");
        assert_eq!(acl.reload(), Ok(false));
        let newcomer = signed(send("orders"), "newcomer-key", "newcomer-secret");
        assert!(acl.validate(CLIENT, &newcomer).is_err());
        let added = format!(
            "{FILE}  - accessKey: newcomer-key\n    secretKey: newcomer-secret\n    defaultTopicPerm: PUB\n"
        );
        std::fs::write(&path, &added).unwrap();
        assert_eq!(acl.reload(), Ok(true));
        assert_eq!(acl.validate(CLIENT, &newcomer), Ok(()));
        // A broken file keeps the policy.
        std::fs::write(&path, "accounts: [\n").unwrap();
        assert!(acl.reload().is_err());
        assert_eq!(acl.reload(), Ok(false), "the same broken content is not parsed twice");
        assert_eq!(acl.validate(CLIENT, &newcomer), Ok(()));
        // A removed file is an empty policy.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(acl.reload(), Ok(true));
        assert!(acl.validate(CLIENT, &newcomer).is_err());
    }

    #[test]
    fn a_broken_file_fails_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain_acl.yml");
        std::fs::write(&path, "accounts:\n  - accessKey: short\n").unwrap();
        assert!(AclValidator::load(&path).is_err());
        assert!(AclValidator::load(&dir.path().join("missing.yml")).unwrap().policy().accounts.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_request_is_judged_without_panic(
            code in proptest::prop_oneof![0i32..400, 200_000i32..200_200],
            fields in proptest::collection::vec(("[a-zA-Z]{1,12}", ".{0,16}"), 0..6),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            sign in proptest::prelude::any::<bool>(),
            octets in proptest::prelude::any::<[u8; 4]>(),
        ) {
            let (_dir, acl) = validator(FILE);
            let mut request = RemotingCommand::request(code).with_body(body);
            for (key, value) in &fields {
                request.ext_fields_mut().insert(key.as_str(), value.as_str());
            }
            if sign {
                acl::sign(&mut request, &acl::SessionCredentials::new("producer-key", "producer-secret"));
            }
            let remote = IpAddr::V4(std::net::Ipv4Addr::from(octets));
            let verdict = acl.validate(remote, &request);
            // Unsigned requests pass only from the global whitelist.
            if !sign && !fields.iter().any(|(key, _)| key == acl::ACCESS_KEY) {
                proptest::prop_assert_eq!(verdict.is_ok(), octets[..3] == [10, 10, 103]);
            }
        }
    }

    #[test]
    fn malformed_requests_are_refused_without_panic() {
        let (_dir, acl) = validator(FILE);
        let heartbeat = signed(
            RemotingCommand::request(request_code::HEART_BEAT).with_body(&b"\xff\xfe"[..]),
            "producer-key",
            "producer-secret",
        );
        assert!(acl.validate(CLIENT, &heartbeat).unwrap_err().contains("HeartbeatData"));
        let bare = RemotingCommand::request(request_code::PULL_MESSAGE);
        assert!(acl.validate(CLIENT, &bare).is_err());
        let empty_key = send("orders").with_ext(acl::ACCESS_KEY, "");
        assert_eq!(acl.validate(CLIENT, &empty_key), Err("No accessKey is configured".into()));
    }
}
