//! What `PushConsumer::builder().start` refuses before it touches the network.

use apogee_client::{ClientError, ConsumeResult, PushConsumer};

async fn start(
    builder: apogee_client::consumer::push::PushConsumerBuilder,
) -> Result<PushConsumer, ClientError> {
    builder.start(|_messages| async { ConsumeResult::Success }).await
}

#[tokio::test]
async fn invalid_settings_are_refused() {
    let base = || PushConsumer::builder().namesrv("127.0.0.1:1").subscribe("T", "*");
    for builder in [
        base(),
        base().group("DEFAULT_CONSUMER"),
        base().group("has space"),
        base().group("g").consume_thread_count(0),
        base().group("g").consume_batch_max_size(2000),
        base().group("g").pull_batch_size(0),
        base().group("g").pull_threshold_for_queue(0),
        base().group("g").pull_threshold_size_for_queue_mib(0),
        base().group("g").subscribe("bad topic", "*"),
        base().group("g").subscribe("T2", "||"),
        base().group("g").subscribe_sql92("T3", " "),
    ] {
        let error = start(builder).await.expect_err("refused");
        assert!(matches!(error, ClientError::IllegalArgument(_)), "{error:?}");
    }
}
