//! Loopback tests of the tokio transport: server, client, connection, router.
//!
//! Every server binds 127.0.0.1:0 and is stopped by its test; every wait is bounded.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apogee_remoting::acl::{self, SessionCredentials};
use apogee_remoting::client::{ClientConfig, RemotingClient, RemotingError};
use apogee_remoting::code::response_code;
use apogee_remoting::command::{RemotingCommand, SerializeType, CURRENT_VERSION, FLAG_ONEWAY, FLAG_RESPONSE};
use apogee_remoting::connection::Connection;
use apogee_remoting::dispatch::OVERLOAD_REMARK;
use apogee_remoting::frame::RemotingCodec;
use apogee_remoting::language::LanguageCode;
use apogee_remoting::router::Router;
use apogee_remoting::server::{RemotingServer, ServerConfig, ServerHandle};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// Echoes the body and the `k` extField.
const ECHO: i32 = 1000;
/// Sleeps `SLOW_MS` then answers SUCCESS, after telling the test it started.
const SLOW: i32 = 1001;
/// Calls the client back over the same connection.
const CALL_BACK: i32 = 1002;
/// Panics.
const PANIC: i32 = 1003;
/// Reports the request's language, version and signature check.
const INSPECT: i32 = 1004;
/// Served by the client's router.
const CLIENT_SIDE: i32 = 2000;

/// Upper bound of every test.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound of every single wait inside a test.
const STEP: Duration = Duration::from_secs(5);

async fn bounded<F: Future>(future: F) -> F::Output {
    // `RUST_LOG=apogee_remoting=debug` shows the transport's logs of a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::time::timeout(TEST_TIMEOUT, future).await.expect("test took too long")
}

/// A router with the test handlers; `started` hears from SLOW handlers as they begin.
fn router(slow_ms: u64, started: Option<mpsc::UnboundedSender<()>>) -> Router {
    let mut router = Router::new();
    router.register(ECHO, |_connection: Connection, request: RemotingCommand| async move {
        let mut response = RemotingCommand::success_for(&request).with_body(request.body.clone());
        if let Some(value) = request.ext("k") {
            response = response.with_ext("k", value);
        }
        Some(response)
    });
    router.register(SLOW, move |_connection: Connection, request: RemotingCommand| {
        let started = started.clone();
        async move {
            if let Some(started) = started {
                let _ = started.send(());
            }
            tokio::time::sleep(Duration::from_millis(slow_ms)).await;
            Some(RemotingCommand::success_for(&request).with_remark("slept"))
        }
    });
    router.register(CALL_BACK, |connection: Connection, request: RemotingCommand| async move {
        let mut call = RemotingCommand::request(CLIENT_SIDE).with_body(&b"ping"[..]);
        call.serialize_type = connection.last_serialize_type();
        let answer = match connection.invoke(call, STEP).await {
            Ok(answer) => answer,
            Err(error) => return Some(RemotingCommand::respond_to(&request, 1, Some(error.to_string()))),
        };
        Some(RemotingCommand::success_for(&request).with_body(answer.body))
    });
    router.register(PANIC, |_connection: Connection, _request: RemotingCommand| async move { explode() });
    router.register(INSPECT, |_connection: Connection, request: RemotingCommand| async move {
        let verified = match acl::access_key(&request) {
            Some("ak") => {
                acl::verify(&request, "sk").map_or_else(|error| error.to_string(), |()| "ok".into())
            }
            Some(_) => "unknown user".into(),
            None => "anonymous".into(),
        };
        Some(
            RemotingCommand::success_for(&request)
                .with_ext("language", request.language.name())
                .with_ext("version", request.version.to_string())
                .with_ext("acl", verified),
        )
    });
    router
}

fn explode() -> Option<RemotingCommand> {
    panic!("boom in handler")
}

fn loopback_config() -> ServerConfig {
    ServerConfig { listen: SocketAddr::from(([127, 0, 0, 1], 0)), ..ServerConfig::default() }
}

async fn start_server(config: ServerConfig, router: Router) -> (ServerHandle, String) {
    let server = RemotingServer::start(config, router).await.expect("server starts");
    let addr = server.local_addr().to_string();
    (server, addr)
}

fn client(serialize_type: SerializeType) -> RemotingClient {
    RemotingClient::new(ClientConfig { serialize_type, ..ClientConfig::default() }, Router::new())
}

