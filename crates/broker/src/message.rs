//! Putting messages into the store from async code: encoding a message the broker builds
//! (a send, a retry, a delayed delivery) into a stored record, and awaiting the store's
//! callback without blocking a worker thread.

use std::net::SocketAddr;

use apogee_common::message::property::Properties;
use apogee_common::message::record::{self, RecordError};
use apogee_common::message::{Message, MessageExt};
use apogee_store::{PutRequest, PutResult, PutStatus};
use bytes::Bytes;

use crate::BrokerState;

/// A message the broker is about to store (Java `MessageExtBrokerInner`).
#[derive(Debug, Clone)]
pub struct InnerMessage {
    /// Topic it is stored under.
    pub topic: String,
    /// Queue it is stored in.
    pub queue_id: i32,
    /// User flag.
    pub flag: i32,
    /// Body as received (compressed if the sysflag says so).
    pub body: Bytes,
    /// Properties.
    pub properties: Properties,
    /// Sysflag bits.
    pub sys_flag: i32,
    /// Producer's clock.
    pub born_timestamp: i64,
    /// Producer's address.
    pub born_host: SocketAddr,
    /// Deliveries so far.
    pub reconsume_times: i32,
    /// Transaction: offset of the half message.
    pub prepared_transaction_offset: i64,
}

impl InnerMessage {
    /// A message the broker writes for itself or a test puts (pop revive records, transaction
    /// ops): no user flag or sysflag bits, born now at `born_host`, never delivered, no
    /// transaction.
    pub fn new(
        topic: String,
        queue_id: i32,
        body: Bytes,
        properties: Properties,
        born_host: SocketAddr,
    ) -> Self {
        Self {
            topic,
            queue_id,
            flag: 0,
            body,
            properties,
            sys_flag: 0,
            born_timestamp: apogee_common::time::now_ms(),
            born_host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    /// Encodes the stored record; the store fills in offsets and the store time.
    pub fn encode(&self, store_host: SocketAddr) -> Result<Vec<u8>, RecordError> {
        let ext = MessageExt {
            message: Message {
                topic: self.topic.clone(),
                flag: self.flag,
                properties: self.properties.clone(),
                body: self.body.clone(),
            },
            queue_id: self.queue_id,
            sys_flag: self.sys_flag,
            born_timestamp: self.born_timestamp,
            born_host: self.born_host,
            store_host,
            reconsume_times: self.reconsume_times,
            prepared_transaction_offset: self.prepared_transaction_offset,
            ..MessageExt::default()
        };
        let mut out = Vec::with_capacity(record::encoded_len(
            self.topic.len(),
            self.body.len(),
            self.properties.encoded_len(),
            self.sys_flag,
        ));
        record::encode(&ext, &mut out)?;
        Ok(out)
    }

    /// Builds the message to store from a stored record (retries, delayed deliveries).
    pub fn from_ext(ext: &MessageExt) -> Self {
        Self {
            topic: ext.message.topic.clone(),
            queue_id: ext.queue_id,
            flag: ext.message.flag,
            body: ext.message.body.clone(),
            properties: ext.message.properties.clone(),
            sys_flag: ext.sys_flag,
            born_timestamp: ext.born_timestamp,
            born_host: ext.born_host,
            reconsume_times: ext.reconsume_times,
            prepared_transaction_offset: ext.prepared_transaction_offset,
        }
    }
}

/// Stores encoded `records` (one record or a batch) and waits for the result.
pub async fn put_records(state: &BrokerState, records: Vec<u8>, wait_store_ok: bool) -> PutResult {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    state.store.put(
        PutRequest { records, wait_store_ok },
        Box::new(move |result| {
            let _ = sender.send(result);
        }),
    );
    receiver.await.unwrap_or(PutResult::failed(PutStatus::ServiceNotAvailable))
}

/// Encodes and stores one message.
pub async fn put_message(state: &BrokerState, message: &InnerMessage, wait_store_ok: bool) -> PutResult {
    match message.encode(state.store_host) {
        Ok(records) => put_records(state, records, wait_store_ok).await,
        Err(error) => {
            tracing::debug!(%error, topic = %message.topic, "message refused: cannot encode");
            PutResult::failed(PutStatus::MessageIllegal)
        }
    }
}
