//! QueryRoute and QueryAssignment (spec §5.2, §5.6). Every queue of every broker group holding
//! the topic is reached at this endpoint: embedded in a broker ("local" mode) the route is that
//! broker's queues at its host; as a proxy ("cluster" mode) it is every broker group's queues,
//! the broker name kept in `MessageQueue.broker.name`, at the address the client used.

use apogee_common::perm;

use crate::backend::Backend;
use crate::pb::{
    Address, AddressScheme, Assignment, Broker, Code, Endpoints, MessageQueue, Permission,
    QueryAssignmentRequest, QueryAssignmentResponse, QueryRouteRequest, QueryRouteResponse, Resource,
};
use crate::status::{ok, Refusal};
use crate::{names, Endpoint, Messaging};

/// The broker id of a master.
const MASTER_ID: i32 = 0;

impl Messaging {
    /// QueryRoute: every broker group's queues of the topic, with real queue ids, each
    /// reached at this endpoint.
    pub(crate) async fn query_route(
        &self,
        request: &QueryRouteRequest,
    ) -> Result<QueryRouteResponse, Refusal> {
        let topic = names::topic(request.topic.as_ref())?;
        let route = self.backend.route(topic).await?;
        let resource = Resource { resource_namespace: String::new(), name: topic.to_owned() };
        let accepted: Vec<i32> = route.accepted.iter().map(|kind| *kind as i32).collect();
        let endpoints = self.route_endpoints(request.endpoints.as_ref());
        let mut message_queues = Vec::new();
        for broker in &route.brokers {
            let named = Broker {
                name: broker.broker_name.clone(),
                id: MASTER_ID,
                endpoints: Some(endpoints.clone()),
            };
            message_queues.extend(
                queue_permissions(broker.perm, broker.read_queue_nums, broker.write_queue_nums)
                    .into_iter()
                    .map(|(id, permission)| MessageQueue {
                        topic: Some(resource.clone()),
                        id,
                        permission: permission as i32,
                        broker: Some(named.clone()),
                        accept_message_types: accepted.clone(),
                    }),
            );
        }
        Ok(QueryRouteResponse { status: Some(ok()), message_queues })
    }

    /// QueryAssignment: load is balanced by the brokers through POP, so every consumer of the
    /// group gets each broker as a whole (queue −1), or each readable queue for a FIFO group.
    pub(crate) async fn query_assignment(
        &self,
        request: &QueryAssignmentRequest,
    ) -> Result<QueryAssignmentResponse, Refusal> {
        let topic = names::topic(request.topic.as_ref())?;
        let group = names::group(request.group.as_ref())?;
        let route = self.backend.route(topic).await?;
        let readable: Vec<_> = route
            .brokers
            .iter()
            .filter(|broker| perm::is_readable(broker.perm) && broker.read_queue_nums > 0)
            .collect();
        if readable.is_empty() {
            return Err(Refusal::new(Code::Forbidden, "no readable queue"));
        }
        let fifo = self
            .backend
            .group_config(group, Some(topic))
            .await
            .is_some_and(|group| group.consume_message_orderly);
        let endpoints = self.route_endpoints(request.endpoints.as_ref());
        let resource = Resource { resource_namespace: String::new(), name: topic.to_owned() };
        let mut assignments = Vec::new();
        for broker in readable {
            let named = Broker {
                name: broker.broker_name.clone(),
                id: MASTER_ID,
                endpoints: Some(endpoints.clone()),
            };
            let permission = permission_of(broker.perm);
            let queue_ids: Vec<i32> = if fifo { (0..broker.read_queue_nums).collect() } else { vec![-1] };
            assignments.extend(queue_ids.into_iter().map(|id| Assignment {
                message_queue: Some(MessageQueue {
                    topic: Some(resource.clone()),
                    id,
                    permission: permission as i32,
                    broker: Some(named.clone()),
                    accept_message_types: Vec::new(),
                }),
            }));
        }
        Ok(QueryAssignmentResponse { status: Some(ok()), assignments })
    }

    /// Where the route tells clients to go. Embedded in a broker, this endpoint's advertised
    /// address; as a proxy, the address the client used (its access point, spec §5.2) with
    /// this endpoint's port, falling back to the advertised address when the request names
    /// none.
    fn route_endpoints(&self, asked: Option<&Endpoints>) -> Endpoints {
        match (&self.backend, asked) {
            (crate::backend::Brokers::Remote(_), Some(asked)) if !asked.addresses.is_empty() => Endpoints {
                scheme: asked.scheme,
                addresses: asked
                    .addresses
                    .iter()
                    .map(|address| Address {
                        host: address.host.clone(),
                        port: i32::from(self.endpoint.port),
                    })
                    .collect(),
            },
            _ => endpoints(&self.endpoint),
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
fn queue_permissions(perm_bits: i32, read_queue_nums: i32, write_queue_nums: i32) -> Vec<(i32, Permission)> {
    let (readable, writable) = (perm::is_readable(perm_bits), perm::is_writeable(perm_bits));
    let reads = if readable { read_queue_nums.max(0) } else { 0 };
    let writes = if writable { write_queue_nums.max(0) } else { 0 };
    if reads == 0 && writes == 0 {
        let count = read_queue_nums.max(write_queue_nums).max(1);
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
    use apogee_common::topic::TopicConfig;

    fn queue_permissions_of(config: &TopicConfig) -> Vec<(i32, Permission)> {
        queue_permissions(config.perm, config.read_queue_nums, config.write_queue_nums)
    }

    #[test]
    fn queues_carry_concrete_permissions_with_real_ids() {
        let both = TopicConfig::with_queues("T", 4, 4, perm::READ_WRITE);
        assert_eq!(
            queue_permissions_of(&both),
            (0..4).map(|id| (id, Permission::ReadWrite)).collect::<Vec<_>>()
        );
        let more_writes = TopicConfig::with_queues("T", 2, 3, perm::READ_WRITE);
        assert_eq!(
            queue_permissions_of(&more_writes),
            [(0, Permission::ReadWrite), (1, Permission::ReadWrite), (2, Permission::Write)]
        );
        let read_only = TopicConfig::with_queues("T", 2, 2, perm::READ);
        assert_eq!(queue_permissions_of(&read_only), [(0, Permission::Read), (1, Permission::Read)]);
        let closed = TopicConfig::with_queues("T", 2, 2, 0);
        assert_eq!(queue_permissions_of(&closed), [(0, Permission::None), (1, Permission::None)]);
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
