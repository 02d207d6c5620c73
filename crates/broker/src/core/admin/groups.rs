//! Subscription-group maintenance: create or update (one, or a list checked whole), delete,
//! and read the group table (whole or by pages) or one group.

use std::collections::BTreeSet;
use std::sync::Arc;

use apogee_common::topic as topic_names;
use apogee_remoting::body::admin::{SubscriptionGroupConfig, SubscriptionGroupWrapper};
use apogee_remoting::code::response_code;

use super::invalid;
use super::paging::{page, requested_page, PageRequest};
use crate::core::blocking;
use crate::core::error::{CoreResult, Error};
use crate::BrokerState;

/// Checks a group name as Java's `TopicValidator.validateGroup` does, with its remarks.
fn validate_group_name(group: &str) -> CoreResult<()> {
    if group.trim().is_empty() {
        return Err(invalid("The specified group is blank."));
    }
    let legal = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'%' | b'|' | b'_' | b'-');
    if !group.bytes().all(legal) {
        return Err(invalid(format!(
            "The specified group: {group}, contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$"
        )));
    }
    if group.len() > topic_names::GROUP_MAX_LENGTH {
        return Err(invalid(format!(
            "The specified group: {group}, is longer than group max length: {}",
            topic_names::GROUP_MAX_LENGTH
        )));
    }
    Ok(())
}

/// Creates or updates one group from its whole config.
pub async fn create_or_update_group(
    state: &Arc<BrokerState>,
    config: SubscriptionGroupConfig,
) -> CoreResult<()> {
    validate_group_name(&config.group_name)?;
    let group = config.group_name.clone();
    tracing::info!(%group, "creating or updating subscription group");
    blocking(state, move |state| state.groups.update(config))
        .await?
        .map_err(|error| Error::system(format!("update subscription group {group} failed: {error}")))
}

/// Creates or updates groups: every name is checked before any group is stored.
pub async fn create_or_update_groups(
    state: &Arc<BrokerState>,
    configs: Vec<SubscriptionGroupConfig>,
) -> CoreResult<()> {
    for config in &configs {
        validate_group_name(&config.group_name)?;
    }
    blocking(state, move |state| {
        for config in configs {
            let group = config.group_name.clone();
            tracing::info!(%group, "creating or updating subscription group");
            state.groups.update(config).map_err(|error| {
                Error::system(format!("update subscription group {group} failed: {error}"))
            })?;
        }
        Ok(())
    })
    .await?
}

/// The group table and how many groups the broker has (a page holds fewer).
#[derive(Debug)]
pub struct GroupTable {
    /// The table (or the page asked for).
    pub table: SubscriptionGroupWrapper,
    /// Groups on the broker.
    pub total: usize,
}

/// The group table: whole, or the page a 5.x peer asks for.
pub fn group_table(state: &BrokerState, page_request: Option<&PageRequest>) -> GroupTable {
    let mut wrapper = state.groups.wrapper();
    let total = wrapper.subscription_group_table.len();
    if let Some((start, size)) = requested_page(page_request, &wrapper.data_version) {
        wrapper.subscription_group_table = page(wrapper.subscription_group_table, start, size);
        let kept: BTreeSet<String> = wrapper.subscription_group_table.keys().cloned().collect();
        wrapper.forbidden_table.retain(|group, _| kept.contains(group));
    }
    GroupTable { table: wrapper, total }
}

/// One group's config.
pub fn group(state: &BrokerState, group: &str) -> CoreResult<SubscriptionGroupConfig> {
    state
        .groups
        .get(group)
        .ok_or_else(|| Error::new(response_code::SUBSCRIPTION_GROUP_NOT_EXIST, "No group in this broker"))
}

/// Removes the group's config and, with `clean_offset`, its offsets.
pub async fn delete_group(state: &Arc<BrokerState>, group: &str, clean_offset: bool) -> CoreResult<()> {
    tracing::info!(%group, clean_offset, "deleting subscription group");
    let group = group.to_owned();
    blocking(state, move |state| {
        state.groups.delete(&group)?;
        if clean_offset {
            state.offsets.remove_group(&group);
        }
        Ok::<(), std::io::Error>(())
    })
    .await?
    .map_err(|error| Error::system(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert!(validate_group_name("GID_a-b|c%d").is_ok());
        assert_eq!(validate_group_name(" ").unwrap_err().code, response_code::INVALID_PARAMETER);
        assert!(validate_group_name("a b").is_err());
        assert!(validate_group_name(&"g".repeat(121)).is_err());
    }
}
