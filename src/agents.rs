//! Agents online: their browser tabs (one agent WebSocket each), their presence, and the view
//! of their calls that every tab is shown. Call control publishes call views and busy state
//! here; routing asks which agents may be rung; the WebSocket handler connects tabs.
//!
//! One mutex over small maps: every operation is a lookup and a few sends on unbounded channels;
//! nothing here is on the media path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::domain::{CompanyId, UserId};

/// How long an agent whose last tab closed is still rung in the browser (a reconnect within
/// this time changes nothing).
pub const TAB_GRACE: Duration = Duration::from_secs(30);

/// What an agent chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Takes calls.
    Available,
    /// Takes no calls from routing.
    Away,
}

impl Presence {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Away => "away",
        }
    }

    /// Reads the stored name; anything else is `available`.
    pub fn parse(s: &str) -> Self {
        if s == "away" {
            Presence::Away
        } else {
            Presence::Available
        }
    }
}

/// Presence as shown to others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    /// Available and reachable.
    Available,
    /// Chose away.
    Away,
    /// Has a call connected.
    OnCall,
    /// No tab and no softphone.
    Offline,
}

/// An agent's call as the agent's tabs see it (docs/agent-websocket.md).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CallView {
    /// The agent's leg: the id every command uses.
    pub leg: String,
    /// The `calls` row.
    pub call_id: Option<i64>,
    /// `in` or `out`.
    pub direction: &'static str,
    /// `ringing`, `connecting`, `connected` or `ended`.
    pub state: &'static str,
    /// The other party's number.
    pub number: String,
    /// The caller's name, when known.
    pub name: Option<String>,
    /// The customer, when known.
    pub customer_id: Option<i64>,
    /// The tab that owns the call.
    pub tab: Option<String>,
    /// Whether the agent put the call on hold.
    pub held: bool,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms, once connected.
    pub answered_at: Option<i64>,
    /// Why it ended.
    pub reason: Option<String>,
}

/// A frame to the page.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The first frame of a connection: who, presence, calls.
    Hello {
        /// The agent.
        user: serde_json::Value,
        /// Shown presence.
        presence: Shown,
        /// Calls ringing or in progress.
        calls: Vec<CallView>,
    },
    /// Presence changed.
    Presence {
        /// The new presence.
        status: Shown,
    },
    /// A call changed.
    Call {
        /// Its whole view.
        call: CallView,
    },
    /// Our SDP offer for the tab's WebRTC leg.
    Offer {
        /// The leg.
        leg: String,
        /// The offer.
        sdp: String,
    },
    /// A command was refused.
    Error {
        /// The leg the command named, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        leg: Option<String>,
        /// Why.
        message: String,
    },
    /// A message was added or changed (status, reaction, removal): the message as
    /// `GET /api/v1/conversations/{id}/messages` shows it.
    Message {
        /// The message.
        message: serde_json::Value,
    },
    /// A channel account's connection status changed (e.g. it needs reconnection).
    Channel {
        /// The channel account as the API shows it.
        account: serde_json::Value,
    },
    /// An AI reply suggestion was made, or changed state: as
    /// `GET /api/v1/conversations/{id}/suggestions` shows it.
    Suggestion {
        /// The suggestion.
        suggestion: serde_json::Value,
    },
    /// Keepalive.
    Ping,
    /// Answer to the page's ping.
    Pong,
}

struct Tab {
    id: String,
    conn: u64,
    tx: UnboundedSender<ServerFrame>,
}

struct Agent {
    company: CompanyId,
    chosen: Presence,
    tabs: Vec<Tab>,
    /// When the last tab closed.
    left_at: Option<Instant>,
    /// Calls (call control's keys) with this agent connected.
    busy: HashSet<u64>,
    /// Browser legs of this agent, by leg id.
    calls: BTreeMap<u64, CallView>,
    /// Whether the agent may read conversations (gets message frames).
    inbox: bool,
}

impl Agent {
    fn shown(&self) -> Shown {
        if !self.busy.is_empty() {
            Shown::OnCall
        } else {
            match self.chosen {
                Presence::Available => Shown::Available,
                Presence::Away => Shown::Away,
            }
        }
    }

    fn send_all(&self, frame: &ServerFrame) {
        for t in &self.tabs {
            let _ = t.tx.send(frame.clone());
        }
    }
}

/// Agents online. See the module documentation.
#[derive(Default)]
pub struct AgentHub {
    agents: Mutex<HashMap<UserId, Agent>>,
    next_conn: AtomicU64,
}

impl std::fmt::Debug for AgentHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHub").finish_non_exhaustive()
    }
}

