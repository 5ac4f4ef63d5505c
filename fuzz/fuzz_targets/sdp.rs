//! SDP from peers (INVITE offers, answers in 200s, re-INVITEs): parsing never panics; a parsed
//! description prints to text that parses to the same description; answering it, reading it as
//! an offer or as an answer to our offer never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masterz_media::codec::{Codec, Direction};
use masterz_media::sdp::{self, LocalMedia, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = SessionDescription::parse_bytes(data) else {
        return;
    };
    let printed = parsed.to_string();
    let again = SessionDescription::parse(&printed)
        .unwrap_or_else(|e| panic!("printed SDP does not parse: {e}\n{printed}"));
    assert_eq!(again, parsed, "{printed}");
    let local = LocalMedia {
        addr: "127.0.0.1:20000".parse().unwrap(),
        session_id: 1,
        version: 1,
    };
    let _ = sdp::inspect_offer(&parsed, &Codec::ALL);
    if let Ok((answer, _)) = sdp::answer(&parsed, &local, &Codec::ALL, Direction::SendRecv) {
        assert!(SessionDescription::parse(&answer.to_string()).is_ok());
    }
    let ours = sdp::offer(&local, &Codec::ALL, true, 20, Direction::SendRecv);
    let _ = sdp::accept_answer(&ours, &parsed);
});