async fn raw(addr: &str) -> Framed<TcpStream, RemotingCodec> {
    Framed::new(TcpStream::connect(addr).await.expect("connects"), RemotingCodec::default())
}

async fn next_frame(framed: &mut Framed<TcpStream, RemotingCodec>) -> RemotingCommand {
    tokio::time::timeout(STEP, framed.next())
        .await
        .expect("a frame in time")
        .expect("connection open")
        .expect("frame decodes")
}

/// Reads until the server closes the connection; fails if it sends anything instead.
async fn assert_closed_by_server(stream: &mut TcpStream) {
    let mut buffer = [0u8; 256];
    let read = tokio::time::timeout(STEP, stream.read(&mut buffer)).await.expect("server closes in time");
    match read {
        Ok(0) => {}
        Ok(count) => panic!("server sent {count} bytes instead of closing"),
        Err(error) => assert!(
            matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
            "unexpected read error {error}"
        ),
    }
}

fn echo_request(value: &str) -> RemotingCommand {
    RemotingCommand::request(ECHO).with_ext("k", value).with_body(value.as_bytes().to_vec())
}

/// A loopback server and a JSON client for it, the setup most tests start from.
struct Served {
    server: ServerHandle,
    addr: String,
    client: Arc<RemotingClient>,
}

impl Served {
    async fn start(config: ServerConfig, router: Router) -> Self {
        let (server, addr) = start_server(config, router).await;
        Self { server, addr, client: Arc::new(client(SerializeType::Json)) }
    }

    /// The answer to `request`, sent through the client.
    async fn call(&self, request: RemotingCommand) -> RemotingCommand {
        self.client.invoke(&self.addr, request, STEP).await.expect("answered")
    }

    /// The answer to an ECHO of `value`.
    async fn echo(&self, value: &str) -> RemotingCommand {
        self.call(echo_request(value)).await
    }

    /// The client's connection to the server.
    async fn connection(&self) -> Connection {
        self.client.connection(&self.addr).await.expect("connected")
    }

    /// A server whose SLOW handler sleeps `slow_ms`, and the receiver that hears each SLOW
    /// call begin (what [`Served::slow_call_in_flight`] waits on).
    async fn start_slow(config: ServerConfig, slow_ms: u64) -> (Self, mpsc::UnboundedReceiver<()>) {
        let (started, started_rx) = mpsc::unbounded_channel();
        (Self::start(config, router(slow_ms, Some(started))).await, started_rx)
    }

    /// Starts a SLOW call on its own task and returns once the server's handler has begun it.
    async fn slow_call_in_flight(
        &self,
        timeout: Duration,
        started_rx: &mut mpsc::UnboundedReceiver<()>,
    ) -> tokio::task::JoinHandle<Result<RemotingCommand, RemotingError>> {
        let client = self.client.clone();
        let addr = self.addr.clone();
        let call =
            tokio::spawn(async move { client.invoke(&addr, RemotingCommand::request(SLOW), timeout).await });
        tokio::time::timeout(STEP, started_rx.recv()).await.expect("slow handler started");
        call
    }

    async fn shutdown(self) {
        self.client.shutdown().await;
        self.server.shutdown().await;
    }
}

