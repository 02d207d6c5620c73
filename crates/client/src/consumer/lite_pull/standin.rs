//! Private stand-ins for what the shared consumer modules provide once merged: the averagely
//! allocation strategy (`consumer::allocate`) and the broker offset calls of the remote offset
//! store (`consumer::offset_store`), plus the queue offset lookups of Java's `MQAdminImpl`.
//! Each is one small function so that the integrator can swap it for the shared one.

use apogee_common::MessageQueue;
use apogee_remoting::body::route::{TopicRouteData, MASTER_ID};
use apogee_remoting::header::consumer::{
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader, QueryConsumerOffsetResponseHeader, SearchOffsetRequestHeader,
    SearchOffsetResponseHeader,
};
use apogee_remoting::header::CommandHeader;
use apogee_remoting::{request_code, response_code, RemotingCommand};

use super::link::Link;
pub(crate) use crate::admin::requests::expect_success;
use crate::ClientError;

/// An address of broker group `broker_name` in `route`: member `broker_id` if listed, else
/// the master, else any member.
pub(crate) fn broker_addr_in_route(
    route: &TopicRouteData,
    broker_name: &str,
    broker_id: i64,
) -> Option<String> {
    let broker = route.broker_datas.iter().find(|broker| broker.broker_name == broker_name)?;
    broker
        .broker_addrs
        .get(&broker_id)
        .or_else(|| broker.broker_addrs.get(&MASTER_ID))
        .or_else(|| broker.broker_addrs.values().next())
        .cloned()
}

/// The master (else any member) address of the broker group holding `queue`, from its topic's
/// route.
pub(crate) async fn queue_master_addr(link: &dyn Link, queue: &MessageQueue) -> Result<String, ClientError> {
    let route = link.topic_route(&queue.topic).await?;
    broker_addr_in_route(&route, &queue.broker_name, MASTER_ID)
        .ok_or_else(|| ClientError::NoBroker { broker_name: queue.broker_name.clone() })
}

/// Decodes a response header, a failure being a malformed answer.
pub(crate) fn response_header<H: CommandHeader>(response: &RemotingCommand) -> Result<H, ClientError> {
    response.decode_header::<H>().map_err(|error| ClientError::Malformed(error.to_string()))
}

/// QUERY_CONSUMER_OFFSET (14) request (the admin module's builder).
pub(crate) use crate::admin::requests::query_consumer_offset as query_offset_request;

/// Reads the answer to [`query_offset_request`]: the committed offset, `None` when the broker
/// has none (QUERY_NOT_FOUND).
pub(crate) fn read_query_offset_response(
    addr: &str,
    response: RemotingCommand,
) -> Result<Option<i64>, ClientError> {
    if response.code == response_code::QUERY_NOT_FOUND {
        return Ok(None);
    }
    let response = expect_success(addr, response)?;
    Ok(Some(response_header::<QueryConsumerOffsetResponseHeader>(&response)?.offset))
}

/// Remote offset store, read side: the group's committed offset of `queue` on its broker
/// (`None` when nothing is stored).
pub(crate) async fn fetch_committed_offset(
    link: &dyn Link,
    group: &str,
    queue: &MessageQueue,
) -> Result<Option<i64>, ClientError> {
    let addr = queue_master_addr(link, queue).await?;
    let response = link.invoke(&addr, query_offset_request(group, queue), link.api_timeout()).await?;
    read_query_offset_response(&addr, response)
}

/// UPDATE_CONSUMER_OFFSET (15) request (the admin module's builder).
pub(crate) use crate::admin::requests::update_consumer_offset as update_offset_request;

/// Remote offset store, write side: commits `offset` on the queue's master, oneway (the
/// periodic commit) or waiting for the answer (an explicit commit).
pub(crate) async fn commit_offset_to_broker(
    link: &dyn Link,
    group: &str,
    queue: &MessageQueue,
    offset: i64,
    oneway: bool,
) -> Result<(), ClientError> {
    let addr = queue_master_addr(link, queue).await?;
    let request = update_offset_request(group, queue, offset);
    if oneway {
        link.invoke_oneway(&addr, request).await
    } else {
        let response = link.invoke(&addr, request, link.api_timeout()).await?;
        expect_success(&addr, response).map(drop)
    }
}

