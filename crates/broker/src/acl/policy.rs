//! The contents of `plain_acl.yml` as Java's `PlainPermissionManager` reads them, and the
//! permission check of `PlainPermissionChecker`.
//!
//! ```yaml
//! globalWhiteRemoteAddresses: [10.10.103.*]
//! accounts:
//!   - accessKey: RocketMQ          # longer than 6 characters
//!     secretKey: 12345678          # longer than 6 characters
//!     whiteRemoteAddress:          # blank: no address skips the signature check
//!     admin: false
//!     defaultTopicPerm: DENY       # PUB, SUB, PUB|SUB, SUB|PUB or DENY (the default)
//!     defaultGroupPerm: SUB
//!     topicPerms: [topicA=DENY, topicB=PUB|SUB, topicC=SUB]
//!     groupPerms: [groupA=DENY, groupB=PUB|SUB, groupC=SUB]
//! ```
//!
//! Groups are kept under their retry topic name (`%RETRY%group`), as in Java, so one table
//! holds topics and groups.

use std::collections::HashMap;
use std::fmt;

use apogee_common::topic::{is_retry_topic, retry_topic};
use yaml_rust2::{Yaml, YamlLoader};

use super::address::AddressPattern;

/// Largest `plain_acl.yml` read; a bigger file is refused rather than parsed.
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// Java's `AclConstants.ACCESS_KEY_MIN_LENGTH` and `SECRET_KEY_MIN_LENGTH`: keys must be
/// longer than this.
const KEY_MIN_LENGTH: usize = 6;

/// Permission bits (Java `Permission`).
pub mod perm {
    /// Nothing is allowed; wins over every other bit.
    pub const DENY: u8 = 1;
    /// Needed: PUB or SUB suffices.
    pub const ANY: u8 = 1 << 1;
    /// Sending.
    pub const PUB: u8 = 1 << 2;
    /// Consuming.
    pub const SUB: u8 = 1 << 3;

    /// Java `Permission.parsePermFromString`: unknown text (and none) is DENY.
    pub fn parse(text: Option<&str>) -> u8 {
        match text.map(str::trim) {
            Some("PUB") => PUB,
            Some("SUB") => SUB,
            Some("PUB|SUB" | "SUB|PUB") => PUB | SUB,
            _ => DENY,
        }
    }

    /// Java `Permission.checkPermission`: whether `owned` grants `needed`.
    pub fn allows(needed: u8, owned: u8) -> bool {
        if owned & DENY != 0 {
            return false;
        }
        if needed & ANY != 0 {
            return owned & (PUB | SUB) != 0;
        }
        needed & owned != 0
    }
}

/// One account of the file.
#[derive(Clone)]
pub struct Account {
    /// `accessKey`.
    pub access_key: String,
    /// `secretKey`; never logged (see the `Debug` impl).
    pub secret_key: String,
    /// `whiteRemoteAddress`: requests from a matching address skip the signature and
    /// permission checks.
    pub white_address: AddressPattern,
    /// `admin`: every request allowed, admin codes included.
    pub admin: bool,
    /// `defaultTopicPerm`: for topics not in `topicPerms`.
    pub default_topic_perm: u8,
    /// `defaultGroupPerm`: for groups not in `groupPerms`.
    pub default_group_perm: u8,
    /// `topicPerms` by topic and `groupPerms` by `%RETRY%group`.
    pub resource_perms: HashMap<String, u8>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("white_address", &self.white_address)
            .field("admin", &self.admin)
            .field("default_topic_perm", &self.default_topic_perm)
            .field("default_group_perm", &self.default_group_perm)
            .field("resource_perms", &self.resource_perms)
            .finish()
    }
}

