//! Subscription-group requests: UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200) and its list form
//! (225), GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201), GET_SUBSCRIPTIONGROUP_CONFIG (352),
//! DELETE_SUBSCRIPTIONGROUP (207).

use std::sync::Arc;

use apogee_remoting::body::admin::SubscriptionGroupConfig;
use apogee_remoting::header::admin::DeleteSubscriptionGroupRequestHeader;
use apogee_remoting::reply::{body_response, decode_body, header, Outcome};
use apogee_remoting::RemotingCommand;
use serde::{Deserialize, Serialize};

use super::{
    page_request, saturating_i32, GetAllSubscriptionGroupRequestHeader,
    GetAllSubscriptionGroupResponseHeader, GroupRequestHeader,
};
use crate::core::admin::groups;
use crate::BrokerState;

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200): the body is the whole group config; an empty
/// body changes nothing (as in Java).
pub(super) async fn update_and_create_group(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RemotingCommand::success_for(request));
    }
    let config: SubscriptionGroupConfig = decode_body(request, "SubscriptionGroupConfig")?;
    groups::create_or_update_group(state, config).await?;
    Ok(RemotingCommand::success_for(request))
}

/// The body of UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST (Java `SubscriptionGroupList`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct SubscriptionGroupList {
    group_config_list: Vec<SubscriptionGroupConfig>,
}

/// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST (225).
pub(super) async fn update_and_create_group_list(
    state: &Arc<BrokerState>,
    request: &RemotingCommand,
) -> Outcome {
    let body: SubscriptionGroupList = decode_body(request, "SubscriptionGroupList")?;
    groups::create_or_update_groups(state, body.group_config_list).await?;
    Ok(RemotingCommand::success_for(request))
}

/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201): every group (or a page for 5.x peers that ask).
pub(super) fn all_group_config(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GetAllSubscriptionGroupRequestHeader = header(request)?;
    let page = page_request(
        request_header.group_seq,
        request_header.data_version.as_deref(),
        request_header.max_group_num,
    );
    let table = groups::group_table(state, page.as_ref());
    let response_header =
        GetAllSubscriptionGroupResponseHeader { total_group_num: Some(saturating_i32(table.total)) };
    Ok(body_response(request, &table.table)?.with_header(&response_header))
}

/// GET_SUBSCRIPTIONGROUP_CONFIG (352): one group's config.
pub(super) fn group_config(state: &BrokerState, request: &RemotingCommand) -> Outcome {
    let request_header: GroupRequestHeader = header(request)?;
    body_response(request, &groups::group(state, &request_header.group)?)
}

/// DELETE_SUBSCRIPTIONGROUP (207): removes the group's config and, with `cleanOffset`, its
/// offsets.
pub(super) async fn delete_group(state: &Arc<BrokerState>, request: &RemotingCommand) -> Outcome {
    let request_header: DeleteSubscriptionGroupRequestHeader = header(request)?;
    let clean_offset = request_header.clean_offset.unwrap_or(false);
    groups::delete_group(state, &request_header.group_name, clean_offset).await?;
    Ok(RemotingCommand::success_for(request))
}
