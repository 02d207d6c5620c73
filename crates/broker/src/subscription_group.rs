//! (stub) Subscription groups: `config/subscriptionGroup.json`.

use std::io;

use apogee_remoting::body::admin::{SubscriptionGroupConfig, SubscriptionGroupWrapper};

use crate::BrokerConfig;

/// The broker's consumer groups.
#[derive(Debug, Default)]
pub struct SubscriptionGroupManager {}

impl SubscriptionGroupManager {
    /// Loads `config/subscriptionGroup.json`.
    pub fn load(_config: &BrokerConfig) -> io::Result<Self> {
        Ok(Self {})
    }
    /// The group; created with defaults when missing and auto-creation is on.
    pub fn get_or_create(&self, _group: &str) -> Option<SubscriptionGroupConfig> {
        unimplemented!()
    }
    /// The group, without creating it.
    pub fn get(&self, _group: &str) -> Option<SubscriptionGroupConfig> {
        unimplemented!()
    }
    /// Creates or replaces a group; persists.
    pub fn update(&self, _config: SubscriptionGroupConfig) -> io::Result<()> {
        unimplemented!()
    }
    /// Deletes a group; persists.
    pub fn delete(&self, _group: &str) -> io::Result<bool> {
        unimplemented!()
    }
    /// Every group.
    pub fn all(&self) -> Vec<SubscriptionGroupConfig> {
        unimplemented!()
    }
    /// The body of GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201): every group by name, the forbidden
    /// table and the table's current data version (the layout of `subscriptionGroup.json`).
    /// (Added for the admin handlers; to be implemented by the owner of this module.)
    pub fn serialize_wrapper(&self) -> SubscriptionGroupWrapper {
        unimplemented!()
    }
}
