//! (stub, owned by the lite-pull/admin work) The lite pull consumer.

/// A lite pull consumer.
#[derive(Debug)]
pub struct LitePullConsumer {}
