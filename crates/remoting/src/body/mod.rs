//! Typed request and response bodies, named like the Java classes they mirror.
//!
//! Every body is a serde struct meant for [`crate::fastjson`]: properties are camelCase as the
//! Java getters name them and declared in alphabetical order (fastjson's output order; the
//! writer sorts them anyway), properties Java leaves out when null are `Option`s skipped when
//! `None`, and every struct takes its defaults for members a peer leaves out. Enum properties
//! accept unknown names without failing the body (see [`enums`]).
//!
//! ```
//! use apogee_remoting::body::GetConsumerListByGroupResponseBody;
//! use apogee_remoting::fastjson::{self, Dialect};
//!
//! let body = GetConsumerListByGroupResponseBody { consumer_id_list: vec!["10.0.0.5@1".into()] };
//! let bytes = fastjson::to_vec(&body, Dialect::Fastjson).unwrap();
//! assert_eq!(bytes, br#"{"consumerIdList":["10.0.0.5@1"]}"#);
//! assert_eq!(fastjson::from_slice::<GetConsumerListByGroupResponseBody>(&bytes).unwrap(), body);
//! ```

pub mod admin;
pub mod consumer;
pub mod enums;
pub mod heartbeat;
pub mod namesrv;
pub mod pop;
pub mod route;
pub mod static_topic;

#[cfg(test)]
mod tests;

pub use admin::{
    Connection, ConsumeStats, ConsumerConnection, CustomizedRetryPolicy, ExponentialRetryPolicy, GroupList,
    GroupRetryPolicy, OffsetWrapper, ProducerConnection, SimpleSubscriptionData, SubscriptionGroupConfig,
    SubscriptionGroupWrapper, TopicOffset, TopicStatsTable,
};
pub use consumer::{
    CheckClientRequestBody, GetConsumerListByGroupResponseBody, LockBatchRequestBody, LockBatchResponseBody,
    ResetOffsetBody, UnlockBatchRequestBody,
};
pub use enums::{ConsumeFromWhere, ConsumeType, ExpressionType, GroupRetryPolicyType, MessageModel};
pub use heartbeat::{ConsumerData, HeartbeatData, ProducerData, SubscriptionData};
pub use namesrv::{
    KVTable, RegisterBrokerBody, TopicConfigAndMappingSerializeWrapper, TopicConfigSerializeWrapper,
    TopicList,
};
pub use route::{BrokerData, ClusterInfo, QueueData, TopicRouteData};
pub use static_topic::{LogicQueueMappingItem, TopicQueueMappingDetail, TopicQueueMappingInfo};
