//! Request handlers of the NameServer: decode the header and body, ask the route table or
//! the KV store, encode the answer (behaviour spec §1.3–§1.7, remoting spec §3.2).

use std::sync::Arc;

use apogee_common::properties;
use apogee_remoting::body::namesrv::{KVTable, RegisterBrokerBody, TopicList};
use apogee_remoting::body::route::{BrokerMemberGroup, GetBrokerMemberGroupResponseBody, TopicRouteData};
use apogee_remoting::connection::Connection;
use apogee_remoting::fastjson::Dialect;
use apogee_remoting::header::namesrv::*;
use apogee_remoting::reply::{self, body_response, decode_body, encode_body, header, Failure, Outcome};
use apogee_remoting::{request_code, response_code, RemotingCommand};

use crate::config::CONFIG_BLACK_LIST;
use crate::kv::{KvConfig, KvError, ORDER_TOPIC_CONFIG};
use crate::route::{BrokerRegistration, UnitFilter};
use crate::NamesrvState;

/// Every request code the NameServer answers; anything else gets REQUEST_CODE_NOT_SUPPORTED.
pub const HANDLED_CODES: &[i32] = &[
    request_code::PUT_KV_CONFIG,
    request_code::GET_KV_CONFIG,
    request_code::DELETE_KV_CONFIG,
    request_code::GET_KVLIST_BY_NAMESPACE,
    request_code::REGISTER_BROKER,
    request_code::UNREGISTER_BROKER,
    request_code::BROKER_HEARTBEAT,
    request_code::QUERY_DATA_VERSION,
    request_code::GET_ROUTEINFO_BY_TOPIC,
    request_code::GET_BROKER_CLUSTER_INFO,
    request_code::WIPE_WRITE_PERM_OF_BROKER,
    request_code::ADD_WRITE_PERM_OF_BROKER,
    request_code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    request_code::DELETE_TOPIC_IN_NAMESRV,
    request_code::REGISTER_TOPIC_IN_NAMESRV,
    request_code::GET_TOPICS_BY_CLUSTER,
    request_code::GET_SYSTEM_TOPIC_LIST_FROM_NS,
    request_code::GET_UNIT_TOPIC_LIST,
    request_code::GET_HAS_UNIT_SUB_TOPIC_LIST,
    request_code::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST,
    request_code::GET_BROKER_MEMBER_GROUP,
    request_code::UPDATE_NAMESRV_CONFIG,
    request_code::GET_NAMESRV_CONFIG,
];

/// The route JSON switches to standard (quoted keys) from this client version on (V4_9_4).
const STANDARD_JSON_MIN_VERSION: i32 = 401;

/// Handles one request; `None` only for requests that need no answer.
pub async fn process(
    state: Arc<NamesrvState>,
    connection: Connection,
    request: RemotingCommand,
) -> Option<RemotingCommand> {
    let outcome = match request.code {
        request_code::REGISTER_BROKER => register_broker(&state, &connection, &request),
        request_code::UNREGISTER_BROKER => unregister_broker(&state, &request),
        request_code::BROKER_HEARTBEAT => broker_heartbeat(&state, &request),
        request_code::QUERY_DATA_VERSION => query_data_version(&state, &request),
        request_code::GET_ROUTEINFO_BY_TOPIC => route_by_topic(&state, &request),
        request_code::GET_BROKER_CLUSTER_INFO => body_response(&request, &state.routes.cluster_info()),
        request_code::WIPE_WRITE_PERM_OF_BROKER => change_write_perm(&state, &request, true),
        request_code::ADD_WRITE_PERM_OF_BROKER => change_write_perm(&state, &request, false),
        request_code::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
            if state.config.read().enable_all_topic_list {
                topic_list(&request, state.routes.all_topics(), None)
            } else {
                Err(Failure::system("disable"))
            }
        }
        request_code::GET_TOPICS_BY_CLUSTER => topics_by_cluster(&state, &request),
        request_code::GET_SYSTEM_TOPIC_LIST_FROM_NS => {
            let (topics, broker_addr) = state.routes.system_topics();
            topic_list(&request, topics, broker_addr)
        }
        request_code::GET_UNIT_TOPIC_LIST => unit_topics(&state, &request, UnitFilter::Unit),
        request_code::GET_HAS_UNIT_SUB_TOPIC_LIST => unit_topics(&state, &request, UnitFilter::HasUnitSub),
        request_code::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => {
            unit_topics(&state, &request, UnitFilter::HasUnitSubNotUnit)
        }
        request_code::DELETE_TOPIC_IN_NAMESRV => delete_topic(&state, &request),
        request_code::REGISTER_TOPIC_IN_NAMESRV => register_topic(&state, &request),
        request_code::PUT_KV_CONFIG => put_kv(&state, &request).await,
        request_code::GET_KV_CONFIG => get_kv(&state, &request),
        request_code::DELETE_KV_CONFIG => delete_kv(&state, &request).await,
        request_code::GET_KVLIST_BY_NAMESPACE => kv_namespace(&state, &request),
        request_code::GET_BROKER_MEMBER_GROUP => broker_member_group(&state, &request),
        request_code::UPDATE_NAMESRV_CONFIG => update_config(&state, &request),
        request_code::GET_NAMESRV_CONFIG => {
            let text = properties::render(state.config.read().to_properties());
            Ok(RemotingCommand::success_for(&request).with_body(text.into_bytes()))
        }
        other => Err(Failure::not_supported(other)),
    };
    Some(reply::finish(&request, outcome))
}

