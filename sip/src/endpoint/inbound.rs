//! What happens to a message that arrives: parse, check, stamp the top Via, match to a
//! transaction (§17.1.3, §17.2.3) and hand to it or to the TU.

use std::time::Instant;

use bytes::Bytes;

use super::reply::{
    Salvaged, reason_phrase, reconnect_destination, replace_top_via, reply_destination,
    response_to, stamped_via,
};
use super::{ClientMachine, ClientTx, Endpoint, Event, ServerMachine, ServerTransaction, ServerTx};
use crate::headers::HeaderError;
use crate::message::{Message, Method, ParseError, StatusCode, StdHeader, Text, validate_request};
use crate::transaction::ResponseInfo;
use crate::transaction::client_invite;
use crate::transaction::key::{ClientKey, RequestIds, TopVia, tag_of};
use crate::transaction::server_invite::ServerInvite;
use crate::transaction::server_non_invite::ServerNonInvite;
use crate::transport::Peer;

pub(super) fn handle(ep: &mut Endpoint, now: Instant, from: Peer, bytes: Bytes) {
    let parsed = if from.transport.is_message_oriented() {
        Message::parse(bytes.clone(), &ep.config.limits)
    } else {
        Message::parse_framed(bytes.clone(), &ep.config.limits)
    };
    match parsed {
        // A CRLF keep-alive on a datagram transport (RFC 5626 §4.4.1 uses STUN, but CRLF is
        // common): nothing to say.
        Err(ParseError::Empty) => {}
        Err(e) => reject_unparsed(ep, from, &bytes, &e),
        Ok(m) if m.is_request() => on_request(ep, now, from, m),
        Ok(m) => on_response(ep, now, from, m),
    }
}

/// The To tag of a message, shared with its buffer.
pub(super) fn to_tag(message: &Message) -> Option<Text> {
    let header = message.headers.get(StdHeader::To)?;
    Some(header.slice_ref(tag_of(header)?))
}

fn reject_unparsed(ep: &mut Endpoint, from: Peer, bytes: &[u8], error: &ParseError) {
    let reason = reason_phrase(&error.to_string());
    if let Some(salvaged) = Salvaged::read(bytes)
        && let Some(top) = salvaged.top_via()
    {
        let to = reply_destination(&top, &from);
        let tag = ep.tag();
        let mut response = salvaged.response(error.status(), &reason, &from, tag.as_str());
        ep.finish_response(&mut response);
        ep.transmit(to, response.to_bytes());
    }
    ep.events.push_back(Event::Malformed {
        from,
        error: reason,
    });
}

/// A request that parsed but fails the checks every element makes (§8.2, see
/// [`validate_request`]): answered with `status` (400, or 416 for an unsupported URI scheme)
/// and `reason` naming the culprit, unless it is an ACK (never answered) or has no usable top
/// Via (no address to answer).
fn reject_parsed(
    ep: &mut Endpoint,
    from: Peer,
    mut request: Message,
    status: StatusCode,
    reason: &str,
) {
    let reason = reason_phrase(reason);
    let is_ack = request.method() == Some(&Method::Ack);
    let destination = match TopVia::of(&request) {
        Ok(top) if !is_ack => Some((reply_destination(&top, &from), stamped_via(&top, &from))),
        _ => None,
    };
    if let Some((to, stamped)) = destination {
        if let Some(v) = stamped {
            replace_top_via(&mut request, v);
        }
        let tag = ep.tag();
        let mut response = response_to(&request, status, Some(tag.as_str()));
        response.start = crate::message::StartLine::Response {
            code: status,
            reason: Text::from(reason.clone()),
        };
        ep.finish_response(&mut response);
        ep.transmit(to, response.to_bytes());
    }
    ep.events.push_back(Event::Malformed {
        from,
        error: reason,
    });
}

