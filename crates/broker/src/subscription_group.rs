//! (stub) Subscription groups: `config/subscriptionGroup.json`.
//!
//! TEMPORARY in-memory implementation for the admin tests of branch `b-admin`; the real module
//! replaces it at merge.

use std::collections::BTreeMap;
use std::io;

use apogee_common::DataVersion;
use apogee_remoting::body::admin::{SubscriptionGroupConfig, SubscriptionGroupWrapper};
use parking_lot::Mutex;

use crate::BrokerConfig;

/// The broker's consumer groups.
#[derive(Debug, Default)]
pub struct SubscriptionGroupManager {
    auto_create: bool,
    table: Mutex<(BTreeMap<String, SubscriptionGroupConfig>, DataVersion)>,
}

impl SubscriptionGroupManager {
    /// Loads `config/subscriptionGroup.json`.
    pub fn load(config: &BrokerConfig) -> io::Result<Self> {
        Ok(Self {
            auto_create: config.auto_create_subscription_group,
            table: Mutex::new((BTreeMap::new(), DataVersion::new())),
        })
    }
    /// The group; created with defaults when missing and auto-creation is on.
    pub fn get_or_create(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        let mut table = self.table.lock();
        if let Some(config) = table.0.get(group) {
            return Some(config.clone());
        }
        if !self.auto_create {
            return None;
        }
        let config = SubscriptionGroupConfig::new(group);
        table.0.insert(group.to_owned(), config.clone());
        table.1.next_version();
        Some(config)
    }
    /// The group, without creating it.
    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.table.lock().0.get(group).cloned()
    }
    /// Creates or replaces a group; persists.
    pub fn update(&self, config: SubscriptionGroupConfig) -> io::Result<()> {
        let mut table = self.table.lock();
        table.0.insert(config.group_name.clone(), config);
        table.1.next_version();
        Ok(())
    }
    /// Deletes a group; persists.
    pub fn delete(&self, group: &str) -> io::Result<bool> {
        let mut table = self.table.lock();
        let removed = table.0.remove(group).is_some();
        table.1.next_version();
        Ok(removed)
    }
    /// Every group.
    pub fn all(&self) -> Vec<SubscriptionGroupConfig> {
        self.table.lock().0.values().cloned().collect()
    }
    /// The body of GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201): every group by name, the forbidden
    /// table and the table's current data version (the layout of `subscriptionGroup.json`).
    /// (Added for the admin handlers; to be implemented by the owner of this module.)
    pub fn serialize_wrapper(&self) -> SubscriptionGroupWrapper {
        let table = self.table.lock();
        SubscriptionGroupWrapper {
            data_version: table.1,
            forbidden_table: BTreeMap::new(),
            subscription_group_table: table.0.clone(),
        }
    }
}
