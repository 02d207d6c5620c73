//! RECALL_MESSAGE as every client path sends it (the producer, the proxy's relay): one request
//! builder and one answer reader, so both speak it alike.

use apogee_remoting::header::send::{RecallMessageRequestHeader, RecallMessageResponseHeader};
use apogee_remoting::{request_code, response_code, RemotingCommand};

use crate::error::ClientError;

/// The RECALL_MESSAGE request for `recall_handle` of `topic`, addressed to `broker_name`.
pub(crate) fn recall_request(
    topic: &str,
    recall_handle: &str,
    broker_name: &str,
    producer_group: Option<&str>,
) -> RemotingCommand {
    let header = RecallMessageRequestHeader {
        producer_group: producer_group.map(str::to_owned),
        topic: topic.to_owned(),
        recall_handle: recall_handle.to_owned(),
        bname: Some(broker_name.to_owned()),
    };
    RemotingCommand::request(request_code::RECALL_MESSAGE).with_header(&header)
}

/// The recalled message's id from the broker at `addr`, or the broker's refusal.
pub(crate) fn recalled_id(response: &RemotingCommand, addr: &str) -> Result<String, ClientError> {
    if response.code != response_code::SUCCESS {
        return Err(ClientError::from_response(response, addr));
    }
    let answer: RecallMessageResponseHeader = response
        .decode_header()
        .map_err(|error| ClientError::Malformed(format!("recall response from {addr}: {error}")))?;
    Ok(answer.msg_id)
}
