//! Loading a fixture byte-exactly, and the checks every test shares: the manifest's common
//! fields, print ∘ parse = id, and that our outcome is one the manifest allows.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::LazyLock;

use bytes::Bytes;
use masterz_sip::headers::{CSeq, CallIdHeader, ContentLength, Via};
use masterz_sip::message::{
    InvalidMessage, Limits, Message, ParseError, validate_request, validate_response,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

static MANIFEST: LazyLock<Vec<Value>> = LazyLock::new(|| {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json is a JSON array")
});

/// `rfc4475/wsinv.dat`, … for every `.dat` under the fixture directories.
pub(crate) fn files_on_disk() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for suite in ["rfc4475", "rfc5118"] {
        for entry in std::fs::read_dir(dir().join(suite)).expect("fixture directory") {
            let name = entry.expect("directory entry").file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".dat") {
                files.insert(format!("{suite}/{name}"));
            }
        }
    }
    files
}

/// Every `file` the manifest describes.
pub(crate) fn files_in_manifest() -> BTreeSet<String> {
    MANIFEST
        .iter()
        .map(|e| e["file"].as_str().expect("file").to_owned())
        .collect()
}

/// One torture message and what the manifest says about it.
pub(crate) struct Fixture {
    file: &'static str,
    bytes: Bytes,
    entry: &'static Value,
}

/// Loads `file` and checks that its bytes are the published ones (SHA-256 and size from the
/// manifest), so that no editor or git filter has "fixed" a line end.
pub(crate) fn fixture(file: &'static str) -> Fixture {
    let entry = MANIFEST
        .iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} is not in manifest.json"));
    let bytes = std::fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(Some(sha.as_str()), entry["sha256"].as_str(), "{file} bytes");
    assert_eq!(
        Some(bytes.len() as u64),
        entry["size"].as_u64(),
        "{file} size"
    );
    Fixture {
        file,
        bytes: Bytes::from(bytes),
        entry,
    }
}

impl Fixture {
    /// The published bytes.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The manifest's verdict: `accept`, `accept_then_reject`, `reject`, `reject_or_tolerate`
    /// or `discard`.
    pub(crate) fn expected(&self) -> &str {
        self.entry["expected"].as_str().expect("expected")
    }

    /// A value from the manifest's `facts`.
    pub(crate) fn fact(&self, key: &str) -> &Value {
        &self.entry["facts"][key]
    }

    /// Parses the published bytes as one datagram.
    pub(crate) fn parse(&self) -> Result<Message, ParseError> {
        Message::parse(self.bytes.clone(), &Limits::default())
    }

