//! Routing jobs: who a new call rings. They need the database (DID routes, agents' bindings,
//! the caller's customer record, the call row) and the media engine (ports), so they run as
//! spawned tasks and post their result back to call control.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use masterz_sip::transport::{Peer, Transport};
use tokio::sync::mpsc;

use super::{CallInput, CallKey, CallSettings};
use crate::domain::sip::SipTransport;
use crate::domain::{CompanyId, UserId};
use crate::http::AppState;
use crate::media_engine::{MediaEngine, MediaSession};
use crate::store;
use crate::store::trunks::TrunkConfig;

/// A trunk as call control matches it: its settings and where it is reached.
#[derive(Clone, Debug)]
pub(crate) struct TrunkEntry {
    pub(crate) config: TrunkConfig,
    /// The resolved address of its host, when it resolved.
    pub(crate) peer: Option<Peer>,
    /// Its DIDs without the `+`, for matching Request-URI users written either way.
    pub(crate) dids: Vec<String>,
}

impl TrunkEntry {
    /// Whether an INVITE from `addr` may come from this trunk: its configured sources; the
    /// address of its host when we register there (calls come over the registration) or when no
    /// source is configured.
    pub(crate) fn is_source(&self, addr: IpAddr) -> bool {
        let s = &self.config.settings;
        s.allows_source(addr)
            || ((s.register || s.sources.is_empty())
                && self.peer.is_some_and(|p| p.addr.ip() == addr))
    }

    /// The DID of this trunk that `user` (a Request-URI user) names, in E.164.
    pub(crate) fn did(&self, user: &str) -> Option<String> {
        let digits = user.trim_start_matches('+');
        self.dids
            .iter()
            .any(|d| d == digits)
            .then(|| format!("+{digits}"))
    }
}

/// The direction of a call, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallDirection {
    /// From a trunk to agents.
    In,
    /// From an agent out through a trunk.
    Out,
    /// Agent to agent.
    Internal,
}

impl CallDirection {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
            Self::Internal => "internal",
        }
    }
}

/// Where a B leg goes.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// One registered contact of an agent.
    Agent {
        user: UserId,
        contact: String,
        peer: Peer,
    },
    /// An agent's browser tabs (the agent WebSocket).
    Browser { user: UserId },
    /// A number through a trunk.
    Trunk {
        trunk: Box<TrunkEntry>,
        number: String,
    },
}

/// What routing decided, beyond the targets.
#[derive(Clone, Debug)]
pub(crate) struct RouteInfo {
    pub(crate) ring_timeout: Duration,
    pub(crate) no_answer_status: u16,
    pub(crate) overflow_group: Option<i64>,
    /// The number shown to B legs (the caller's E.164, or the trunk's caller id).
    pub(crate) caller_id: String,
    pub(crate) caller_name: Option<String>,
    /// The customer on the call, when known.
    pub(crate) customer_id: Option<i64>,
}

/// A routed call.
pub(crate) struct Routed {
    pub(crate) row: i64,
    pub(crate) company: CompanyId,
    pub(crate) targets: Vec<Target>,
    pub(crate) info: RouteInfo,
    pub(crate) media: MediaSession,
    /// Outbound and internal calls: the agent who called.
    pub(crate) caller_agent: Option<UserId>,
    /// The trunk the call is on, with its own recording setting.
    pub(crate) trunk: Option<(i64, Option<bool>)>,
    /// Whether (and how) the call is recorded; filled in after routing.
    pub(crate) record: Option<super::recording::RecordPlan>,
}

/// Why a call was refused, as a SIP status and a reason for the logs and the row.
#[derive(Clone, Debug)]
pub(crate) struct Reject {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// The row, when one was created before the failure.
    pub(crate) row: Option<(CompanyId, i64)>,
}

impl Reject {
    pub(crate) fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            row: None,
        }
    }
}