impl AgentHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Agent>> {
        // Plain maps: consistent even after a panic elsewhere.
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects a tab of `user`: its frames come on the receiver, the first being `hello`.
    /// A connection with the same tab id replaces the old one (whose receiver ends).
    pub fn connect(
        &self,
        company: CompanyId,
        user: UserId,
        tab: &str,
        chosen: Presence,
        me: serde_json::Value,
    ) -> (u64, UnboundedReceiver<ServerFrame>) {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut agents = self.lock();
        let a = agents.entry(user).or_insert_with(|| Agent {
            company,
            chosen,
            tabs: Vec::new(),
            left_at: None,
            busy: HashSet::new(),
            calls: BTreeMap::new(),
            inbox: false,
        });
        a.company = company;
        a.tabs.retain(|t| t.id != tab);
        a.left_at = None;
        let _ = tx.send(ServerFrame::Hello {
            user: me,
            presence: a.shown(),
            calls: a.calls.values().cloned().collect(),
        });
        a.tabs.push(Tab {
            id: tab.to_owned(),
            conn,
            tx,
        });
        (conn, rx)
    }

    /// Says whether `user` may read conversations: only then do their tabs get
    /// [`ServerFrame::Message`] and [`ServerFrame::Channel`].
    pub fn set_inbox(&self, user: UserId, allowed: bool) {
        if let Some(a) = self.lock().get_mut(&user) {
            a.inbox = allowed;
        }
    }

    /// Whether any tab of `company`'s agents who may read conversations is open: when none is,
    /// there is no one to build a [`ServerFrame::Message`] for.
    pub fn has_inbox_tabs(&self, company: CompanyId) -> bool {
        self.lock()
            .values()
            .any(|a| a.company == company && a.inbox && !a.tabs.is_empty())
    }

    /// Sends `frame` to every tab of `company`'s agents who may read conversations.
    pub fn broadcast(&self, company: CompanyId, frame: &ServerFrame) {
        for a in self.lock().values() {
            if a.company == company && a.inbox {
                a.send_all(frame);
            }
        }
    }

    /// A connection closed.
    pub fn disconnect(&self, user: UserId, conn: u64) {
        let mut agents = self.lock();
        if let Some(a) = agents.get_mut(&user) {
            a.tabs.retain(|t| t.conn != conn);
            if a.tabs.is_empty() {
                a.left_at = Some(Instant::now());
            }
        }
    }

    /// Sets what the agent chose; every tab hears the result.
    pub fn set_presence(&self, company: CompanyId, user: UserId, chosen: Presence) {
        let mut agents = self.lock();
        let a = agents.entry(user).or_insert_with(|| Agent {
            company,
            chosen,
            tabs: Vec::new(),
            left_at: Instant::now().checked_sub(TAB_GRACE),
            busy: HashSet::new(),
            calls: BTreeMap::new(),
            inbox: false,
        });
        let before = a.shown();
        a.chosen = chosen;
        if a.shown() != before || a.tabs.len() > 1 {
            a.send_all(&ServerFrame::Presence { status: a.shown() });
        }
    }

    /// Marks `user` connected on call `key` (or no longer).
    pub fn set_busy(&self, user: UserId, key: u64, busy: bool) {
        let mut agents = self.lock();
        let Some(a) = agents.get_mut(&user) else {
            if busy {
                // A softphone-only agent: remembered so that routing skips them.
                agents.insert(
                    user,
                    Agent {
                        company: CompanyId(0),
                        chosen: Presence::Available,
                        tabs: Vec::new(),
                        left_at: Instant::now().checked_sub(TAB_GRACE),
                        busy: HashSet::from([key]),
                        calls: BTreeMap::new(),
                        inbox: false,
                    },
                );
            }
            return;
        };
        let before = a.shown();
        if busy {
            a.busy.insert(key);
        } else {
            a.busy.remove(&key);
        }
        if a.shown() != before {
            a.send_all(&ServerFrame::Presence { status: a.shown() });
        }
    }

    /// Whether `user` has a call connected.
    pub fn is_busy(&self, user: UserId) -> bool {
        self.lock().get(&user).is_some_and(|a| !a.busy.is_empty())
    }

    /// Publishes a call view to every tab of `user`; an `ended` view is the last.
    pub fn call(&self, user: UserId, leg: u64, view: CallView) {
        let mut agents = self.lock();
        let Some(a) = agents.get_mut(&user) else {
            return;
        };
        if view.state == "ended" {
            a.calls.remove(&leg);
        } else {
            a.calls.insert(leg, view.clone());
        }
        a.send_all(&ServerFrame::Call { call: view });
    }

    /// Sends a frame to one tab of `user`; false when that tab is not connected.
    pub fn send_tab(&self, user: UserId, tab: &str, frame: ServerFrame) -> bool {
        let agents = self.lock();
        agents
            .get(&user)
            .and_then(|a| a.tabs.iter().find(|t| t.id == tab))
            .is_some_and(|t| t.tx.send(frame).is_ok())
    }

