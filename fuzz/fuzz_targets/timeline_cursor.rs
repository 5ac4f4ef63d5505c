//! Timeline cursors come from clients: decoding never panics, and what decodes re-encodes to a
//! cursor that decodes to the same position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masterz::store::timeline::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(cursor) = Cursor::decode(text) {
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }
});
