//! JSON header coding, the largest per-request cost of the remoting layer after the kernel:
//! every send request and every send response passes through it once on each side.
//!
//! Run: `cargo bench -p apogee-remoting --bench header`

use apogee_remoting::header::send::{
    decode_send_message_header, SendMessageRequestHeader, SendMessageResponseHeader,
};
use apogee_remoting::{json_header, RemotingCommand};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// Properties as a Java producer sends them: `UNIQ_KEY`, `WAIT` and `TAGS`, each pair ended by
/// U+0002 and split by U+0001 (both escaped in JSON).
const PROPERTIES: &str =
    "UNIQ_KEY\u{1}7F0000010B3418B4AAC25F7A1C2D0000\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}";

fn send_request() -> RemotingCommand {
    SendMessageRequestHeader::plain(
        "please_rename_unique_group_name",
        "BenchTopic",
        3,
        PROPERTIES,
        "broker-a",
    )
    .into_v2_request(vec![b'x'; 128])
}

fn send_response() -> RemotingCommand {
    let mut response = RemotingCommand::response(0, None).with_header(&SendMessageResponseHeader {
        msg_id: "7F00000100002A9F0000000000A1B2C3".into(),
        queue_id: 3,
        queue_offset: 123_456,
        transaction_id: Some("7F0000010B3418B4AAC25F7A1C2D0000".into()),
        batch_uniq_id: None,
        recall_handle: None,
    });
    response.ext_fields_mut().insert("MSG_REGION", "DefaultRegion");
    response.ext_fields_mut().insert("TRACE_ON", "true");
    response.opaque = 42;
    response
}

fn headers(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_header");
    group.throughput(Throughput::Elements(1));
    for (name, command) in [("send_request", send_request()), ("send_response", send_response())] {
        let mut encoded = Vec::new();
        json_header::encode(&command, &mut encoded);
        group.bench_function(format!("decode/{name}"), |bench| {
            bench.iter(|| json_header::decode(black_box(&encoded)).unwrap())
        });
        let mut out = Vec::with_capacity(encoded.len());
        group.bench_function(format!("encode/{name}"), |bench| {
            bench.iter(|| {
                out.clear();
                json_header::encode(black_box(&command), &mut out);
                out.len()
            })
        });
    }
    // What the broker does with a send header beyond the JSON: read the typed header out of
    // `extFields`, and build the response's `extFields`.
    let request = send_request();
    group.bench_function("typed/send_request", |bench| {
        bench.iter(|| decode_send_message_header(black_box(&request)).unwrap())
    });
    group.bench_function("typed/send_response", |bench| bench.iter(send_response));
    group.finish();
}

criterion_group!(benches, headers);
criterion_main!(benches);