fn on_request(ep: &mut Endpoint, now: Instant, from: Peer, mut request: Message) {
    if let Err(e) = validate_request(&request) {
        return reject_parsed(ep, from, request, e.status(), &e.to_string());
    }
    let bad = StatusCode::new(400).unwrap_or_else(|| unreachable!("constant in range"));
    let top = match TopVia::of(&request) {
        Ok(top) => top,
        Err(e) => return reject_parsed(ep, from, request, bad, &e.to_string()),
    };
    let ids = match RequestIds::of_request(&request, &top) {
        Ok(ids) => ids,
        Err(e) => return reject_parsed(ep, from, request, bad, &e.to_string()),
    };
    let reply_to = reply_destination(&top, &from);
    let reconnect_to = reconnect_destination(&top, &from);
    if let Some(stamped) = stamped_via(&top, &from) {
        replace_top_via(&mut request, stamped);
    }

    let method = request.method().cloned().unwrap_or(Method::Options);
    let existing = ep.server_keys.get(&ids.key).copied();
    match (method, existing) {
        (Method::Ack, Some(id)) => {
            let to_tu = match ep.servers.get_mut(&id).map(|s| &mut s.machine) {
                Some(ServerMachine::Invite(m)) => m.on_ack(now),
                // A non-INVITE request can share an INVITE's key only by misuse; let the TU see.
                _ => true,
            };
            if to_tu {
                ep.events.push_back(Event::Ack { request, from });
            }
            ep.settle_server(id);
        }
        (Method::Ack, None) => ep.events.push_back(Event::Ack { request, from }),
        (_, Some(id)) => {
            // A retransmission: answered from the transaction, never shown to the TU again.
            let resend = ep.servers.get(&id).and_then(|s| match &s.machine {
                ServerMachine::Invite(m) => m.on_request(),
                ServerMachine::NonInvite(m) => m.on_request(),
            });
            if let Some(bytes) = resend {
                ep.transmit(reply_to, bytes);
            }
        }
        (Method::Cancel, None) => on_cancel(ep, now, from, request, ids, reply_to, reconnect_to),
        (method, None) => {
            let id = ep.next_id();
            let reliable = from.transport.is_reliable();
            let machine = if method == Method::Invite {
                // 100 Trying at once (§17.2.1 allows waiting 200 ms for the TU; see
                // `ServerInvite` for why we do not).
                let trying = response_to(
                    &request,
                    StatusCode::new(100).unwrap_or_else(|| unreachable!("constant in range")),
                    None,
                );
                let mut trying = trying;
                ep.finish_response(&mut trying);
                let bytes = trying.to_bytes();
                ep.transmit(reply_to, bytes.clone());
                ServerMachine::Invite(ServerInvite::new(ep.timers, reliable, Some(bytes)))
            } else {
                ServerMachine::NonInvite(ServerNonInvite::new(ep.timers, reliable))
            };
            let kept = matches!(machine, ServerMachine::Invite(_)).then(|| request.clone());
            insert_server(ep, id, ids, kept, machine, reply_to, reconnect_to);
            ep.events.push_back(Event::Request {
                tx: ServerTx(id),
                request,
                from,
            });
        }
    }
}

fn insert_server(
    ep: &mut Endpoint,
    id: u64,
    ids: RequestIds,
    request: Option<Message>,
    machine: ServerMachine,
    reply_to: Peer,
    reconnect_to: Peer,
) {
    ep.server_keys.insert(ids.key.clone(), id);
    ep.servers.insert(
        id,
        ServerTransaction {
            reply_to,
            reconnect_to,
            request,
            key: ids.key,
            machine,
            to_tag: None,
            scheduled: None,
        },
    );
}

