//! (stub, owned by the lite-pull/admin work) Admin calls.

/// Admin client.
#[derive(Debug)]
pub struct Admin {}
