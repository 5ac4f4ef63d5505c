//! The offer/answer model (RFC 3264) for one audio stream.

use std::net::SocketAddr;

use super::{
    DEFAULT_PTIME_MS, LocalMedia, MAX_PTIME_MS, MediaDescription, Negotiated, Origin, RtpMap,
    SdpError, SessionDescription, TELEPHONE_EVENT_PT,
};
use crate::codec::{Codec, Direction};

/// The events we relay when we offer telephone-event: DTMF 0–9, `*`, `#`, A–D and flash (16).
const TELEPHONE_EVENTS: &str = "0-16";

/// Builds an offer: one `RTP/AVP` audio m-line with `codecs` in order (static payload types,
/// each with its `a=rtpmap`), `telephone-event/8000` as payload type [`TELEPHONE_EVENT_PT`]
/// (events 0–16) when `telephone_event`, `a=ptime` (left out when `ptime_ms` is 0) and
/// `direction`. RTCP is on the next port, so no `a=rtcp` is written. Repeated codecs are
/// offered once; `codecs` should not be empty.
pub fn offer(
    local: &LocalMedia,
    codecs: &[Codec],
    telephone_event: bool,
    ptime_ms: u32,
    direction: Direction,
) -> SessionDescription {
    let mut m = media_line("audio", local.addr.port(), "RTP/AVP");
    for (i, &codec) in codecs.iter().enumerate() {
        if codecs[..i].contains(&codec) {
            continue;
        }
        push_codec(&mut m, codec, codec.static_payload_type());
    }
    if telephone_event {
        push_telephone_event(&mut m, TELEPHONE_EVENT_PT, Some(TELEPHONE_EVENTS));
    }
    m.ptime = (ptime_ms > 0).then_some(ptime_ms);
    m.direction = Some(direction);
    session(local, vec![m])
}

/// Answers `offer` (RFC 3264 §6).
///
/// The first audio m-line that is not disabled (port 0), uses plain RTP (`RTP/AVP` or
/// `RTP/AVPF`, see [`MediaDescription::is_plain_rtp`]) and offers a codec in `supported` is
/// accepted with the first such codec in the offer's order and the offer's payload type for it,
/// plus `telephone-event/8000` with the offer's payload type and `a=fmtp` if offered. The answer's
/// direction is `want` within the reverse of the offer's (offer `sendonly` → at most
/// `recvonly`; `inactive` → `inactive`; `c=0.0.0.0` counts as `sendonly`). Its `a=ptime` repeats
/// the offer's (default 20). Every other m-line is rejected with port 0 in its place.
///
/// Errors (answer 488, see [`SdpError::sip_status`]): [`SdpError::NoCommonCodec`] when plain
/// RTP audio is offered without a codec in `supported`, else
/// [`SdpError::UnsupportedProtocol`] when audio is offered only over other transports, else
/// [`SdpError::NoAudio`].
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    supported: &[Codec],
    want: Direction,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    let (index, choice) = choose(offer, supported)?;
    let negotiated = choice.negotiated(offer);
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i != index {
                return rejected(m);
            }
            let mut a = media_line("audio", local.addr.port(), &m.proto);
            push_codec(&mut a, choice.codec, choice.payload_type);
            if let Some(pt) = choice.telephone_event {
                push_telephone_event(&mut a, pt, m.fmtp(pt));
            }
            a.ptime = Some(negotiated.ptime_ms);
            a.direction = Some(want.intersect(negotiated.remote_direction.reverse()));
            a
        })
        .collect();
    Ok((session(local, media), negotiated))
}

/// Reads the answer to an offer we made (or forwarded): for the first audio m-line of `offer`
/// that is active, plain RTP and accepted by `answer`, the codec is the first in the answer's
/// list that the offer has, sent with the answer's payload type; telephone events when both
/// list them; the remote address (media-level `c=`, else session-level; `None` for
/// `c=0.0.0.0`), ptime and direction from the answer.
///
/// Errors: [`SdpError::MediaCountMismatch`] when the m-lines do not pair up,
/// [`SdpError::NoAudio`] when `offer` has no such audio m-line, [`SdpError::AudioRejected`]
/// when the answer rejects them all, [`SdpError::NoCommonCodec`] when it accepts one with
/// codecs that were not offered.
pub fn accept_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, SdpError> {
    if offer.media.len() != answer.media.len() {
        return Err(SdpError::MediaCountMismatch {
            offer: offer.media.len(),
            answer: answer.media.len(),
        });
    }
    let mut error = SdpError::NoAudio;
    let pairs = offer.media.iter().zip(&answer.media);
    for (ours, theirs) in pairs.filter(|(ours, _)| is_active_audio(ours)) {
        if theirs.port == 0 {
            if error == SdpError::NoAudio {
                error = SdpError::AudioRejected;
            }
            continue;
        }
        let offered = |codec: Codec| ours.payload_types().any(|pt| ours.codec(pt) == Some(codec));
        let Some((payload_type, codec)) = first_codec(theirs, offered) else {
            error = SdpError::NoCommonCodec;
            continue;
        };
        let choice = Choice {
            media: theirs,
            codec,
            payload_type,
            telephone_event: ours.telephone_event().and(theirs.telephone_event()),
        };
        return Ok(choice.negotiated(answer));
    }
    Err(error)
}