fn topic_list(request: &RemotingCommand, topics: Vec<String>, broker_addr: Option<String>) -> Outcome {
    body_response(request, &TopicList { topic_list: topics.into_iter().collect(), broker_addr })
}

fn register_broker(state: &NamesrvState, connection: &Connection, request: &RemotingCommand) -> Outcome {
    let header: RegisterBrokerRequestHeader = header(request)?;
    let crc = header.body_crc32.unwrap_or(0);
    if crc != 0 && crc32fast::hash(&request.body) as i32 & 0x7FFF_FFFF != crc {
        return Err(Failure::system("crc32 not match"));
    }
    let body = if request.body.is_empty() {
        RegisterBrokerBody::default()
    } else {
        RegisterBrokerBody::decode(&request.body, header.compressed.unwrap_or(false), request.version)
            .map_err(|error| Failure::system(format!("malformed register broker body: {error}")))?
    };
    let wrapper = body.topic_config_serialize_wrapper;
    let registration = BrokerRegistration {
        cluster_name: header.cluster_name,
        broker_addr: header.broker_addr,
        broker_name: header.broker_name,
        broker_id: header.broker_id,
        ha_server_addr: header.ha_server_addr,
        zone_name: request.ext("__ZONE_NAME").map(str::to_owned),
        heartbeat_timeout_ms: header.heartbeat_timeout_millis.and_then(|ms| u64::try_from(ms).ok()),
        enable_acting_master: header.enable_acting_master,
        data_version: wrapper.data_version,
        topic_configs: wrapper.topic_config_table.into_values().collect(),
        filter_server_list: body.filter_server_list,
        connection_id: Some(connection.id()),
    };
    let outcome =
        state.routes.register_broker(registration).map_err(|error| Failure::system(error.to_string()))?;
    let response_header = RegisterBrokerResponseHeader {
        ha_server_addr: outcome.ha_server_addr,
        master_addr: outcome.master_addr,
    };
    let mut response = RemotingCommand::success_for(request).with_header(&response_header);
    if state.config.read().return_order_topic_config_to_broker {
        if let Some(table) = state.kv.namespace(ORDER_TOPIC_CONFIG) {
            response = response
                .with_body(encode_body(&KVTable { table: table.into_iter().collect() }, Dialect::Fastjson)?);
        }
    }
    Ok(response)
}

fn unregister_broker(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let header: UnRegisterBrokerRequestHeader = header(request)?;
    state.routes.unregister_broker(
        &header.cluster_name,
        &header.broker_addr,
        &header.broker_name,
        header.broker_id,
    );
    Ok(RemotingCommand::success_for(request))
}

fn broker_heartbeat(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let header: BrokerHeartbeatRequestHeader = header(request)?;
    state.routes.heartbeat(&header.cluster_name, &header.broker_addr);
    Ok(RemotingCommand::success_for(request))
}

fn query_data_version(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let header: QueryDataVersionRequestHeader = header(request)?;
    let version = decode_body(request, "data version")?;
    let (changed, stored) =
        state.routes.query_data_version(&header.cluster_name, &header.broker_addr, &version);
    let mut response =
        RemotingCommand::success_for(request).with_header(&QueryDataVersionResponseHeader { changed });
    if let Some(stored) = stored {
        response = response.with_body(encode_body(&stored, Dialect::Fastjson)?);
    }
    Ok(response)
}

fn route_by_topic(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let header: GetRouteInfoRequestHeader = header(request)?;
    let zone = match (request.ext("__ZONE_MODE"), request.ext("__ZONE_NAME")) {
        (Some(mode), Some(zone)) if mode.eq_ignore_ascii_case("true") && !zone.is_empty() => Some(zone),
        _ => None,
    };
    let Some(mut route) = state.routes.topic_route(&header.topic, zone) else {
        return Err(Failure::new(
            response_code::TOPIC_NOT_EXIST,
            format!("No topic route info in name server for the topic: {}", header.topic),
        ));
    };
    if state.config.read().order_message_enable {
        route.order_topic_conf = state.kv.get(ORDER_TOPIC_CONFIG, &header.topic);
    }
    let standard =
        request.version >= STANDARD_JSON_MIN_VERSION || header.accept_standard_json_only == Some(true);
    let dialect = if standard { Dialect::Standard } else { Dialect::Fastjson };
    Ok(RemotingCommand::success_for(request).with_body(encode_body::<TopicRouteData>(&route, dialect)?))
}