fn internal(e: impl std::fmt::Display) -> Reject {
    tracing::error!(error = %e, "routing a call failed");
    Reject::new(500, "internal error")
}

/// The peer of a binding: its source address over its transport (NAT-safe: that is where its
/// REGISTER came from, RFC 3261 §10.3 with RFC 3581).
pub(crate) fn binding_peer(source: &str, transport: SipTransport) -> Option<Peer> {
    let addr: SocketAddr = source.parse().ok()?;
    let transport = match transport {
        SipTransport::Udp => Transport::Udp,
        SipTransport::Tcp => Transport::Tcp,
        SipTransport::Tls => Transport::Tls,
        SipTransport::Ws => Transport::Ws,
        SipTransport::Wss => Transport::Wss,
    };
    Some(Peer::new(transport, addr))
}

/// Every registered contact of `members` (None: every agent of the company), as B-leg targets.
pub(crate) async fn agent_targets(
    state: &AppState,
    company: CompanyId,
    members: Option<&[UserId]>,
) -> store::Result<Vec<Target>> {
    let mut conn = state.db.conn().await?;
    let contacts =
        store::routing::agent_contacts(&mut conn.ex(), company, members, super::unix_ms()).await?;
    Ok(contacts.into_iter().filter_map(contact_target).collect())
}

/// A registered contact as a B-leg target (`None` when its source is not an address).
fn contact_target(c: store::routing::AgentContact) -> Option<Target> {
    let peer = binding_peer(&c.source, c.transport)?;
    Some(Target::Agent {
        user: c.user_id,
        contact: c.contact,
        peer,
    })
}

/// The agents routing rings for a call to `members` (every agent when `None`): the
/// softphones of agents who are not away, and the browser tabs of available agents (not away,
/// not on a call). A softphone rings even while its agent is on a call: call waiting is the
/// phone's to offer (and a SIP endpoint may be a queue that takes many calls); the web app
/// takes one call at a time.
pub(crate) async fn routing_targets(
    state: &AppState,
    company: CompanyId,
    members: Option<&[UserId]>,
) -> store::Result<Vec<Target>> {
    let mut conn = state.db.conn().await?;
    let contacts =
        store::routing::agent_contacts(&mut conn.ex(), company, members, super::unix_ms()).await?;
    drop(conn);
    let mut targets: Vec<Target> = contacts
        .into_iter()
        .filter(|c| c.presence != "away")
        .filter_map(contact_target)
        .collect();
    targets.extend(
        state
            .agents
            .ringable(company, members)
            .into_iter()
            .map(|user| Target::Browser { user }),
    );
    Ok(targets)
}

/// Where a blind transfer from an agent's browser goes: an extension (or number) as dialled,
/// else a user id of the company; never back to the transferring agent.
pub(crate) async fn transfer_targets(
    state: &AppState,
    trunks: &[TrunkEntry],
    company: CompanyId,
    me: UserId,
    to: &str,
) -> Result<Vec<Target>, u16> {
    let targets = match resolve_dialled(state, trunks, company, to).await {
        Ok((_, targets, _)) => targets,
        Err(r) if r.status == 404 => {
            let Ok(id) = to.parse::<i64>() else {
                return Err(404);
            };
            let user = UserId(id);
            let mut conn = state.db.conn().await.map_err(|_| 500u16)?;
            let known = store::users::get_user(&mut conn.ex(), company, user)
                .await
                .map_err(|_| 500u16)?;
            drop(conn);
            if known.is_none() {
                return Err(404);
            }
            let mut t = agent_targets(state, company, Some(&[user]))
                .await
                .map_err(|_| 500u16)?;
            if state.agents.status(user).is_some_and(|(_, tab)| tab) {
                t.push(Target::Browser { user });
            }
            t
        }
        Err(r) => return Err(r.status),
    };
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| match t {
            Target::Agent { user, .. } | Target::Browser { user } => *user != me,
            Target::Trunk { .. } => true,
        })
        .collect();
    if targets.is_empty() {
        return Err(480);
    }
    Ok(targets)
}