/// Reads a received offer without answering it: what [`answer`] would agree to, from the
/// offerer's side (its codec and payload types, address, ptime and direction). Errors like
/// [`answer`].
pub fn inspect_offer(
    offer: &SessionDescription,
    supported: &[Codec],
) -> Result<Negotiated, SdpError> {
    Ok(choose(offer, supported)?.1.negotiated(offer))
}

/// The audio stream picked from a description.
struct Choice<'a> {
    media: &'a MediaDescription,
    codec: Codec,
    payload_type: u8,
    telephone_event: Option<u8>,
}

impl Choice<'_> {
    /// What was agreed, with the remote side described by `sdp` (which holds `self.media`).
    fn negotiated(&self, sdp: &SessionDescription) -> Negotiated {
        let m = self.media;
        let ip = sdp.connection_of(m);
        let mut remote_direction = sdp.direction_of(m);
        if ip.is_some_and(|ip| ip.is_unspecified()) {
            // RFC 2543 hold: "do not send to me" (RFC 3264 §8.4).
            remote_direction = remote_direction.intersect(Direction::SendOnly);
        }
        let remote_rtp = ip
            .filter(|ip| !ip.is_unspecified() && m.port != 0)
            .map(|ip| SocketAddr::new(ip, m.port));
        let remote_rtcp = remote_rtp.and_then(|rtp| match m.rtcp {
            Some((port, addr)) => Some(SocketAddr::new(addr.unwrap_or(rtp.ip()), port)),
            None => rtp
                .port()
                .checked_add(1)
                .map(|port| SocketAddr::new(rtp.ip(), port)),
        });
        let session_ptime = sdp
            .attribute("ptime")
            .flatten()
            .and_then(|p| p.trim().parse().ok());
        Negotiated {
            codec: self.codec,
            payload_type: self.payload_type,
            telephone_event: self.telephone_event,
            ptime_ms: m
                .ptime
                .or(session_ptime)
                .filter(|p| (1..=MAX_PTIME_MS).contains(p))
                .unwrap_or(DEFAULT_PTIME_MS),
            remote_rtp,
            remote_rtcp,
            remote_direction,
        }
    }
}

fn is_active_audio(m: &MediaDescription) -> bool {
    m.is_audio() && m.port != 0 && m.is_plain_rtp()
}

/// The first payload type of `m`, in its order, whose codec `accept`s.
fn first_codec(m: &MediaDescription, accept: impl Fn(Codec) -> bool) -> Option<(u8, Codec)> {
    m.payload_types()
        .find_map(|pt| m.codec(pt).filter(|&c| accept(c)).map(|c| (pt, c)))
}

/// The audio stream [`answer`] accepts, with its m-line index.
fn choose<'a>(
    offer: &'a SessionDescription,
    supported: &[Codec],
) -> Result<(usize, Choice<'a>), SdpError> {
    let mut error = SdpError::NoAudio;
    for (index, m) in offer.media.iter().enumerate() {
        if !m.is_audio() || m.port == 0 {
            continue;
        }
        if !m.is_plain_rtp() {
            if error == SdpError::NoAudio {
                error = SdpError::UnsupportedProtocol(m.proto.clone());
            }
            continue;
        }
        error = SdpError::NoCommonCodec;
        if let Some((payload_type, codec)) = first_codec(m, |c| supported.contains(&c)) {
            let choice = Choice {
                media: m,
                codec,
                payload_type,
                telephone_event: m.telephone_event(),
            };
            return Ok((index, choice));
        }
    }
    Err(error)
}

fn session(local: &LocalMedia, media: Vec<MediaDescription>) -> SessionDescription {
    let ip = local.addr.ip();
    SessionDescription {
        origin: Origin {
            username: "-".to_owned(),
            session_id: local.session_id,
            version: local.version,
            address: ip.to_string(),
        },
        session_name: "-".to_owned(),
        connection: Some(ip),
        bandwidths: Vec::new(),
        times: vec!["0 0".to_owned()],
        direction: None,
        attributes: Vec::new(),
        other_lines: Vec::new(),
        media,
    }
}

fn media_line(kind: &str, port: u16, proto: &str) -> MediaDescription {
    MediaDescription {
        kind: kind.to_owned(),
        port,
        port_count: None,
        proto: proto.to_owned(),
        formats: Vec::new(),
        connection: None,
        bandwidths: Vec::new(),
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        rtcp: None,
        attributes: Vec::new(),
        other_lines: Vec::new(),
    }
}

/// A rejected stream (RFC 3264 §6): same media and transport, port 0, the offered formats.
fn rejected(m: &MediaDescription) -> MediaDescription {
    let mut r = media_line(&m.kind, 0, &m.proto);
    r.formats.clone_from(&m.formats);
    r
}

fn push_codec(m: &mut MediaDescription, codec: Codec, payload_type: u8) {
    m.formats.push(payload_type.to_string());
    m.rtpmaps.push(RtpMap {
        payload_type,
        encoding: codec.name().to_owned(),
        clock_rate: codec.clock_rate(),
        channels: None,
    });
}

fn push_telephone_event(m: &mut MediaDescription, payload_type: u8, events: Option<&str>) {
    m.formats.push(payload_type.to_string());
    m.rtpmaps.push(RtpMap {
        payload_type,
        encoding: "telephone-event".to_owned(),
        clock_rate: 8000,
        channels: None,
    });
    if let Some(events) = events {
        m.fmtps.push((payload_type, events.to_owned()));
    }
}