fn change_write_perm(state: &NamesrvState, request: &RemotingCommand, wipe: bool) -> Outcome {
    let response = RemotingCommand::success_for(request);
    Ok(if wipe {
        let header: WipeWritePermOfBrokerRequestHeader = header(request)?;
        let wipe_topic_count = state.routes.change_write_perm(&header.broker_name, true);
        response.with_header(&WipeWritePermOfBrokerResponseHeader { wipe_topic_count })
    } else {
        let header: AddWritePermOfBrokerRequestHeader = header(request)?;
        let add_topic_count = state.routes.change_write_perm(&header.broker_name, false);
        response.with_header(&AddWritePermOfBrokerResponseHeader { add_topic_count })
    })
}

fn topics_by_cluster(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    if !state.config.read().enable_topic_list {
        return Err(Failure::system("disable"));
    }
    let header: GetTopicsByClusterRequestHeader = header(request)?;
    topic_list(request, state.routes.topics_by_cluster(&header.cluster), None)
}

fn unit_topics(state: &NamesrvState, request: &RemotingCommand, filter: UnitFilter) -> Outcome {
    if !state.config.read().enable_topic_list {
        return Err(Failure::system("disable"));
    }
    topic_list(request, state.routes.topics_by_sys_flag(filter), None)
}

fn delete_topic(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let header: DeleteTopicFromNamesrvRequestHeader = header(request)?;
    state.routes.delete_topic(&header.topic, header.cluster_name.as_deref());
    Ok(RemotingCommand::success_for(request))
}

fn register_topic(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let header: RegisterTopicRequestHeader = header(request)?;
    if !request.body.is_empty() {
        let route: TopicRouteData = decode_body(request, "topic route")?;
        state.routes.register_topic(&header.topic, route.queue_datas);
    }
    Ok(RemotingCommand::success_for(request))
}

async fn put_kv(state: &Arc<NamesrvState>, request: &RemotingCommand) -> Outcome {
    let header: PutKVConfigRequestHeader = header(request)?;
    write_kv(state, move |kv| kv.put(&header.namespace, &header.key, &header.value)).await?;
    Ok(RemotingCommand::success_for(request))
}

/// Runs `write` on the KV store on a blocking thread: the store rewrites its file, which must
/// stay off the async workers.
async fn write_kv<T: Send + 'static>(
    state: &Arc<NamesrvState>,
    write: impl FnOnce(&KvConfig) -> Result<T, KvError> + Send + 'static,
) -> Result<T, Failure> {
    let owner = Arc::clone(state);
    tokio::task::spawn_blocking(move || write(&owner.kv))
        .await
        .map_err(|error| Failure::system(format!("kv config writer failed: {error}")))?
        .map_err(|error| Failure::system(error.to_string()))
}

fn get_kv(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let header: GetKVConfigRequestHeader = header(request)?;
    match state.kv.get(&header.namespace, &header.key) {
        Some(value) => Ok(RemotingCommand::success_for(request)
            .with_header(&GetKVConfigResponseHeader { value: Some(value) })),
        None => Err(Failure::new(
            response_code::QUERY_NOT_FOUND,
            format!("No config item, Namespace: {} Key: {}", header.namespace, header.key),
        )),
    }
}

async fn delete_kv(state: &Arc<NamesrvState>, request: &RemotingCommand) -> Outcome {
    let header: DeleteKVConfigRequestHeader = header(request)?;
    write_kv(state, move |kv| kv.delete(&header.namespace, &header.key)).await?;
    Ok(RemotingCommand::success_for(request))
}

fn kv_namespace(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let header: GetKVListByNamespaceRequestHeader = header(request)?;
    match state.kv.namespace(&header.namespace) {
        Some(table) => body_response(request, &KVTable { table: table.into_iter().collect() }),
        None => Err(Failure::new(
            response_code::QUERY_NOT_FOUND,
            format!("No config item, Namespace: {}", header.namespace),
        )),
    }
}

fn broker_member_group(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let header: GetBrokerMemberGroupRequestHeader = header(request)?;
    let broker_addrs = state.routes.broker_members(&header.broker_name);
    let group =
        BrokerMemberGroup { broker_addrs, broker_name: header.broker_name, cluster: header.cluster_name };
    body_response(request, &GetBrokerMemberGroupResponseBody { broker_member_group: Some(group) })
}

/// UPDATE_NAMESRV_CONFIG: properties text in the body; black-listed keys are refused whole.
fn update_config(state: &NamesrvState, request: &RemotingCommand) -> Outcome {
    let text = std::str::from_utf8(&request.body).map_err(|_| Failure::system("string2Properties error"))?;
    let entries = properties::parse(text).map_err(|_| Failure::system("string2Properties error"))?;
    if entries.keys().any(|key| CONFIG_BLACK_LIST.contains(&key.as_str())) {
        return Err(Failure::new(response_code::NO_PERMISSION, "Can not update config in black list."));
    }
    let mut updated = state.config.read().clone();
    for (key, value) in &entries {
        match updated.set(key, value) {
            Ok(()) => {}
            Err(crate::config::ConfigError::UnknownKey(key)) => {
                tracing::warn!(%key, "UPDATE_NAMESRV_CONFIG: unknown key ignored")
            }
            Err(error) => return Err(Failure::system(error.to_string())),
        }
    }
    *state.config.write() = updated;
    Ok(RemotingCommand::success_for(request))
}
