//! QueryRoute and QueryAssignment (spec §5.2, §5.6) in Apache's "local" mode: the endpoint is
//! embedded in the broker, so the route is this broker's queues of the topic and every queue's
//! endpoints are this broker's host with the gRPC port.

use apogee_common::perm;
use apogee_common::topic::TopicConfig;

use crate::pb::{
    Address, AddressScheme, Assignment, Broker, Code, Endpoints, MessageQueue, Permission,
    QueryAssignmentRequest, QueryAssignmentResponse, QueryRouteRequest, QueryRouteResponse, Resource,
};
use crate::status::{ok, Refusal};
use crate::{names, Endpoint, Messaging};

/// The broker id of a master.
const MASTER_ID: i32 = 0;

impl Messaging {
    /// QueryRoute: this broker's queues of the topic, with real queue ids.
    pub(crate) fn query_route(&self, request: &QueryRouteRequest) -> Result<QueryRouteResponse, Refusal> {
        let topic = names::topic(request.topic.as_ref())?;
        let config = self.topic_config(topic)?;
        let broker = self.master_broker();
        let resource = Resource { resource_namespace: String::new(), name: topic.to_owned() };
        let accepted: Vec<i32> =
            crate::topic_type::accepted(&config).into_iter().map(|kind| kind as i32).collect();
        let message_queues = queue_permissions(&config)
            .into_iter()
            .map(|(id, permission)| MessageQueue {
                topic: Some(resource.clone()),
                id,
                permission: permission as i32,
                broker: Some(broker.clone()),
                accept_message_types: accepted.clone(),
            })
            .collect();
        Ok(QueryRouteResponse { status: Some(ok()), message_queues })
    }

    /// QueryAssignment: load is balanced by the broker through POP, so every consumer of the
    /// group gets the broker as a whole (queue −1), or each readable queue for a FIFO group.
    pub(crate) fn query_assignment(
        &self,
        request: &QueryAssignmentRequest,
    ) -> Result<QueryAssignmentResponse, Refusal> {
        let topic = names::topic(request.topic.as_ref())?;
        let group = names::group(request.group.as_ref())?;
        let config = self.topic_config(topic)?;
        if !perm::is_readable(config.perm) || config.read_queue_nums <= 0 {
            return Err(Refusal::new(Code::Forbidden, "no readable queue"));
        }
        let fifo = self.state.groups.get(group).is_some_and(|group| group.consume_message_orderly);
        let permission = permission_of(config.perm);
        let queue_ids: Vec<i32> = if fifo { (0..config.read_queue_nums).collect() } else { vec![-1] };
        let broker = self.master_broker();
        let resource = Resource { resource_namespace: String::new(), name: topic.to_owned() };
        let assignments = queue_ids
            .into_iter()
            .map(|id| Assignment {
                message_queue: Some(MessageQueue {
                    topic: Some(resource.clone()),
                    id,
                    permission: permission as i32,
                    broker: Some(broker.clone()),
                    accept_message_types: Vec::new(),
                }),
            })
            .collect();
        Ok(QueryAssignmentResponse { status: Some(ok()), assignments })
    }

    /// The topic's config on this broker; TOPIC_NOT_FOUND when it has none.
    pub(crate) fn topic_config(&self, topic: &str) -> Result<std::sync::Arc<TopicConfig>, Refusal> {
        self.state.topics.lookup(topic).ok_or_else(|| {
            Refusal::new(
                Code::TopicNotFound,
                format!("No topic route info in name server for the topic: {topic}"),
            )
        })
    }

    /// This broker as the route names it.
    pub(crate) fn master_broker(&self) -> Broker {
        Broker {
            name: self.state.config.broker_name.clone(),
            id: MASTER_ID,
            endpoints: Some(endpoints(&self.endpoint)),
        }
    }
}

/// Endpoints for `endpoint`, with the scheme its host calls for.
fn endpoints(endpoint: &Endpoint) -> Endpoints {
    let scheme = match endpoint.host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => AddressScheme::IPv4,
        Ok(std::net::IpAddr::V6(_)) => AddressScheme::IPv6,
        Err(_) => AddressScheme::DomainName,
    };
    Endpoints {
        scheme: scheme as i32,
        addresses: vec![Address { host: endpoint.host.clone(), port: i32::from(endpoint.port) }],
    }
}

/// The protocol's permission for broker permission bits.
fn permission_of(bits: i32) -> Permission {
    match (perm::is_readable(bits), perm::is_writeable(bits)) {
        (true, true) => Permission::ReadWrite,
        (true, false) => Permission::Read,
        (false, true) => Permission::Write,
        (false, false) => Permission::None,
    }
}

/// Each queue id of the topic with what may be done on it: queues both read and written
/// first, then those only read or only written (a topic's read and write counts may differ).
/// A topic neither readable nor writable still lists its queues, as NONE.
fn queue_permissions(config: &TopicConfig) -> Vec<(i32, Permission)> {
    let (readable, writable) = (perm::is_readable(config.perm), perm::is_writeable(config.perm));
    let reads = if readable { config.read_queue_nums.max(0) } else { 0 };
    let writes = if writable { config.write_queue_nums.max(0) } else { 0 };
    if reads == 0 && writes == 0 {
        let count = config.read_queue_nums.max(config.write_queue_nums).max(1);
        return (0..count).map(|id| (id, Permission::None)).collect();
    }
    let both = reads.min(writes);
    let mut queues: Vec<(i32, Permission)> = (0..both).map(|id| (id, Permission::ReadWrite)).collect();
    queues.extend((both..reads).map(|id| (id, Permission::Read)));
    queues.extend((both..writes).map(|id| (id, Permission::Write)));
    queues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_carry_concrete_permissions_with_real_ids() {
        let both = TopicConfig::with_queues("T", 4, 4, perm::READ_WRITE);
        assert_eq!(
            queue_permissions(&both),
            (0..4).map(|id| (id, Permission::ReadWrite)).collect::<Vec<_>>()
        );
        let more_writes = TopicConfig::with_queues("T", 2, 3, perm::READ_WRITE);
        assert_eq!(
            queue_permissions(&more_writes),
            [(0, Permission::ReadWrite), (1, Permission::ReadWrite), (2, Permission::Write)]
        );
        let read_only = TopicConfig::with_queues("T", 2, 2, perm::READ);
        assert_eq!(queue_permissions(&read_only), [(0, Permission::Read), (1, Permission::Read)]);
        let closed = TopicConfig::with_queues("T", 2, 2, 0);
        assert_eq!(queue_permissions(&closed), [(0, Permission::None), (1, Permission::None)]);
    }

    #[test]
    fn endpoint_schemes_follow_the_host() {
        let v4 = endpoints(&Endpoint { host: "127.0.0.1".into(), port: 8081 });
        assert_eq!(v4.scheme, AddressScheme::IPv4 as i32);
        let name = endpoints(&Endpoint { host: "broker-a".into(), port: 8081 });
        assert_eq!(name.scheme, AddressScheme::DomainName as i32);
        assert_eq!(name.addresses.len(), 1);
    }
}
