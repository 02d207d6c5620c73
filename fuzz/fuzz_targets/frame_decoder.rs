//! Feeds arbitrary bytes to the remoting frame decoder, as a hostile peer would: it must
//! return frames or an error, never panic, and never allocate beyond the frame limit.
#![no_main]

use apogee_remoting::RemotingCodec;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let mut codec = RemotingCodec::default();
    let mut buffer = BytesMut::from(data);
    // Bounded: each successful decode consumes at least 8 bytes.
    for _ in 0..=data.len() / 8 {
        match codec.decode(&mut buffer) {
            Ok(Some(command)) => {
                // Whatever decodes must encode again and decode to the same command.
                let mut encoded = BytesMut::new();
                if codec.encode(&command, &mut encoded).is_ok() {
                    let again = codec.decode(&mut encoded).expect("re-decode").expect("whole frame");
                    assert_eq!(again.code, command.code);
                    assert_eq!(again.opaque, command.opaque);
                    assert_eq!(again.body, command.body);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