/// Polls `condition` every 20 ms, at most `polls` times; whether it came true.
async fn eventually(polls: usize, condition: impl Fn() -> bool) -> bool {
    for _ in 0..polls {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// A peer that the client connects to and that answers nothing by itself: the client's
/// connection and the peer's end of it.
async fn connect_to_bare_peer(client: &RemotingClient) -> (Connection, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (connecting, accepted) = tokio::join!(client.connection(&addr), listener.accept());
    (connecting.expect("connected"), accepted.expect("accepted").0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_in_both_serializations() {
    bounded(async {
        let (server, addr) = start_server(loopback_config(), router(0, None)).await;
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            // Raw frames: the response comes back in the request's serialization.
            let mut framed = raw(&addr).await;
            let mut request = echo_request("raw");
            request.opaque = 77;
            request.serialize_type = serialize_type;
            framed.send(request).await.expect("sent");
            let response = next_frame(&mut framed).await;
            assert_eq!(response.serialize_type, serialize_type);
            assert_eq!(response.opaque, 77);
            assert_eq!(response.flag & FLAG_RESPONSE, FLAG_RESPONSE);
            assert_eq!(response.code, response_code::SUCCESS);
            assert_eq!(response.version, CURRENT_VERSION);
            assert_eq!(response.ext("k"), Some("raw"));
            assert_eq!(&response.body[..], b"raw");

            // Through the client.
            let client = client(serialize_type);
            let response = client.invoke(&addr, echo_request("client"), STEP).await.expect("answered");
            assert_eq!(response.serialize_type, serialize_type);
            assert_eq!(response.ext("k"), Some("client"));
            assert_eq!(&response.body[..], b"client");
            client.shutdown().await;
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_code_is_not_supported() {
    bounded(async {
        let served = Served::start(loopback_config(), router(0, None)).await;
        let response = served.call(RemotingCommand::request(4242)).await;
        assert_eq!(response.code, response_code::REQUEST_CODE_NOT_SUPPORTED);
        assert_eq!(response.remark.as_deref(), Some(" request type 4242 not supported"));
        served.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneway_requests_get_no_response() {
    bounded(async {
        let handled = Arc::new(AtomicUsize::new(0));
        let (seen, mut seen_rx) = mpsc::unbounded_channel();
        let mut router = router(0, None);
        let counter = handled.clone();
        router.register(3000, move |_connection: Connection, request: RemotingCommand| {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = seen.send(request.flag);
            async move { Some(RemotingCommand::success_for(&request).with_remark("must not be sent")) }
        });
        let served = Served::start(loopback_config(), router).await;

        // Through the client: the flag reaches the handler.
        served.client.invoke_oneway(&served.addr, RemotingCommand::request(3000)).await.expect("queued");
        let flag = tokio::time::timeout(STEP, seen_rx.recv()).await.expect("handled").expect("flag");
        assert_eq!(flag & FLAG_ONEWAY, FLAG_ONEWAY);

        // Raw: after a oneway request, the next frame is the answer to the next request.
        let mut framed = raw(&served.addr).await;
        let mut oneway = RemotingCommand::request(3000);
        oneway.opaque = 1;
        oneway.mark_oneway();
        framed.send(oneway).await.expect("sent");
        tokio::time::timeout(STEP, seen_rx.recv()).await.expect("handled").expect("flag");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut request = echo_request("after");
        request.opaque = 2;
        framed.send(request).await.expect("sent");
        let response = next_frame(&mut framed).await;
        assert_eq!(response.opaque, 2);
        assert_eq!(handled.load(Ordering::SeqCst), 2);

        served.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_does_not_block_the_connection() {
    bounded(async {
        let (served, mut started_rx) = Served::start_slow(loopback_config(), 1_500).await;
        let connection = served.connection().await;

        let slow = served.slow_call_in_flight(STEP, &mut started_rx).await;

        let begun = Instant::now();
        let quick = served.echo("quick").await;
        assert_eq!(&quick.body[..], b"quick");
        assert!(begun.elapsed() < Duration::from_millis(1_000), "quick request waited for the slow one");
        assert_eq!(connection.pending_requests(), 1, "the slow call is still pending on the same connection");

        let slow = slow.await.expect("task").expect("answered");
        assert_eq!(slow.remark.as_deref(), Some("slept"));
        assert_eq!(served.connection().await.id(), connection.id());

        served.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_calls_the_client_back_on_its_connection() {
    bounded(async {
        let (server, addr) = start_server(loopback_config(), router(0, None)).await;
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let (served, mut served_rx) = mpsc::unbounded_channel();
            let mut client_router = Router::new();
            client_router.register(CLIENT_SIDE, move |_connection: Connection, request: RemotingCommand| {
                let _ = served.send(request.serialize_type);
                async move { Some(RemotingCommand::success_for(&request).with_body(&b"pong"[..])) }
            });
            let client = RemotingClient::new(
                ClientConfig { serialize_type, ..ClientConfig::default() },
                client_router,
            );
            let response =
                client.invoke(&addr, RemotingCommand::request(CALL_BACK), STEP).await.expect("answered");
            assert_eq!(response.code, response_code::SUCCESS, "{:?}", response.remark);
            assert_eq!(&response.body[..], b"pong");
            // The server used the type of the last request it received from us.
            assert_eq!(served_rx.recv().await, Some(serialize_type));
            client.shutdown().await;
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_remove_the_pending_call() {
    bounded(async {
        let served = Served::start(loopback_config(), router(600, None)).await;
        let connection = served.connection().await;
        let begun = Instant::now();
        let error = served
            .client
            .invoke(&served.addr, RemotingCommand::request(SLOW), Duration::from_millis(100))
            .await
            .expect_err("times out");
        let waited = begun.elapsed();
        assert!(waited >= Duration::from_millis(100) && waited < Duration::from_millis(500), "{waited:?}");
        match error {
            RemotingError::Timeout { addr: timed_out, timeout_ms } => {
                assert_eq!(timed_out, served.addr);
                assert_eq!(timeout_ms, 100);
            }
            other => panic!("expected a timeout, got {other}"),
        }
        assert_eq!(connection.pending_requests(), 0);

        // The late response is dropped; the connection keeps working.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let response = served.echo("later").await;
        assert_eq!(&response.body[..], b"later");
        assert_eq!(served.connection().await.id(), connection.id());

        // Connecting to a port nobody listens on fails fast and names the address.
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").to_string()
        };
        match served.client.invoke(&closed_port, echo_request("x"), STEP).await {
            Err(RemotingError::Connect { addr: failed, .. }) => assert_eq!(failed, closed_port),
            other => panic!("expected a connect error, got {other:?}"),
        }

        served.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_after_the_server_restarts() {
    bounded(async {
        let (server, addr) = start_server(loopback_config(), router(0, None)).await;
        let listen = server.local_addr();
        let client = client(SerializeType::Json);
        client.invoke(&addr, echo_request("one"), STEP).await.expect("answered");
        let first = client.connection(&addr).await.expect("connected");
        server.shutdown().await;

        // The old connection ends; calls fail while nobody listens.
        assert!(eventually(50, || first.is_closed()).await);
        assert!(client.invoke(&addr, echo_request("none"), STEP).await.is_err());

        // Same port again.
        let mut restarted = None;
        for _ in 0..50 {
            match RemotingServer::start(ServerConfig { listen, ..loopback_config() }, router(0, None)).await {
                Ok(server) => {
                    restarted = Some(server);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let server = restarted.expect("rebinds the same port");
        let response = client.invoke(&addr, echo_request("two"), STEP).await.expect("reconnected");
        assert_eq!(&response.body[..], b"two");
        assert_ne!(client.connection(&addr).await.expect("connected").id(), first.id());

        client.shutdown().await;
        server.shutdown().await;
    })
    .await;
}

/// Deterministic noise (xorshift32), so a failure can be replayed.
fn noise(seed: u32, count: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect()
}

fn frame_bytes(length: u32, word: u32, rest: &[u8]) -> Vec<u8> {
    let mut bytes = length.to_be_bytes().to_vec();
    bytes.extend_from_slice(&word.to_be_bytes());
    bytes.extend_from_slice(rest);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_only_that_connection() {
    bounded(async {
        let disconnects = Arc::new(AtomicUsize::new(0));
        let mut router = router(0, None);
        let counter = disconnects.clone();
        router.on_disconnect(move |_connection: &Connection| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let served = Served::start(loopback_config(), router).await;
        let addr = served.addr.clone();
        let healthy_connection = served.connection().await;

        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("length 0x80000000", frame_bytes(0x8000_0000, 0, b"{}")),
            ("length 0x7FFFFFFF", frame_bytes(0x7FFF_FFFF, 0, b"{}")),
            ("length just over 16 MiB", frame_bytes(16 * 1024 * 1024 - 3, 0, b"{}")),
            ("length below the header word", vec![0, 0, 0, 2, 0, 0]),
            ("header past the frame", frame_bytes(8, 100, b"{}{}")),
            ("broken JSON header", frame_bytes(10, 6, b"{\"code")),
            ("JSON header that is not an object", frame_bytes(7, 3, b"\"x\"")),
            ("unknown serialization type", frame_bytes(6, (5 << 24) | 2, b"{}")),
            ("binary header too short", frame_bytes(7, (1 << 24) | 3, b"\0\0\0")),
            (
                "binary header with a remark past its end",
                frame_bytes(
                    25,
                    (1 << 24) | 21,
                    &[0, 10, 0, 1, 223, 0, 0, 0, 1, 0, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0, 0, 0],
                ),
            ),
        ];
        let mut closed = 0;
        for (name, bytes) in cases {
            let mut stream = TcpStream::connect(&addr).await.expect("connects");
            stream.write_all(&bytes).await.expect(name);
            assert_closed_by_server(&mut stream).await;
            closed += 1;
            assert_eq!(served.echo(name).await.ext("k"), Some(name), "healthy connection served");
        }
        // Random bytes; the half-close makes a merely incomplete frame an error too.
        for seed in 1..=16u32 {
            let junk = noise(seed, 64 + seed as usize * 13);
            // Odd seeds: bare noise. Even seeds: noise behind a valid length, so the header
            // word and header are what is random.
            let bytes = if seed % 2 == 1 {
                junk
            } else {
                let mut framed = u32::try_from(junk.len()).expect("small").to_be_bytes().to_vec();
                framed.extend_from_slice(&junk);
                framed
            };
            let mut stream = TcpStream::connect(&addr).await.expect("connects");
            stream.write_all(&bytes).await.expect("written");
            stream.shutdown().await.expect("half-closed");
            assert_closed_by_server(&mut stream).await;
            closed += 1;
            served.echo("noise").await;
        }
        // A frame cut short by the peer's close is an error too, not a silent drop.
        let mut stream = TcpStream::connect(&addr).await.expect("connects");
        stream.write_all(&frame_bytes(100, 2, b"{}")).await.expect("written");
        stream.shutdown().await.expect("half-closed");
        assert_closed_by_server(&mut stream).await;
        closed += 1;
        assert_eq!(served.connection().await.id(), healthy_connection.id());
        // Every bad connection ran the disconnect hooks.
        eventually(100, || disconnects.load(Ordering::SeqCst) >= closed).await;
        assert_eq!(disconnects.load(Ordering::SeqCst), closed);

        served.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_answered_system_error() {
    bounded(async {
        let served = Served::start(loopback_config(), router(0, None)).await;
        let connection = served.connection().await;
        let response = served.call(RemotingCommand::request(PANIC)).await;
        assert_eq!(response.code, response_code::SYSTEM_ERROR);
        assert!(response.remark.as_deref().is_some_and(|remark| remark.contains("boom in handler")));
        let response = served.echo("alive").await;
        assert_eq!(&response.body[..], b"alive");
        assert!(!connection.is_closed());
        assert_eq!(connection.in_flight_requests(), 0);
        served.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_in_flight_are_answered_system_busy() {
    bounded(async {
        let config = ServerConfig { max_in_flight_per_connection: 2, ..loopback_config() };
        let (served, mut started_rx) = Served::start_slow(config, 800).await;
        let mut calls = Vec::new();
        for _ in 0..2 {
            calls.push(served.slow_call_in_flight(STEP, &mut started_rx).await);
        }
        let busy = served.call(RemotingCommand::request(SLOW)).await;
        assert_eq!(busy.code, response_code::SYSTEM_BUSY);
        assert_eq!(busy.remark.as_deref(), Some(OVERLOAD_REMARK));
        for call in calls {
            assert_eq!(call.await.expect("task").expect("answered").code, response_code::SUCCESS);
        }
        // Slots are given back.
        assert_eq!(served.echo("again").await.code, response_code::SUCCESS);
        served.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_hooks_run() {
    bounded(async {
        let (gone, mut gone_rx) = mpsc::unbounded_channel();
        let mut router = router(0, None);
        router.on_disconnect(move |connection: &Connection| {
            let _ = gone.send(connection.remote_addr());
        });
        let config = ServerConfig { idle_timeout_ms: 300, ..loopback_config() };
        let served = Served::start(config, router).await;
        served.echo("once").await;
        let connection = served.connection().await;
        let peer = tokio::time::timeout(STEP, gone_rx.recv()).await.expect("idle close").expect("addr");
        assert_eq!(peer, connection.local_addr());
        assert!(eventually(100, || connection.is_closed()).await);
        // The next call makes a new connection.
        served.echo("twice").await;
        served.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed() {
    bounded(async {
        let config = ServerConfig { max_connections: 1, ..loopback_config() };
        let served = Served::start(config, router(0, None)).await;
        served.echo("first").await;
        let mut second = TcpStream::connect(&served.addr).await.expect("connects");
        assert_closed_by_server(&mut second).await;
        assert_eq!(served.server.connection_count(), 1);
        served.echo("still").await;
        served.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_running_handlers_finish() {
    bounded(async {
        let (served, mut started_rx) = Served::start_slow(loopback_config(), 400).await;
        let call = served.slow_call_in_flight(STEP, &mut started_rx).await;
        let Served { server, addr, client } = served;
        let begun = Instant::now();
        server.shutdown().await;
        assert!(begun.elapsed() < Duration::from_secs(3));
        let response = call.await.expect("task").expect("answered before the close");
        assert_eq!(response.remark.as_deref(), Some("slept"));
        // Nothing listens any more.
        assert!(TcpStream::connect(&addr).await.is_err());
        client.shutdown().await;
        assert!(matches!(client.invoke(&addr, echo_request("x"), STEP).await, Err(RemotingError::Shutdown)));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_handlers_that_outlive_the_grace_period() {
    bounded(async {
        let config = ServerConfig { shutdown_grace_ms: 200, ..loopback_config() };
        let (served, mut started_rx) = Served::start_slow(config, 60_000).await;
        let call = served.slow_call_in_flight(Duration::from_secs(20), &mut started_rx).await;
        let Served { server, client, .. } = served;
        let begun = Instant::now();
        server.shutdown().await;
        assert!(begun.elapsed() < Duration::from_secs(4));
        let outcome = tokio::time::timeout(STEP, call).await.expect("call ends").expect("task");
        assert!(matches!(outcome, Err(RemotingError::Closed)), "{outcome:?}");
        client.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stamps_and_signs_requests() {
    bounded(async {
        let (server, addr) = start_server(loopback_config(), router(0, None)).await;

        // A request built without version gets Apogee's; an explicit one is kept.
        let anonymous = client(SerializeType::Json);
        let bare = RemotingCommand { code: INSPECT, ..RemotingCommand::default() };
        let response = anonymous.invoke(&addr, bare, STEP).await.expect("answered");
        assert_eq!(response.ext("language"), Some(LanguageCode::Rust.name()));
        assert_eq!(response.ext("version"), Some(CURRENT_VERSION.to_string().as_str()));
        assert_eq!(response.ext("acl"), Some("anonymous"));
        let mut explicit = RemotingCommand::request(INSPECT);
        explicit.language = LanguageCode::Go;
        explicit.version = 317;
        let response = anonymous.invoke(&addr, explicit, STEP).await.expect("answered");
        assert_eq!(response.ext("language"), Some("GO"));
        assert_eq!(response.ext("version"), Some("317"));
        anonymous.shutdown().await;

        // With credentials every request is signed, in both serializations.
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let signed = RemotingClient::new(
                ClientConfig {
                    serialize_type,
                    credentials: Some(SessionCredentials::new("ak", "sk")),
                    ..ClientConfig::default()
                },
                Router::new(),
            );
            let request = RemotingCommand::request(INSPECT).with_ext("topic", "T").with_body(&b"payload"[..]);
            let response = signed.invoke(&addr, request, STEP).await.expect("answered");
            assert_eq!(response.ext("acl"), Some("ok"));
            signed.shutdown().await;
        }
        let wrong = RemotingClient::new(
            ClientConfig {
                credentials: Some(SessionCredentials::new("ak", "nope")),
                ..ClientConfig::default()
            },
            Router::new(),
        );
        let response = wrong.invoke(&addr, RemotingCommand::request(INSPECT), STEP).await.expect("answered");
        assert_eq!(response.ext("acl"), Some("check signature failed."));
        wrong.shutdown().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_fail_before_they_are_sent() {
    bounded(async {
        let (server, addr) = start_server(loopback_config(), router(0, None)).await;
        let client = RemotingClient::new(
            ClientConfig { max_frame_bytes: 1024, ..ClientConfig::default() },
            Router::new(),
        );
        let big = RemotingCommand::request(ECHO).with_body(vec![0u8; 2048]);
        assert!(matches!(client.invoke(&addr, big, STEP).await, Err(RemotingError::Frame(_))));
        let connection = client.connection(&addr).await.expect("connected");
        assert_eq!(connection.pending_requests(), 0);
        client.invoke(&addr, echo_request("small"), STEP).await.expect("answered");
        client.shutdown().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_server_tells_recent_clients_to_go_away() {
    bounded(async {
        let (served, mut started_rx) = Served::start_slow(loopback_config(), 800).await;
        let call = served.slow_call_in_flight(STEP, &mut started_rx).await;
        let Served { server, addr, client } = served;
        let shutdown = tokio::spawn(server.shutdown());
        tokio::time::sleep(Duration::from_millis(100)).await;

        let recent = client.invoke(&addr, echo_request("recent"), STEP).await.expect("answered");
        assert_eq!(recent.code, response_code::GO_AWAY);
        assert_eq!(recent.remark.as_deref(), Some("please go away"));
        let mut old = echo_request("old");
        old.version = 399;
        let old = client.invoke(&addr, old, STEP).await.expect("answered");
        assert_eq!(old.code, response_code::SUCCESS);

        assert_eq!(call.await.expect("task").expect("answered").code, response_code::SUCCESS);
        tokio::time::timeout(STEP, shutdown).await.expect("shutdown ends").expect("task");
        client.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_cut_off_by_the_idle_timeout() {
    bounded(async {
        // A "broker" that sends the client requests and never reads the answers.
        let mut router = Router::new();
        router.register(5000, |_connection: Connection, request: RemotingCommand| async move {
            Some(RemotingCommand::success_for(&request).with_body(vec![7u8; 60 * 1024]))
        });
        let client = RemotingClient::new(
            ClientConfig {
                max_frame_bytes: 64 * 1024,
                idle_timeout_ms: 500,
                max_in_flight_per_connection: 2,
                ..ClientConfig::default()
            },
            router,
        );
        let (connection, mut broker) = connect_to_bare_peer(&client).await;
        let flood = tokio::spawn(async move {
            let mut frames = bytes::BytesMut::new();
            let mut codec = RemotingCodec::default();
            for opaque in 0..2_000 {
                let mut request = RemotingCommand::request(5000);
                request.opaque = opaque;
                tokio_util::codec::Encoder::encode(&mut codec, request, &mut frames).expect("encodes");
            }
            // The client stops reading too once it is stuck, so this write may never finish.
            let _ = tokio::time::timeout(Duration::from_secs(10), broker.write_all(&frames)).await;
            broker
        });
        let begun = Instant::now();
        let closed = eventually(500, || connection.is_closed()).await;
        assert!(closed, "stuck connection still open after {:?}", begun.elapsed());
        drop(flood.await.expect("task"));
        client.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_frame_waits_for_room_in_the_writer_queue_still_times_out() {
    bounded(async {
        // A peer that accepts and never reads: the socket fills, then the writer queue.
        let client = RemotingClient::new(
            ClientConfig { max_frame_bytes: 64 * 1024, idle_timeout_ms: 0, ..ClientConfig::default() },
            Router::new(),
        );
        let (connection, _silent_peer) = connect_to_bare_peer(&client).await;
        let big = || RemotingCommand::request(ECHO).with_body(vec![1u8; 60 * 1024]);
        // Queue oneway frames until one cannot be queued within 200 ms: the queue is full.
        let mut queued = 0;
        loop {
            match tokio::time::timeout(Duration::from_millis(200), connection.invoke_oneway(big())).await {
                Ok(result) => result.expect("queued"),
                Err(_full) => break,
            }
            queued += 1;
            assert!(queued < 10_000, "the writer queue never filled");
        }
        let begun = Instant::now();
        let error = connection.invoke(big(), Duration::from_millis(300)).await.expect_err("times out");
        let waited = begun.elapsed();
        assert!(matches!(error, RemotingError::Timeout { .. }), "expected a timeout, got {error}");
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(2), "{waited:?}");
        assert_eq!(connection.pending_requests(), 0, "the timed-out call left no waiter");
        client.shutdown().await;
    })
    .await;
}

/// Refuses requests whose `k` extField is `"deny"`, counting the ones it sees.
struct DenyGuard(Arc<AtomicUsize>);

impl apogee_remoting::router::RequestGuard for DenyGuard {
    fn refuse(&self, _connection: &Connection, request: &RemotingCommand) -> Option<RemotingCommand> {
        self.0.fetch_add(1, Ordering::Relaxed);
        (request.ext("k") == Some("deny"))
            .then(|| RemotingCommand::response(response_code::NO_PERMISSION, Some("denied by test".into())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_refuses_before_the_handler_runs() {
    bounded(async {
        let checked = Arc::new(AtomicUsize::new(0));
        let mut guarded = router(0, None);
        guarded.guard_requests(Arc::new(DenyGuard(checked.clone())));
        let (server, addr) = start_server(loopback_config(), guarded).await;
        let client = client(SerializeType::Json);
        let refused = client.invoke(&addr, echo_request("deny"), STEP).await.expect("answered");
        assert_eq!(refused.code, response_code::NO_PERMISSION);
        assert_eq!(refused.remark.as_deref(), Some("denied by test"));
        assert!(refused.body.is_empty(), "the echo handler must not have run");
        let served = client.invoke(&addr, echo_request("allow"), STEP).await.expect("answered");
        assert_eq!(served.code, response_code::SUCCESS);
        assert_eq!(&served.body[..], b"allow");
        // Codes without a handler are answered before the guard is asked.
        let unknown = client.invoke(&addr, RemotingCommand::request(4242), STEP).await.expect("answered");
        assert_eq!(unknown.code, response_code::REQUEST_CODE_NOT_SUPPORTED);
        assert_eq!(checked.load(Ordering::Relaxed), 2);
        client.shutdown().await;
        server.shutdown().await;
    })
    .await;
}

mod tls {
    use super::*;
    use apogee_remoting::tls::{self, ClientTls, ServerTls, ServerTrust, TlsMode};

    /// A server in `mode` with a generated certificate written under `dir`, and that file.
    async fn tls_server(mode: TlsMode, dir: &std::path::Path) -> (ServerHandle, String, std::path::PathBuf) {
        let cert = dir.join(format!("{mode:?}.crt"));
        let source = tls::CertificateSource::SelfSigned {
            hosts: tls::self_signed_hosts("127.0.0.1"),
            write_to: cert.clone(),
        };
        let server_tls = ServerTls::new(mode, &source).expect("server TLS");
        let config = ServerConfig { tls: Some(Arc::new(server_tls)), ..loopback_config() };
        let (server, addr) = start_server(config, router(0, None)).await;
        (server, addr, cert)
    }

    fn tls_client(trust: ServerTrust) -> RemotingClient {
        let tls = ClientTls::new(trust).expect("client TLS");
        let config =
            ClientConfig { tls: Some(Arc::new(tls)), connect_timeout_ms: 3_000, ..ClientConfig::default() };
        RemotingClient::new(config, Router::new())
    }

    async fn echoes(client: &RemotingClient, addr: &str) -> bool {
        match client.invoke(addr, echo_request("secret"), STEP).await {
            Ok(response) => response.code == response_code::SUCCESS && &response.body[..] == b"secret",
            Err(_) => false,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permissive_serves_tls_and_plaintext_on_one_port() {
        bounded(async {
            let dir = tempfile::tempdir().unwrap();
            let (server, addr, cert) = tls_server(TlsMode::Permissive, dir.path()).await;
            let verifying = tls_client(ServerTrust::Certificates(cert));
            assert!(echoes(&verifying, &addr).await, "a client trusting the written certificate");
            let trusting = tls_client(ServerTrust::Anything);
            assert!(echoes(&trusting, &addr).await, "a client in test mode");
            let plain = client(SerializeType::Json);
            assert!(echoes(&plain, &addr).await, "plaintext in permissive mode");
            for client in [verifying, trusting, plain] {
                client.shutdown().await;
            }
            server.shutdown().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enforcing_refuses_plaintext_and_clients_refuse_unknown_servers() {
        bounded(async {
            let dir = tempfile::tempdir().unwrap();
            let (server, addr, _) = tls_server(TlsMode::Enforcing, dir.path()).await;
            let trusting = tls_client(ServerTrust::Anything);
            assert!(echoes(&trusting, &addr).await, "TLS in enforcing mode");
            let plain = client(SerializeType::Json);
            let refused = plain.invoke(&addr, echo_request("x"), STEP).await;
            assert!(refused.is_err(), "plaintext must be refused: {refused:?}");
            // A raw plaintext peer sees the connection closed.
            let mut raw = TcpStream::connect(&addr).await.unwrap();
            raw.write_all(&frame_bytes(20, 0, &[0u8; 16])).await.unwrap();
            assert_closed_by_server(&mut raw).await;
            // A client that verifies against some other certificate refuses this server.
            let (other, _other_addr, other_cert) = tls_server(TlsMode::Permissive, dir.path()).await;
            let doubting = tls_client(ServerTrust::Certificates(other_cert));
            assert!(!echoes(&doubting, &addr).await, "an unknown certificate must not be believed");
            // A TLS client cannot talk to a plaintext-only server.
            let (plain_server, plain_addr) = start_server(loopback_config(), router(0, None)).await;
            assert!(!echoes(&trusting, &plain_addr).await);
            for client in [trusting, plain, doubting] {
                client.shutdown().await;
            }
            for server in [server, other, plain_server] {
                server.shutdown().await;
            }
        })
        .await;
    }
}