/// The facts of a new inbound call, taken from its INVITE.
pub(crate) struct InboundRequest {
    pub(crate) trunk: TrunkEntry,
    pub(crate) did: String,
    pub(crate) caller: String,
    pub(crate) caller_name: Option<String>,
    pub(crate) from_uri: String,
    pub(crate) to_uri: String,
    pub(crate) sip_call_id: String,
}

/// Routes a call from a trunk: the DID's group (or every agent), the caller's customer record,
/// the call row, media ports.
pub(crate) async fn inbound(
    state: Arc<AppState>,
    media: Arc<MediaEngine>,
    settings: CallSettings,
    writer: super::persist::Writer,
    events: mpsc::UnboundedSender<crate::media_engine::MediaNotice>,
    key: CallKey,
    req: InboundRequest,
) -> Result<Routed, Reject> {
    let company = req.trunk.config.company_id;
    let mut conn = state.db.conn().await.map_err(internal)?;
    let group = store::routing::group_for_did(&mut conn.ex(), company, &req.did)
        .await
        .map_err(internal)?;
    let customer = match crate::domain::phone::normalize_e164(&req.caller) {
        Some(e164) => Some(
            store::customers::find_or_create_by_phone(&mut conn.ex(), company, &e164)
                .await
                .map_err(internal)?,
        ),
        None => None,
    };
    drop(conn);
    let row = writer
        .create(super::persist::NewRow {
            company,
            customer_id: customer,
            direction: CallDirection::In.as_str(),
            from_uri: req.from_uri.clone(),
            to_uri: req.to_uri.clone(),
            trunk_id: Some(req.trunk.config.id),
            group_id: group.as_ref().map(|g| g.id),
            sip_call_id: req.sip_call_id.clone(),
            agent_user_id: None,
            started_at: super::unix_ms(),
        })
        .await
        .map_err(internal)?;
    let fail = |status: u16, reason: &str| Reject {
        status,
        reason: reason.to_owned(),
        row: Some((company, row)),
    };
    let targets = routing_targets(
        &state,
        company,
        group.as_ref().map(|g| g.members.as_slice()),
    )
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "loading agents failed");
        fail(500, "internal error")
    })?;
    let session = media
        .allocate(key, events)
        .await
        .map_err(|e| fail(503, &e.to_string()))?;
    let info = RouteInfo {
        ring_timeout: group.as_ref().map_or(settings.ring_timeout, |g| {
            Duration::from_secs(u64::try_from(g.ring_timeout_secs).unwrap_or(30))
        }),
        no_answer_status: group.as_ref().map_or(settings.no_answer_status, |g| {
            u16::try_from(g.no_answer_status).unwrap_or(480)
        }),
        overflow_group: group.as_ref().and_then(|g| g.overflow_group_id),
        caller_id: req.caller.clone(),
        caller_name: req.caller_name.clone(),
        customer_id: customer,
    };
    Ok(Routed {
        row,
        company,
        targets,
        info,
        media: session,
        caller_agent: None,
        trunk: Some((req.trunk.config.id, req.trunk.config.settings.recording)),
        record: None,
    })
}

/// The overflow group's agents, for a call nobody answered.
pub(crate) async fn overflow(
    state: Arc<AppState>,
    company: CompanyId,
    group: i64,
) -> Result<(Vec<Target>, RouteInfo), Reject> {
    let mut conn = state.db.conn().await.map_err(internal)?;
    let g = store::routing::group(&mut conn.ex(), company, group)
        .await
        .map_err(internal)?
        .ok_or_else(|| Reject::new(480, "overflow group is gone"))?;
    drop(conn);
    let targets = routing_targets(&state, company, Some(&g.members))
        .await
        .map_err(internal)?;
    let info = RouteInfo {
        ring_timeout: Duration::from_secs(u64::try_from(g.ring_timeout_secs).unwrap_or(30)),
        no_answer_status: u16::try_from(g.no_answer_status).unwrap_or(480),
        overflow_group: g.overflow_group_id,
        caller_id: String::new(),
        caller_name: None,
        customer_id: None,
    };
    Ok((targets, info))
}

