//! The admin client's view of the client instance: requests to brokers and NameServers, behind
//! a trait so the admin calls can be exercised over a direct remoting connection in tests.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use apogee_remoting::RemotingCommand;

use crate::instance::ClientInstance;
use crate::ClientError;

/// A boxed, sendable future: what the object-safe methods of [`AdminLink`] return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the admin client needs from the client instance.
pub(crate) trait AdminLink: Send + Sync + 'static {
    /// Timeout of admin calls (`mqClientApiTimeout`).
    fn api_timeout(&self) -> Duration;
    /// The configured NameServer addresses (`;`-separated in the settings), for the calls
    /// that must reach every one of them.
    fn namesrv_addrs(&self) -> Vec<String>;
    /// A request to a broker (or to one NameServer by address); error responses come back as
    /// responses.
    fn invoke<'a>(
        &'a self,
        addr: &'a str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<RemotingCommand, ClientError>>;
    /// A request to any NameServer (failing over to the next).
    fn invoke_namesrv(
        &self,
        request: RemotingCommand,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<RemotingCommand, ClientError>>;
}

/// Splits a `;`-separated NameServer list, dropping blanks.
pub(crate) fn split_namesrv_addrs(list: &str) -> Vec<String> {
    list.split(';').map(str::trim).filter(|addr| !addr.is_empty()).map(str::to_owned).collect()
}

impl AdminLink for ClientInstance {
    fn api_timeout(&self) -> Duration {
        self.config().api_timeout
    }

    fn namesrv_addrs(&self) -> Vec<String> {
        split_namesrv_addrs(&self.config().namesrv_addr)
    }

    fn invoke<'a>(
        &'a self,
        addr: &'a str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<RemotingCommand, ClientError>> {
        Box::pin(ClientInstance::invoke(self, addr, request, timeout))
    }

    fn invoke_namesrv(
        &self,
        request: RemotingCommand,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<RemotingCommand, ClientError>> {
        Box::pin(ClientInstance::invoke_namesrv(self, request, timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::split_namesrv_addrs;

    #[test]
    fn namesrv_lists_are_split_on_semicolons() {
        assert_eq!(split_namesrv_addrs("a:1; b:2;;"), ["a:1", "b:2"]);
        assert!(split_namesrv_addrs(" ").is_empty());
    }
}