    /// Browser agents of `company` that may be rung now: a tab connected (or closed within
    /// [`TAB_GRACE`]), available, no call connected; among `members` when given.
    pub fn ringable(&self, company: CompanyId, members: Option<&[UserId]>) -> Vec<UserId> {
        let now = Instant::now();
        let agents = self.lock();
        let mut out: Vec<UserId> = agents
            .iter()
            .filter(|(u, a)| {
                a.company == company
                    && members.is_none_or(|m| m.contains(u))
                    && a.shown() == Shown::Available
                    && (!a.tabs.is_empty()
                        || a.left_at.is_some_and(|t| now.duration_since(t) < TAB_GRACE))
            })
            .map(|(u, _)| *u)
            .collect();
        out.sort();
        out
    }

    /// `(shown presence, a tab is connected)` of `user`, if the hub knows them.
    pub fn status(&self, user: UserId) -> Option<(Shown, bool)> {
        self.lock()
            .get(&user)
            .map(|a| (a.shown(), !a.tabs.is_empty()))
    }

    /// Forgets every agent of `company` (closed): their tabs' receivers end, which closes their
    /// WebSockets.
    pub fn disconnect_company(&self, company: CompanyId) {
        self.lock().retain(|_, a| a.company != company);
    }

    /// Sends `ping` to every tab (keepalive).
    pub fn ping_all(&self) {
        for a in self.lock().values() {
            a.send_all(&ServerFrame::Ping);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(leg: u64, state: &'static str) -> CallView {
        CallView {
            leg: leg.to_string(),
            call_id: Some(1),
            direction: "in",
            state,
            number: "+4915112345678".into(),
            name: None,
            customer_id: None,
            tab: None,
            held: false,
            started_at: 0,
            answered_at: None,
            reason: None,
        }
    }

    #[test]
    fn tabs_get_hello_then_calls_and_a_reconnect_gets_them_back() {
        let hub = AgentHub::default();
        let (c, u) = (CompanyId(1), UserId(7));
        let (conn, mut rx) = hub.connect(c, u, "t1", Presence::Available, serde_json::json!({}));
        assert!(matches!(rx.try_recv(), Ok(ServerFrame::Hello { calls, .. }) if calls.is_empty()));
        hub.call(u, 42, view(42, "ringing"));
        assert!(matches!(rx.try_recv(), Ok(ServerFrame::Call { call }) if call.state == "ringing"));
        hub.disconnect(u, conn);
        let (_, mut rx) = hub.connect(c, u, "t1", Presence::Available, serde_json::json!({}));
        assert!(matches!(rx.try_recv(), Ok(ServerFrame::Hello { calls, .. }) if calls.len() == 1));
        hub.call(u, 42, view(42, "ended"));
        let (_, mut rx) = hub.connect(c, u, "t2", Presence::Available, serde_json::json!({}));
        assert!(matches!(rx.try_recv(), Ok(ServerFrame::Hello { calls, .. }) if calls.is_empty()));
    }

    #[test]
    fn routing_skips_away_busy_other_companies_and_long_gone_tabs() {
        let hub = AgentHub::default();
        let c = CompanyId(1);
        let (_, _rx1) = hub.connect(
            c,
            UserId(1),
            "a",
            Presence::Available,
            serde_json::json!({}),
        );
        let (_, _rx2) = hub.connect(c, UserId(2), "b", Presence::Away, serde_json::json!({}));
        let (_, _rx3) = hub.connect(
            c,
            UserId(3),
            "c",
            Presence::Available,
            serde_json::json!({}),
        );
        let (_, _rx4) = hub.connect(
            CompanyId(2),
            UserId(4),
            "d",
            Presence::Available,
            serde_json::json!({}),
        );
        hub.set_busy(UserId(3), 9, true);
        assert_eq!(hub.ringable(c, None), vec![UserId(1)]);
        assert_eq!(hub.ringable(c, Some(&[UserId(2)])), Vec::<UserId>::new());
        hub.set_busy(UserId(3), 9, false);
        assert_eq!(hub.ringable(c, None), vec![UserId(1), UserId(3)]);
        assert_eq!(hub.status(UserId(2)), Some((Shown::Away, true)));
    }

    #[test]
    fn a_replaced_tab_connection_ends_the_old_one() {
        let hub = AgentHub::default();
        let (c, u) = (CompanyId(1), UserId(7));
        let (_, mut old) = hub.connect(c, u, "t1", Presence::Available, serde_json::json!({}));
        let _ = old.try_recv();
        let (_, _new) = hub.connect(c, u, "t1", Presence::Available, serde_json::json!({}));
        assert!(matches!(
            old.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }
}
