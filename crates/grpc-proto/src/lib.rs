//! The RocketMQ 5.x protocol, `apache.rocketmq.v2`, compiled from the repository's `proto/`
//! at build time (protox, no system `protoc`): the message types, the server trait the
//! endpoint (`apogee-grpc`) implements and the client stubs `apogee bench` and the tests
//! call it with. Kept apart from the endpoint so that a client needs neither the broker nor
//! the endpoint to speak the protocol.
#![allow(missing_docs, clippy::all, clippy::pedantic, missing_debug_implementations, unreachable_pub)]

tonic::include_proto!("apache.rocketmq.v2");