/// Resolves what an agent dialled: another agent's extension, or a number through the
/// company's trunk.
pub(crate) async fn resolve_dialled(
    state: &AppState,
    trunks: &[TrunkEntry],
    company: CompanyId,
    dialled: &str,
) -> Result<(CallDirection, Vec<Target>, Option<UserId>), Reject> {
    let mut conn = state.db.conn().await.map_err(internal)?;
    if let Some(user) = store::routing::agent_by_extension(&mut conn.ex(), company, dialled)
        .await
        .map_err(internal)?
    {
        drop(conn);
        let mut targets = agent_targets(state, company, Some(&[user]))
            .await
            .map_err(internal)?;
        if state
            .agents
            .status(user)
            .is_some_and(|(shown, tab)| tab && shown != crate::agents::Shown::OnCall)
        {
            targets.push(Target::Browser { user });
        }
        if targets.is_empty() {
            return Err(Reject::new(480, "the agent is not registered"));
        }
        return Ok((CallDirection::Internal, targets, Some(user)));
    }
    drop(conn);
    let Some(number) = crate::domain::phone::normalize_e164(dialled) else {
        return Err(Reject::new(404, "no such extension or number"));
    };
    let trunk = trunks
        .iter()
        .find(|t| t.config.company_id == company && t.peer.is_some())
        .ok_or_else(|| Reject::new(503, "the company has no reachable SIP trunk"))?;
    Ok((
        CallDirection::Out,
        vec![Target::Trunk {
            trunk: Box::new(trunk.clone()),
            number,
        }],
        None,
    ))
}

/// The number a trunk presents as ours: its first DID, else its username.
pub(crate) fn trunk_caller_id(trunk: &TrunkEntry) -> String {
    trunk
        .config
        .settings
        .dids
        .first()
        .cloned()
        .or_else(|| trunk.config.settings.username.clone())
        .unwrap_or_else(|| "anonymous".to_owned())
}

/// Keeps call control's trunk table current: reads the trunks every `poll`, resolves hosts.
pub(crate) async fn refresh_trunks(
    state: Arc<AppState>,
    inputs: mpsc::UnboundedSender<CallInput>,
    poll: Duration,
) {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Vec<(i64, i64)>> = None;
    loop {
        tick.tick().await;
        let loaded = async {
            let mut conn = state.db.conn().await?;
            store::trunks::all_trunks(&mut conn.ex(), &state.keyring).await
        }
        .await;
        let all = match loaded {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "loading trunks for call routing failed");
                continue;
            }
        };
        let print: Vec<(i64, i64)> = all.iter().map(|t| (t.id, t.updated_at.0)).collect();
        // Re-resolve every minute or so even without changes (DNS may move).
        if last.as_ref() == Some(&print) && tick.period().as_secs() > 0 && rand_skip() {
            continue;
        }
        let mut table = Vec::with_capacity(all.len());
        for config in all {
            let peer = match super::super::trunks::resolve(&config).await {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::debug!(trunk = config.id, error = %e, "trunk host does not resolve");
                    None
                }
            };
            let dids = config
                .settings
                .dids
                .iter()
                .map(|d| d.trim_start_matches('+').to_owned())
                .collect();
            table.push(TrunkEntry { config, peer, dids });
        }
        last = Some(print);
        if inputs.send(CallInput::Trunks(Arc::new(table))).is_err() {
            return;
        }
    }
}

/// Skips most unchanged polls (re-resolving about one poll in twelve).
fn rand_skip() -> bool {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    b[0] % 12 != 0
}
