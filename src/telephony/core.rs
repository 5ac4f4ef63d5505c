//! The SIP core task: the one owner of the sans-IO [`Endpoint`]. It feeds the endpoint what the
//! transports received, the commands of the transaction users (registrar, trunk registration,
//! later call control) and its timer, then drains the endpoint's outputs: bytes to the
//! transports, events to the transaction users. It never awaits anything but its inputs, so a
//! slow database query in the registrar cannot delay a retransmission.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use masterz_sip::endpoint::{ClientTx, Endpoint, Event, ServerTx};
use masterz_sip::message::Message;
use masterz_sip::transport::Peer;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::calls::{CallControl, CallInput};
use super::transport::Transports;
use super::{Incoming, SipMetrics};
use crate::media_engine::MediaNotice;

/// What a client transaction reports to the task that started it.
#[derive(Debug)]
pub(crate) enum ClientEvent {
    /// A provisional or final response.
    Response(Message),
    /// Timer B or F fired (treat as 408).
    Timeout,
}

/// A command from a transaction user to the core.
pub(crate) enum Command {
    /// Answer a server transaction.
    Respond { tx: ServerTx, response: Message },
    /// Start a client transaction; its responses go to `reply`.
    Request {
        request: Message,
        to: Peer,
        reply: mpsc::UnboundedSender<ClientEvent>,
    },
}

/// A datagram or a framed stream message from a transport.
pub(crate) struct Inbound {
    pub(crate) from: Peer,
    pub(crate) bytes: bytes::Bytes,
}

pub(crate) struct Core {
    pub(crate) endpoint: Endpoint,
    pub(crate) inbound: mpsc::Receiver<Inbound>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) requests: mpsc::UnboundedSender<Incoming>,
    pub(crate) transports: Arc<Transports>,
    pub(crate) metrics: Arc<SipMetrics>,
    pub(crate) calls: CallControl,
    pub(crate) call_inputs: mpsc::UnboundedReceiver<CallInput>,
    pub(crate) media_events: mpsc::UnboundedReceiver<MediaNotice>,
}

impl Core {
    pub(crate) async fn run(mut self) {
        let mut waiting: HashMap<ClientTx, mpsc::UnboundedSender<ClientEvent>> = HashMap::new();
        let far = Duration::from_secs(3600);
        loop {
            let next = match (self.endpoint.poll_timeout(), self.calls.poll_timeout()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let deadline = next.map_or_else(|| Instant::now() + far, Instant::from_std);
            tokio::select! {
                biased;
                Some(cmd) = self.commands.recv() => self.command(cmd, &mut waiting),
                Some(input) = self.call_inputs.recv() => {
                    let now = std::time::Instant::now();
                    self.calls.on_input(&mut self.endpoint, now, input);
                    for _ in 0..64 {
                        match self.call_inputs.try_recv() {
                            Ok(more) => self.calls.on_input(&mut self.endpoint, now, more),
                            Err(_) => break,
                        }
                    }
                }
                Some(notice) = self.media_events.recv() => {
                    let now = std::time::Instant::now();
                    self.calls.on_input(&mut self.endpoint, now, CallInput::Media(notice));
                }
                Some(inbound) = self.inbound.recv() => {
                    self.metrics.received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.endpoint.handle_input(std::time::Instant::now(), inbound.from, inbound.bytes);
                    // Take whatever else is already queued before draining: one drain per burst.
                    for _ in 0..64 {
                        match self.inbound.try_recv() {
                            Ok(more) => {
                                self.metrics.received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                self.endpoint.handle_input(std::time::Instant::now(), more.from, more.bytes);
                            }
                            Err(_) => break,
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    let now = std::time::Instant::now();
                    self.endpoint.handle_timeout(now);
                    self.calls.handle_timeout(&mut self.endpoint, now);
                }
                else => break,
            }
            self.drain(&mut waiting);
        }
    }

    fn command(
        &mut self,
        cmd: Command,
        waiting: &mut HashMap<ClientTx, mpsc::UnboundedSender<ClientEvent>>,
    ) {
        let now = std::time::Instant::now();
        match cmd {
            Command::Respond { tx, response } => {
                if let Err(e) = self.endpoint.send_response(now, tx, response) {
                    tracing::debug!(error = %e, "response for a finished transaction dropped");
                }
            }
            Command::Request { request, to, reply } => {
                let tx = self.endpoint.send_request(now, request, to);
                waiting.insert(tx, reply);
            }
        }
    }

    fn drain(&mut self, waiting: &mut HashMap<ClientTx, mpsc::UnboundedSender<ClientEvent>>) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.endpoint.poll_transmit() {
                progressed = true;
                self.transports.send(t.to, t.bytes);
            }
            while let Some(event) = self.endpoint.poll_event() {
                progressed = true;
                self.event(event, waiting);
            }
            if !progressed {
                break;
            }
        }
    }

    fn event(
        &mut self,
        event: Event,
        waiting: &mut HashMap<ClientTx, mpsc::UnboundedSender<ClientEvent>>,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = std::time::Instant::now();
        match event {
            Event::Request { tx, request, from } => {
                if CallControl::wants(&request) {
                    self.calls.on_event(
                        &mut self.endpoint,
                        now,
                        Event::Request { tx, request, from },
                    );
                } else {
                    let _ = self.requests.send(Incoming { tx, request, from });
                }
            }
            Event::Response { tx, response } => {
                if let Some(reply) = waiting.get(&tx) {
                    let is_final = response.status().is_some_and(|s| s.is_final());
                    let _ = reply.send(ClientEvent::Response(response));
                    if is_final {
                        waiting.remove(&tx);
                    }
                } else {
                    self.calls
                        .on_event(&mut self.endpoint, now, Event::Response { tx, response });
                }
            }
            Event::Timeout { tx } => {
                if let Some(reply) = waiting.remove(&tx) {
                    let _ = reply.send(ClientEvent::Timeout);
                } else {
                    self.calls
                        .on_event(&mut self.endpoint, now, Event::Timeout { tx });
                }
            }
            Event::TransportError { tx } => {
                if let Some(reply) = waiting.remove(&tx) {
                    let _ = reply.send(ClientEvent::Timeout);
                } else {
                    self.calls
                        .on_event(&mut self.endpoint, now, Event::TransportError { tx });
                }
            }
            Event::Malformed { from, error } => {
                self.metrics.malformed.fetch_add(1, Relaxed);
                tracing::info!(
                    transport = from.transport.as_str(),
                    source = %crate::pii::Pii(from.addr.to_string()),
                    %error,
                    "malformed SIP message"
                );
            }
            other => self.calls.on_event(&mut self.endpoint, now, other),
        }
    }
}
