//! The endpoint's timer queue: every live transaction with a timer sits in it once, under its
//! earliest deadline; firing asks the machine what its due timers mean.

use std::collections::BTreeSet;
use std::time::Instant;

use super::{ClientMachine, ClientTx, Endpoint, Event, ServerMachine, ServerTx, TxRef};
use crate::transaction::TimerFired;
use crate::transport::Transmit;

impl Endpoint {
    pub(super) fn fire_client(&mut self, now: Instant, id: u64) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        c.scheduled = None;
        loop {
            let fired = match &mut c.machine {
                ClientMachine::Invite(m) => m.on_timer(now),
                ClientMachine::NonInvite(m) => m.on_timer(now),
            };
            match fired {
                None => break,
                Some(TimerFired::Retransmit) => self.transmits.push_back(Transmit {
                    to: c.peer,
                    bytes: c.bytes.clone(),
                }),
                Some(TimerFired::Timeout) => {
                    self.events.push_back(Event::Timeout { tx: ClientTx(id) });
                }
                Some(TimerFired::Terminated | TimerFired::AckTimeout | TimerFired::Resend(_)) => {}
            }
        }
        self.settle_client(id);
    }

    pub(super) fn fire_server(&mut self, now: Instant, id: u64) {
        let Some(s) = self.servers.get_mut(&id) else {
            return;
        };
        s.scheduled = None;
        loop {
            let fired = match &mut s.machine {
                ServerMachine::Invite(m) => m.on_timer(now),
                ServerMachine::NonInvite(m) => m.on_timer(now),
            };
            match fired {
                None => break,
                Some(TimerFired::Resend(bytes)) => self.transmits.push_back(Transmit {
                    to: s.reply_to,
                    bytes,
                }),
                Some(TimerFired::AckTimeout) => {
                    self.events
                        .push_back(Event::AckTimeout { tx: ServerTx(id) });
                }
                Some(TimerFired::Terminated | TimerFired::Timeout | TimerFired::Retransmit) => {}
            }
        }
        self.settle_server(id);
    }

    /// After a client transaction moved: forget it if it ended, else file it under its next
    /// deadline.
    pub(super) fn settle_client(&mut self, id: u64) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        let (terminated, deadline) = match &c.machine {
            ClientMachine::Invite(m) => (m.is_terminated(), m.deadline()),
            ClientMachine::NonInvite(m) => (m.is_terminated(), m.deadline()),
        };
        let old = c.scheduled;
        if terminated {
            if let Some(c) = self.clients.remove(&id) {
                self.client_keys.remove(&c.key);
            }
            if let Some(at) = old {
                self.deadlines.remove(&(at, TxRef::Client(id)));
            }
            return;
        }
        if old != deadline {
            c.scheduled = deadline;
            reschedule(&mut self.deadlines, TxRef::Client(id), old, deadline);
        }
    }

    /// The same for a server transaction.
    pub(super) fn settle_server(&mut self, id: u64) {
        let Some(s) = self.servers.get_mut(&id) else {
            return;
        };
        let (terminated, deadline) = match &s.machine {
            ServerMachine::Invite(m) => (m.is_terminated(), m.deadline()),
            ServerMachine::NonInvite(m) => (m.is_terminated(), m.deadline()),
        };
        let old = s.scheduled;
        if terminated {
            if let Some(s) = self.servers.remove(&id) {
                self.server_keys.remove(&s.key);
            }
            if let Some(at) = old {
                self.deadlines.remove(&(at, TxRef::Server(id)));
            }
            return;
        }
        if old != deadline {
            s.scheduled = deadline;
            reschedule(&mut self.deadlines, TxRef::Server(id), old, deadline);
        }
    }
}

fn reschedule(
    deadlines: &mut BTreeSet<(Instant, TxRef)>,
    tx: TxRef,
    old: Option<Instant>,
    new: Option<Instant>,
) {
    if let Some(at) = old {
        deadlines.remove(&(at, tx));
    }
    if let Some(at) = new {
        deadlines.insert((at, tx));
    }
}
