//! URIs from Request-URIs and headers: parsing never panics; the printed URI parses to the same
//! value; and a URI rebuilt from its parsed parts parses to the same parts (the parser splits
//! user, password, host, port, parameters and headers consistently).
#![no_main]

use libfuzzer_sys::fuzz_target;
use masterz_sip::uri::{Scheme, Uri};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = Uri::parse(text) else { return };
    let printed = uri.to_string();
    assert_eq!(Uri::parse(&printed), Ok(uri));
    let _ = uri.user_unescaped();
    let _ = uri.transport();
    let _ = uri.params.iter().count();

    let rebuilt = match uri.scheme {
        Scheme::Other(_) => return,
        Scheme::Tel => {
            let mut s = format!("tel:{}", uri.user.unwrap_or_default());
            if !uri.params.as_str().is_empty() {
                s.push(';');
                s.push_str(uri.params.as_str());
            }
            s
        }
        Scheme::Sip | Scheme::Sips => {
            let mut s = String::from(if uri.scheme == Scheme::Sip {
                "sip:"
            } else {
                "sips:"
            });
            if let Some(user) = uri.user {
                s.push_str(user);
                if let Some(password) = uri.password {
                    s.push(':');
                    s.push_str(password);
                }
                s.push('@');
            }
            let host = uri.host.expect("a sip URI has a host");
            s.push_str(&host.to_string());
            if let Some(port) = uri.port {
                s.push_str(&format!(":{port}"));
            }
            if !uri.params.as_str().is_empty() {
                s.push(';');
                s.push_str(uri.params.as_str());
            }
            if let Some(headers) = uri.headers {
                s.push('?');
                s.push_str(headers);
            }
            s
        }
    };
    let again = Uri::parse(&rebuilt).unwrap_or_else(|e| panic!("{rebuilt:?} from {text:?}: {e}"));
    assert_eq!(
        (
            again.scheme,
            again.user,
            again.password,
            again.host,
            again.port
        ),
        (uri.scheme, uri.user, uri.password, uri.host, uri.port),
        "{rebuilt:?} from {text:?}"
    );
    assert_eq!(again.params, uri.params, "{rebuilt:?} from {text:?}");
    assert_eq!(again.headers, uri.headers, "{rebuilt:?} from {text:?}");
});