/// A new CANCEL (§9.2): answered by the endpoint in its own transaction — 200 when it matches
/// an INVITE transaction, 481 otherwise — and reported to the TU when the INVITE still awaits
/// its final response.
fn on_cancel(
    ep: &mut Endpoint,
    now: Instant,
    from: Peer,
    cancel: Message,
    ids: RequestIds,
    reply_to: Peer,
    reconnect_to: Peer,
) {
    let invite = ids
        .cancels
        .as_ref()
        .and_then(|k| ep.server_keys.get(k).copied())
        .and_then(|id| ep.servers.get(&id).map(|s| (id, s)));
    let (code, to_tag, cancelled) = match invite {
        Some((id, s)) => {
            let proceeding = matches!(&s.machine, ServerMachine::Invite(m) if m.is_proceeding());
            (200, s.to_tag.clone(), proceeding.then_some(id))
        }
        None => (481, None, None),
    };
    let to_tag = match (ids.to_tag.is_some(), to_tag) {
        (true, _) => None,
        (false, Some(t)) => Some(t),
        (false, None) => Some(Text::from(ep.tag().as_str())),
    };
    let code = StatusCode::new(code).unwrap_or_else(|| unreachable!("constant in range"));
    let mut response = response_to(&cancel, code, to_tag.as_deref());
    ep.finish_response(&mut response);
    let bytes = response.to_bytes();

    let id = ep.next_id();
    let mut machine = ServerNonInvite::new(ep.timers, from.transport.is_reliable());
    // A fresh transaction in Trying accepts any final response.
    let _ = machine.on_tu_response(now, code.as_u16(), &bytes);
    insert_server(
        ep,
        id,
        ids,
        None,
        ServerMachine::NonInvite(machine),
        reply_to,
        reconnect_to,
    );
    ep.transmit(reply_to, bytes);
    ep.settle_server(id);
    if let Some(invite) = cancelled {
        ep.events.push_back(Event::Cancelled {
            tx: ServerTx(invite),
            cancel,
        });
    }
}

fn on_response(ep: &mut Endpoint, now: Instant, from: Peer, response: Message) {
    let Some(code) = response.status() else {
        return;
    };
    let key = match ClientKey::of_response(&response) {
        Ok(Some(key)) => key,
        Ok(None) => return ep.events.push_back(Event::StrayResponse { response, from }),
        Err(e) => {
            return ep.events.push_back(Event::Malformed {
                from,
                error: reason_phrase(&e.to_string()),
            });
        }
    };
    // What the TU relies on in any response. The full `validate_response` would parse From,
    // To and every Via of every response (a sixth of a transaction's cost); the TU parses the
    // ones it uses and handles their errors there.
    if let Some(missing) = [StdHeader::From, StdHeader::To, StdHeader::CallId]
        .into_iter()
        .find(|h| !response.headers.contains(*h))
    {
        return ep.events.push_back(Event::Malformed {
            from,
            error: HeaderError::missing(missing).to_string(),
        });
    }
    let Some(&id) = ep.client_keys.get(&key) else {
        return ep.events.push_back(Event::StrayResponse { response, from });
    };
    let Some(c) = ep.clients.get_mut(&id) else {
        return ep.events.push_back(Event::StrayResponse { response, from });
    };
    // The fork and RSeq only tell provisional responses apart.
    let provisional = code.is_provisional();
    let info = ResponseInfo {
        code: code.as_u16(),
        to_tag: provisional.then(|| to_tag(&response)).flatten(),
        rseq: provisional
            .then(|| response.headers.get(StdHeader::RSeq).cloned())
            .flatten(),
    };
    let reaction = match &mut c.machine {
        ClientMachine::Invite(m) => {
            let (request, user_agent) = (&c.request, &ep.user_agent);
            m.on_response(now, info, || {
                let mut ack = client_invite::build_ack(request, &response);
                if let Some(ua) = user_agent {
                    ack.headers.push(StdHeader::UserAgent, ua.clone());
                }
                ack.to_bytes()
            })
        }
        ClientMachine::NonInvite(m) => m.on_response(now, info),
    };
    let peer = c.peer;
    if let Some(ack) = reaction.send {
        ep.transmit(peer, ack);
    }
    if reaction.to_tu {
        ep.events.push_back(Event::Response {
            tx: ClientTx(id),
            response,
        });
    }
    if let Some(cancel) = reaction.send_cancel {
        ep.send_cancel(now, id, cancel);
    }
    ep.settle_client(id);
}