    /// The message, which must parse; the manifest's common fields are checked on it.
    pub(crate) fn message(&self) -> Message {
        let m = self
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e:?}", self.file));
        self.check(&m, true);
        m
    }

    /// The message with `from` (which must occur) replaced by `to` once: for the defects of the
    /// published archives that hide what a test is about. Content-Length is not compared with
    /// the manifest, which records the published value.
    pub(crate) fn patched(&self, from: &str, to: &str) -> Message {
        let text = String::from_utf8_lossy(&self.bytes);
        assert!(text.contains(from), "{}: no {from:?}", self.file);
        let patched = Bytes::from(text.replacen(from, to, 1));
        let m = Message::parse(patched, &Limits::default())
            .unwrap_or_else(|e| panic!("{} patched: {e:?}", self.file));
        self.check(&m, false);
        m
    }

    /// A well-formed message the element processes: parses, validates, and the manifest says
    /// it must be accepted (perhaps to be refused by the application, or dropped as a response).
    pub(crate) fn accepted(&self) -> Message {
        assert!(
            matches!(self.expected(), "accept" | "accept_then_reject" | "discard"),
            "{}: manifest expects {}",
            self.file,
            self.expected()
        );
        let m = self.message();
        assert_eq!(validate(&m), Ok(()), "{}", self.file);
        m
    }

    /// A malformed message we repair rather than refuse, as the RFC allows.
    pub(crate) fn tolerated(&self) -> Message {
        assert_eq!(self.expected(), "reject_or_tolerate", "{}", self.file);
        let m = self.message();
        assert_eq!(validate(&m), Ok(()), "{}", self.file);
        m
    }

    /// A message the parser refuses.
    pub(crate) fn rejected_by_parser(&self) -> ParseError {
        self.assert_may_refuse();
        match self.parse() {
            Ok(_) => panic!("{} parsed", self.file),
            Err(e) => e,
        }
    }

    /// A message that parses but fails validation; `m` is what parsed.
    pub(crate) fn rejected_by_validation(&self) -> (Message, InvalidMessage) {
        self.assert_may_refuse();
        let m = self.message();
        let e = validate(&m).expect_err(self.file);
        (m, e)
    }

    fn assert_may_refuse(&self) {
        assert!(
            matches!(self.expected(), "reject" | "reject_or_tolerate" | "discard"),
            "{}: manifest expects {}",
            self.file,
            self.expected()
        );
    }

    /// The manifest's common fields, then print ∘ parse = id.
    fn check(&self, m: &Message, content_length: bool) {
        let e = self.entry;
        let file = self.file;
        match e["kind"].as_str() {
            Some("request") => {
                let method = m.method().unwrap_or_else(|| panic!("{file}: a response"));
                assert_eq!(Some(method.as_str()), e["method"].as_str(), "{file}");
                if let Some(uri) = e["request_uri"].as_str() {
                    assert_eq!(m.request_uri().map(|u| u.as_str()), Some(uri), "{file}");
                }
            }
            Some("response") => {
                let status = m.status().unwrap_or_else(|| panic!("{file}: a request"));
                assert_eq!(
                    Some(u64::from(status.as_u16())),
                    e["status"].as_u64(),
                    "{file}"
                );
            }
            other => panic!("{file}: kind {other:?}"),
        }
        if let Some(call_id) = e["call_id"].as_str() {
            assert_eq!(
                m.require::<CallIdHeader>().map(|c| c.0),
                Ok(call_id),
                "{file}"
            );
        }
        if let Some([seq, method]) = e["cseq"].as_array().map(Vec::as_slice) {
            let cseq = m.require::<CSeq>().expect(file);
            assert_eq!(Some(u64::from(cseq.seq)), seq.as_u64(), "{file}");
            assert_eq!(Some(cseq.method.as_str()), method.as_str(), "{file}");
        }
        if let Some(n) = e["via_count"].as_u64() {
            let vias: Vec<Via> = m.typed_all::<Via>().collect::<Result<_, _>>().expect(file);
            assert_eq!(vias.len() as u64, n, "{file}");
        }
        if content_length {
            if let Some(n) = e["content_length"].as_u64() {
                let cl = m.require::<ContentLength>().expect(file);
                assert_eq!(u64::from(cl.0), n, "{file}");
            }
            if e["content_length_matches_body"] == true {
                assert_eq!(Some(m.body.len() as u64), e["body_len"].as_u64(), "{file}");
            }
        }
        let printed = m.to_bytes();
        let again = Message::parse(printed.clone(), &Limits::default())
            .unwrap_or_else(|err| panic!("{file}: printed message does not parse: {err:?}"));
        assert_eq!(&again, m, "{file}: print ∘ parse ≠ id");
        assert_eq!(printed.len(), m.encoded_len(), "{file}");
    }
}

/// [`validate_request`] or [`validate_response`], whichever applies.
pub(crate) fn validate(m: &Message) -> Result<(), InvalidMessage> {
    if m.is_request() {
        validate_request(m)
    } else {
        validate_response(m)
    }
}

/// Every Via value, each of which must parse.
pub(crate) fn vias(m: &Message) -> Vec<Via<'_>> {
    m.typed_all::<Via>()
        .collect::<Result<_, _>>()
        .expect("every Via parses")
}

/// A header's raw value (first occurrence), by any name.
pub(crate) fn raw<'a>(m: &'a Message, name: &'static str) -> Option<&'a str> {
    m.headers.get(name).map(|t| t.as_str())
}
