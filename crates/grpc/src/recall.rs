//! RecallMessage (spec §5.12): a producer cancels a delay message it sent, with the recall
//! handle of the send. Embedded, the broker core stores the delete marker; as a proxy, the
//! recall goes to the broker the handle names.

use crate::backend::{check_type, Backend};
use crate::context::CallContext;
use crate::pb::{MessageType, RecallMessageRequest, RecallMessageResponse};
use crate::status::{ok, Refusal};
use crate::{names, Messaging};

impl Messaging {
    /// RecallMessage: the topic must take delay messages when the type check is on.
    pub(crate) async fn recall_message(
        &self,
        context: &CallContext,
        request: &RecallMessageRequest,
    ) -> Result<RecallMessageResponse, Refusal> {
        let topic = names::topic(request.topic.as_ref())?;
        if self.settings.enable_topic_message_type_check {
            let route = self.backend.route(topic).await?;
            check_type(&route.accepted, Some(MessageType::Delay))?;
        }
        let message_id = self.backend.recall(context, topic, &request.recall_handle).await?;
        Ok(RecallMessageResponse { status: Some(ok()), message_id })
    }
}
