//! Building the messages call control sends: INVITEs for new legs, responses with a leg's To
//! tag, NOTIFYs with a sipfrag, SDP bodies.

use masterz_media::sdp::SessionDescription;
use masterz_sip::endpoint::response_to;
use masterz_sip::message::{Message, Method, StdHeader, Text};
use masterz_sip::transport::Transport;

use super::super::{OsRandom, SipContext, status};
use super::CallSettings;

/// `application/sdp`.
pub(crate) const SDP: &str = "application/sdp";

/// Methods we accept in calls, for Allow.
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO, REFER, NOTIFY";

/// A response to `request` with our Server header and, when given, the leg's To tag.
pub(crate) fn reply(ctx: &SipContext, request: &Message, code: u16, tag: Option<&str>) -> Message {
    let mut r = response_to(request, status(code), tag);
    r.headers.push(StdHeader::Server, ctx.server_header.clone());
    r
}

/// A response with a reason phrase of ours.
pub(crate) fn reply_reason(
    ctx: &SipContext,
    request: &Message,
    code: u16,
    tag: Option<&str>,
    reason: &str,
) -> Message {
    let mut r = reply(ctx, request, code, tag);
    if let masterz_sip::message::StartLine::Response { reason: phrase, .. } = &mut r.start {
        let clean: String = reason.chars().filter(|c| !c.is_control()).collect();
        *phrase = Text::from(clean);
    }
    r
}

/// Attaches an SDP body.
pub(crate) fn with_sdp(mut m: Message, sdp: &SessionDescription) -> Message {
    m.set_body(sdp.to_string().into_bytes(), Some(SDP));
    m
}

/// `host:port` we are reached at over `transport` (for Contact and From).
pub(crate) fn local_host(ctx: &SipContext, transport: Transport) -> String {
    ctx.local_for(transport)
        .or_else(|| ctx.local_for(Transport::Udp))
        .unwrap_or("127.0.0.1")
        .to_owned()
}

/// Our Contact for a leg over `transport`.
pub(crate) fn contact(ctx: &SipContext, transport: Transport) -> String {
    let host = local_host(ctx, transport);
    match transport {
        Transport::Udp => format!("<sip:masterz@{host}>"),
        Transport::Tls => format!("<sips:masterz@{host}>"),
        t => format!(
            "<sip:masterz@{host};transport={}>",
            t.as_str().to_ascii_lowercase()
        ),
    }
}

/// What a new outgoing INVITE needs.
pub(crate) struct NewInvite<'a> {
    pub(crate) request_uri: &'a str,
    pub(crate) to_uri: &'a str,
    /// The user shown as caller, and its display name.
    pub(crate) from_user: &'a str,
    pub(crate) from_name: Option<&'a str>,
    pub(crate) transport: Transport,
    pub(crate) sdp: &'a SessionDescription,
}

/// A new INVITE (outside any dialog) with a fresh Call-ID and From tag; the transaction layer
/// adds the Via.
pub(crate) fn invite(
    ctx: &SipContext,
    settings: &CallSettings,
    n: &NewInvite<'_>,
) -> (Message, String) {
    let host = local_host(ctx, n.transport);
    let bare_host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    let call_id = masterz_sip::ident::CallId::generate(&mut OsRandom, bare_host).to_string();
    let tag = masterz_sip::ident::Tag::generate(&mut OsRandom);
    let mut m = Message::request(Method::Invite, Text::from(n.request_uri.to_owned()));
    m.headers.push(StdHeader::MaxForwards, "70");
    let from = match n.from_name {
        Some(name) => format!(
            "{} <sip:{}@{bare_host}>;tag={tag}",
            masterz_sip::headers::quote(name),
            n.from_user
        ),
        None => format!("<sip:{}@{bare_host}>;tag={tag}", n.from_user),
    };
    m.headers.push(StdHeader::From, from);
    m.headers.push(StdHeader::To, format!("<{}>", n.to_uri));
    m.headers.push(StdHeader::CallId, call_id.clone());
    m.headers.push(StdHeader::CSeq, "1 INVITE");
    m.headers
        .push(StdHeader::Contact, contact(ctx, n.transport));
    m.headers.push(StdHeader::Allow, ALLOW);
    m.headers.push(StdHeader::Supported, "timer, replaces");
    m.headers.push(
        StdHeader::SessionExpires,
        format!("{};refresher=uac", settings.session_expires),
    );
    m.headers
        .push(StdHeader::MinSe, settings.min_se.to_string());
    (with_sdp(m, n.sdp), call_id)
}

/// A NOTIFY body reporting a transfer's progress (RFC 3515 §2.4.5): a status line.
pub(crate) fn sipfrag(code: u16) -> String {
    let reason = status(code).canonical_reason();
    format!("SIP/2.0 {code} {reason}\r\n")
}