/// The queue's min offset (GET_MIN_OFFSET, 31).
pub(crate) async fn min_offset(link: &dyn Link, queue: &MessageQueue) -> Result<i64, ClientError> {
    let header = GetMinOffsetRequestHeader {
        topic: queue.topic.clone(),
        queue_id: queue.queue_id,
        bname: Some(queue.broker_name.clone()),
    };
    let request = RemotingCommand::request(request_code::GET_MIN_OFFSET).with_header(&header);
    let addr = queue_master_addr(link, queue).await?;
    let response = expect_success(&addr, link.invoke(&addr, request, link.api_timeout()).await?)?;
    Ok(response_header::<GetMinOffsetResponseHeader>(&response)?.offset)
}

/// The queue's max offset, exclusive (GET_MAX_OFFSET, 30).
pub(crate) async fn max_offset(link: &dyn Link, queue: &MessageQueue) -> Result<i64, ClientError> {
    let header = GetMaxOffsetRequestHeader {
        topic: queue.topic.clone(),
        queue_id: queue.queue_id,
        committed: Some(true),
        bname: Some(queue.broker_name.clone()),
    };
    let request = RemotingCommand::request(request_code::GET_MAX_OFFSET).with_header(&header);
    let addr = queue_master_addr(link, queue).await?;
    let response = expect_success(&addr, link.invoke(&addr, request, link.api_timeout()).await?)?;
    Ok(response_header::<GetMaxOffsetResponseHeader>(&response)?.offset)
}

/// The offset of the first message stored at or after `timestamp_ms` (SEARCH_OFFSET_BY_TIMESTAMP,
/// 29).
pub(crate) async fn search_offset(
    link: &dyn Link,
    queue: &MessageQueue,
    timestamp_ms: i64,
) -> Result<i64, ClientError> {
    let header = SearchOffsetRequestHeader {
        topic: queue.topic.clone(),
        queue_id: queue.queue_id,
        timestamp: timestamp_ms,
        boundary_type: None,
        bname: Some(queue.broker_name.clone()),
    };
    let request = RemotingCommand::request(request_code::SEARCH_OFFSET_BY_TIMESTAMP).with_header(&header);
    let addr = queue_master_addr(link, queue).await?;
    let response = expect_success(&addr, link.invoke(&addr, request, link.api_timeout()).await?)?;
    Ok(response_header::<SearchOffsetResponseHeader>(&response)?.offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apogee_remoting::body::route::BrokerData;

    #[test]
    fn broker_addresses_prefer_the_asked_member_then_the_master() {
        let mut route = TopicRouteData::default();
        let mut broker = BrokerData { broker_name: "b".into(), ..BrokerData::default() };
        broker.broker_addrs.insert(0, "m:1".into());
        broker.broker_addrs.insert(1, "s:1".into());
        route.broker_datas.push(broker);
        assert_eq!(broker_addr_in_route(&route, "b", 1).as_deref(), Some("s:1"));
        assert_eq!(broker_addr_in_route(&route, "b", 7).as_deref(), Some("m:1"));
        assert_eq!(broker_addr_in_route(&route, "other", 0), None);
        route.broker_datas[0].broker_addrs.remove(&0);
        assert_eq!(broker_addr_in_route(&route, "b", 0).as_deref(), Some("s:1"));
    }

    #[test]
    fn offset_requests_carry_the_queue_and_group() {
        let queue = MessageQueue::new("T", "broker-a", 3);
        let query = query_offset_request("G", &queue);
        assert_eq!(query.code, 14);
        assert_eq!(query.ext("consumerGroup"), Some("G"));
        assert_eq!(query.ext("topic"), Some("T"));
        assert_eq!(query.ext("queueId"), Some("3"));
        assert_eq!(query.ext("bname"), Some("broker-a"));
        let update = update_offset_request("G", &queue, 42);
        assert_eq!(update.code, 15);
        assert_eq!(update.ext("commitOffset"), Some("42"));
    }

    #[test]
    fn query_offset_answers_are_read() {
        let found = RemotingCommand::response(0, None).with_ext("offset", "17");
        assert_eq!(read_query_offset_response("a", found).ok(), Some(Some(17)));
        let none = RemotingCommand::response(response_code::QUERY_NOT_FOUND, None);
        assert_eq!(read_query_offset_response("a", none).ok(), Some(None));
        let refused =
            RemotingCommand::response(response_code::SUBSCRIPTION_GROUP_NOT_EXIST, Some("no group".into()));
        assert!(matches!(
            read_query_offset_response("a:1", refused),
            Err(ClientError::Broker { code: 26, ref remark, ref addr }) if remark == "no group" && addr == "a:1"
        ));
        let malformed = RemotingCommand::response(0, None).with_ext("offset", "x");
        assert!(matches!(read_query_offset_response("a", malformed), Err(ClientError::Malformed(_))));
    }
}