impl Account {
    /// Java `PlainPermissionChecker.check`: `Err` names the first resource not allowed.
    pub fn check(&self, request_code: i32, needed: &[(String, u8)]) -> Result<(), String> {
        if self.admin {
            return Ok(());
        }
        if super::resource::needs_admin(request_code) {
            return Err(format!(
                "Need admin permission for request code={request_code}, but accessKey={} is not",
                self.access_key
            ));
        }
        for (resource, needed) in needed {
            let is_group = is_retry_topic(resource);
            match self.resource_perms.get(resource) {
                Some(&owned) if !perm::allows(*needed, owned) => {
                    return Err(format!("No permission for {}", describe(resource, is_group)));
                }
                Some(_) => {}
                None => {
                    let owned = if is_group { self.default_group_perm } else { self.default_topic_perm };
                    if !perm::allows(*needed, owned) {
                        return Err(format!("No default permission for {}", describe(resource, is_group)));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `topic:T` or `group:G`, as Java's `PlainAccessResource.printStr` names a resource.
fn describe(resource: &str, is_group: bool) -> String {
    if is_group {
        let group = resource.strip_prefix(apogee_common::topic::RETRY_GROUP_TOPIC_PREFIX).unwrap_or(resource);
        format!("group:{group}")
    } else {
        format!("topic:{resource}")
    }
}

/// A whole `plain_acl.yml`.
#[derive(Debug, Clone, Default)]
pub struct AclPolicy {
    /// `globalWhiteRemoteAddresses`: requests from these skip every check.
    pub global_white: Vec<AddressPattern>,
    /// Accounts by access key.
    pub accounts: HashMap<String, Account>,
}

/// Why a file was refused (the previous policy stays).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not YAML.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// YAML, but not the shape of a `plain_acl.yml`.
    #[error("{0}")]
    Invalid(String),
}

impl AclPolicy {
    /// Reads the text of a `plain_acl.yml`. An empty file is an empty policy (everything
    /// refused that is not whitelisted), as Java has it.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(PolicyError::Invalid(format!("file larger than {MAX_FILE_BYTES} bytes")));
        }
        let documents =
            YamlLoader::load_from_str(text).map_err(|error| PolicyError::Yaml(error.to_string()))?;
        let Some(root) = documents.into_iter().next() else { return Ok(Self::default()) };
        let invalid = |what: String| PolicyError::Invalid(what);
        match root {
            Yaml::Hash(_) => {}
            Yaml::Null => return Ok(Self::default()),
            _ => return Err(invalid("the top level must be a mapping".into())),
        }
        let mut policy = Self::default();
        for item in list(&root["globalWhiteRemoteAddresses"], "globalWhiteRemoteAddresses")? {
            let text =
                scalar(item).ok_or_else(|| invalid("globalWhiteRemoteAddresses: not a string".into()))?;
            policy
                .global_white
                .push(AddressPattern::parse(&text).map_err(|error| invalid(error.to_string()))?);
        }
        for entry in list(&root["accounts"], "accounts")? {
            let account = parse_account(entry)?;
            if policy.accounts.contains_key(&account.access_key) {
                tracing::warn!(access_key = %account.access_key, "ACL access key listed twice; the first is kept");
                continue;
            }
            policy.accounts.insert(account.access_key.clone(), account);
        }
        Ok(policy)
    }
}

/// One account entry.
fn parse_account(entry: &Yaml) -> Result<Account, PolicyError> {
    let invalid = |what: String| PolicyError::Invalid(what);
    if !matches!(entry, Yaml::Hash(_)) {
        return Err(invalid("accounts: every entry must be a mapping".into()));
    }
    let access_key = scalar(&entry["accessKey"]).unwrap_or_default();
    let secret_key = scalar(&entry["secretKey"]).unwrap_or_default();
    if access_key.chars().count() <= KEY_MIN_LENGTH || secret_key.chars().count() <= KEY_MIN_LENGTH {
        // The secret is not named: this reaches the log.
        return Err(invalid(format!(
            "account {access_key:?}: accessKey and secretKey must be given and longer than {KEY_MIN_LENGTH} characters"
        )));
    }
    let white = scalar(&entry["whiteRemoteAddress"]).unwrap_or_default();
    let white_address = AddressPattern::parse(&white)
        .map_err(|error| invalid(format!("account {access_key:?}: whiteRemoteAddress: {error}")))?;
    let admin = match &entry["admin"] {
        Yaml::Boolean(flag) => *flag,
        Yaml::String(text) => text.trim().eq_ignore_ascii_case("true"),
        _ => false,
    };
    let mut resource_perms = HashMap::new();
    for (key, is_topic) in [("topicPerms", true), ("groupPerms", false)] {
        for item in list(&entry[key], key)? {
            let text = scalar(item).unwrap_or_default();
            // Java splits on '=' dropping empty pieces and wants exactly two.
            let pieces: Vec<&str> = text.split('=').filter(|piece| !piece.is_empty()).collect();
            let [name, permission] = pieces[..] else {
                return Err(invalid(format!(
                    "account {access_key:?}: {key}: {text:?} is not name=PERMISSION"
                )));
            };
            let name = name.trim();
            let resource = if is_topic { name.to_owned() } else { retry_topic(name) };
            resource_perms.insert(resource, perm::parse(Some(permission)));
        }
    }
    Ok(Account {
        default_topic_perm: perm::parse(scalar(&entry["defaultTopicPerm"]).as_deref()),
        default_group_perm: perm::parse(scalar(&entry["defaultGroupPerm"]).as_deref()),
        access_key,
        secret_key,
        white_address,
        admin,
        resource_perms,
    })
}

/// A scalar as text (`12345678` is a YAML integer, but a Java String field takes it).
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) | Yaml::Real(text) => Some(text.clone()),
        Yaml::Integer(number) => Some(number.to_string()),
        Yaml::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A sequence, or nothing when the key is absent or empty.
fn list<'a>(value: &'a Yaml, key: &str) -> Result<&'a [Yaml], PolicyError> {
    match value {
        Yaml::Array(items) => Ok(items),
        Yaml::Null | Yaml::BadValue => Ok(&[]),
        _ => Err(PolicyError::Invalid(format!("{key} must be a list"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The example shipped with Apache RocketMQ (`distribution/conf/plain_acl.yml`).
    pub(crate) const JAVA_EXAMPLE: &str = "\
globalWhiteRemoteAddresses:
  - 10.10.103.*
  - 192.168.0.*

accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      # the group should convert to retry topic
      - groupA=DENY
      - groupB=PUB|SUB
      - groupC=SUB

  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    # if it is admin, it could access all resources
    admin: true
";

    #[test]
    fn reads_the_java_example() {
        let policy = AclPolicy::parse(JAVA_EXAMPLE).unwrap();
        assert_eq!(policy.global_white.len(), 2);
        assert!(policy.global_white[0].matches("10.10.103.7".parse().unwrap()));
        let first = &policy.accounts["RocketMQ"];
        assert_eq!(first.secret_key, "12345678");
        assert_eq!(first.white_address, AddressPattern::Nothing);
        assert!(!first.admin);
        assert_eq!(first.default_topic_perm, perm::DENY);
        assert_eq!(first.default_group_perm, perm::SUB);
        assert_eq!(first.resource_perms["topicA"], perm::DENY);
        assert_eq!(first.resource_perms["topicB"], perm::PUB | perm::SUB);
        assert_eq!(first.resource_perms["%RETRY%groupC"], perm::SUB);
        let second = &policy.accounts["rocketmq2"];
        assert!(second.admin);
        assert!(second.white_address.matches("192.168.1.20".parse().unwrap()));
        // No default given: DENY.
        assert_eq!(second.default_topic_perm, perm::DENY);
        assert!(!format!("{policy:?}").contains("12345678"), "secrets stay out of Debug");
    }

    #[test]
    fn permission_bits() {
        use perm::*;
        assert!(allows(PUB, PUB));
        assert!(!allows(SUB, PUB));
        assert!(allows(SUB, PUB | SUB));
        assert!(!allows(PUB, DENY | PUB));
        assert!(allows(ANY, SUB));
        assert!(!allows(ANY, DENY));
        assert_eq!(parse(Some(" SUB|PUB ")), PUB | SUB);
        assert_eq!(parse(Some("ALL")), DENY);
        assert_eq!(parse(None), DENY);
    }

    #[test]
    fn account_checks_resources_defaults_and_admin() {
        let policy = AclPolicy::parse(JAVA_EXAMPLE).unwrap();
        let user = &policy.accounts["RocketMQ"];
        let send = |topic: &str| vec![(topic.to_owned(), perm::PUB)];
        assert_eq!(user.check(10, &send("topicB")), Ok(()));
        assert_eq!(user.check(10, &send("topicA")), Err("No permission for topic:topicA".into()));
        assert_eq!(user.check(10, &send("topicC")), Err("No permission for topic:topicC".into()));
        assert_eq!(user.check(10, &send("other")), Err("No default permission for topic:other".into()));
        let pull = |group: &str| vec![("topicC".to_owned(), perm::SUB), (retry_topic(group), perm::SUB)];
        assert_eq!(user.check(11, &pull("groupC")), Ok(()));
        assert_eq!(user.check(11, &pull("anyGroup")), Ok(()), "defaultGroupPerm SUB");
        assert_eq!(user.check(11, &pull("groupA")), Err("No permission for group:groupA".into()));
        // UPDATE_AND_CREATE_TOPIC (17) needs admin.
        assert!(user.check(17, &[]).unwrap_err().contains("Need admin permission for request code=17"));
        let admin = &policy.accounts["rocketmq2"];
        assert_eq!(admin.check(17, &send("topicA")), Ok(()));
    }

    #[test]
    fn refuses_files_java_refuses() {
        for bad in [
            "accounts:\n  - accessKey: short\n    secretKey: 12345678\n",
            "accounts:\n  - accessKey: longenough\n    secretKey: 123\n",
            "accounts:\n  - secretKey: 12345678\n",
            "accounts:\n  - accessKey: longenough\n    secretKey: 12345678\n    topicPerms: [topicA]\n",
            "accounts:\n  - accessKey: longenough\n    secretKey: 12345678\n    whiteRemoteAddress: x.y\n",
            "globalWhiteRemoteAddresses: [10.*.1.1]\n",
            "accounts: nope\n",
            "- a\n- b\n",
            "accounts: [\n",
        ] {
            assert!(AclPolicy::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let secret =
            AclPolicy::parse("accounts:\n  - accessKey: longenough\n    secretKey: 123\n").unwrap_err();
        assert!(!secret.to_string().contains("123\""), "the secret stays out of the error");
    }

    #[test]
    fn empty_files_and_first_duplicate_wins() {
        assert!(AclPolicy::parse("").unwrap().accounts.is_empty());
        assert!(AclPolicy::parse("# nothing\n").unwrap().accounts.is_empty());
        let twice = "accounts:\n  - {accessKey: longenough, secretKey: first-secret}\n  - {accessKey: longenough, secretKey: second-secret}\n";
        assert_eq!(AclPolicy::parse(twice).unwrap().accounts["longenough"].secret_key, "first-secret");
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,300}") {
            let _ = AclPolicy::parse(&text);
        }

        #[test]
        fn yaml_like_text_never_panics(
            lines in proptest::collection::vec("( {0,4})(accounts|accessKey|secretKey|topicPerms|- |admin|globalWhiteRemoteAddresses|[a-z=|*.0-9]{0,12})(: )?([A-Za-z0-9=|*.{},\\[\\]-]{0,16})", 0..20)
        ) {
            let _ = AclPolicy::parse(&lines.join("\n"));
        }
    }
}
