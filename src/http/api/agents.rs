//! Agents: presence over REST, and the agent WebSocket that the web app's tabs keep open
//! (docs/agent-websocket.md): call views and presence go out, call commands come in.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::agents::{Presence, ServerFrame, Shown};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::error::ApiJson;
use crate::http::extract::{Authz, perm};
use crate::store;
use crate::telephony::{AgentCommand, AgentRequest};

/// The keepalive interval of the agent WebSocket.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A tab silent this long (no frame, no pong) is closed.
const SILENT_CLOSE: Duration = Duration::from_secs(65);
/// Largest frame a tab may send (an SDP answer is a few kB).
const MAX_FRAME: usize = 64 * 1024;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_agents))
        .routes(routes!(set_presence))
        // Not in the OpenAPI document: a WebSocket is not a JSON request and response.
        .route("/agent/ws", axum::routing::get(agent_websocket))
}

/// An agent and where they can be reached.
#[derive(Serialize, ToSchema)]
pub(super) struct AgentPresence {
    /// The user.
    id: i64,
    /// Name.
    name: String,
    /// Email.
    email: String,
    /// SIP username (extension), if the user has SIP credentials.
    extension: Option<String>,
    /// `available`, `away`, `on_call` (a call connected) or `offline` (no tab, no softphone).
    #[schema(value_type = String)]
    presence: Shown,
    /// A tab of the web app is connected.
    browser: bool,
    /// A SIP registration is live.
    softphone: bool,
}

/// The company's agents with their presence: routing rings those `available`.
#[utoipa::path(get, path = "/agents", tag = "agents",
    responses((status = 200, body = Vec<AgentPresence>)))]
async fn list_agents(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsRead>,
) -> Result<Json<Vec<AgentPresence>>, ApiError> {
    let mut conn = state.db.conn().await?;
    let rows = store::users::agents(
        &mut conn.ex(),
        auth.company(),
        crate::domain::Timestamp::now().0,
    )
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| {
                let (shown, browser) = state
                    .agents
                    .status(r.id)
                    .unwrap_or((chosen_shown(&r.presence), false));
                let presence = match shown {
                    Shown::OnCall => Shown::OnCall,
                    _ if !browser && !r.registered => Shown::Offline,
                    _ => chosen_shown(&r.presence),
                };
                AgentPresence {
                    id: r.id.0,
                    name: r.name,
                    email: r.email,
                    extension: r.extension,
                    presence,
                    browser,
                    softphone: r.registered,
                }
            })
            .collect(),
    ))
}

fn chosen_shown(stored: &str) -> Shown {
    match Presence::parse(stored) {
        Presence::Available => Shown::Available,
        Presence::Away => Shown::Away,
    }
}

/// A presence choice.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PresenceBody {
    /// `available` or `away`.
    #[schema(value_type = String)]
    status: Presence,
}

/// Sets one's own presence (every open tab hears of it). Stored: it survives a restart.
#[utoipa::path(put, path = "/agents/me/presence", tag = "agents", request_body = PresenceBody,
    responses((status = 200, body = PresenceBody)))]
async fn set_presence(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsRead>,
    ApiJson(body): ApiJson<PresenceBody>,
) -> Result<Json<PresenceBody>, ApiError> {
    store_presence(&state, auth.company(), auth.principal.user_id, body.status).await?;
    Ok(Json(body))
}

async fn store_presence(
    state: &AppState,
    company: crate::domain::CompanyId,
    user: crate::domain::UserId,
    p: Presence,
) -> Result<(), ApiError> {
    let mut conn = state.db.conn().await?;
    store::users::set_presence(&mut conn.ex(), company, user, p.as_str()).await?;
    drop(conn);
    state.agents.set_presence(company, user, p);
    Ok(())
}

#[derive(Deserialize)]
struct WsQuery {
    tab: Option<String>,
}

fn valid_tab(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `Origin` (when sent) names the host the request was sent to: another site's page
/// cannot use the agent's cookie to open the socket.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

async fn agent_websocket(
    State(state): State<Arc<AppState>>,
    auth: Authz<perm::ConversationsRead>,
    headers: HeaderMap,
    Query(q): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "the page is not from this server",
        )
        .into_response();
    }
    let tab = q.tab.unwrap_or_else(|| "default".to_owned());
    if !valid_tab(&tab) {
        return ApiError::invalid("tab", "1-64 characters of A-Z, a-z, 0-9, - and _")
            .into_response();
    }
    let company = auth.company();
    let user = auth.principal.user_id;
    let can_dial = auth
        .principal
        .can(crate::domain::Permission::CustomersWrite);
    let inbox = auth
        .principal
        .can(crate::domain::Permission::ConversationsRead);
    let me = match hello_user(&state, company, user).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    upgrade
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            let tab = Tab {
                state,
                company,
                user,
                tab,
                can_dial,
                inbox,
            };
            tab.run(socket, me).await;
        })
}

async fn hello_user(
    state: &AppState,
    company: crate::domain::CompanyId,
    user: crate::domain::UserId,
) -> Result<(serde_json::Value, Presence), ApiError> {
    let mut conn = state.db.conn().await?;
    let u = store::users::get_user(&mut conn.ex(), company, user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let presence = store::users::presence(&mut conn.ex(), company, user)
        .await?
        .map_or(Presence::Available, |p| Presence::parse(&p));
    Ok((
        serde_json::json!({
            "id": u.id.0, "name": u.name, "email": u.email, "extension": u.sip_username,
        }),
        presence,
    ))
}

/// A frame from the page.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Presence { status: Presence },
    Answer { leg: LegRef },
    Sdp { leg: LegRef, sdp: String },
    Decline { leg: LegRef },
    Hangup { leg: LegRef },
    Hold { leg: LegRef, on: bool },
    Dtmf { leg: LegRef, digits: String },
    Transfer { leg: LegRef, to: String },
    Dial { number: String },
    Ping,
    Pong,
}

/// A leg id, as the string the server sends or as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum LegRef {
    Num(u64),
    Str(String),
}

impl LegRef {
    fn get(&self) -> Option<u64> {
        match self {
            LegRef::Num(n) => Some(*n),
            LegRef::Str(s) => s.parse().ok(),
        }
    }
}

struct Tab {
    state: Arc<AppState>,
    company: crate::domain::CompanyId,
    user: crate::domain::UserId,
    tab: String,
    can_dial: bool,
    inbox: bool,
}

impl Tab {
    async fn run(self, mut socket: WebSocket, (me, presence): (serde_json::Value, Presence)) {
        let (conn, mut frames) =
            self.state
                .agents
                .connect(self.company, self.user, &self.tab, presence, me);
        self.state.agents.set_inbox(self.user, self.inbox);
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut last_heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                f = frames.recv() => {
                    // None: another connection of this tab took over.
                    let Some(f) = f else { break };
                    if send(&mut socket, &f).await.is_err() {
                        break;
                    }
                }
                m = socket.recv() => {
                    let Some(Ok(m)) = m else { break };
                    last_heard = tokio::time::Instant::now();
                    match m {
                        Message::Text(t) => {
                            let reply = self.on_frame(t.as_str()).await;
                            match reply {
                                Ok(Some(r)) => {
                                    if send(&mut socket, &r).await.is_err() {
                                        break;
                                    }
                                }
                                Ok(None) => {}
                                Err(()) => {
                                    let _ = socket
                                        .send(Message::Close(Some(CloseFrame {
                                            code: 1003,
                                            reason: "frames are JSON objects".into(),
                                        })))
                                        .await;
                                    break;
                                }
                            }
                        }
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > SILENT_CLOSE {
                        break;
                    }
                    if send(&mut socket, &ServerFrame::Ping).await.is_err() {
                        break;
                    }
                }
            }
        }
        self.state.agents.disconnect(self.user, conn);
    }

    /// Handles one text frame; `Err` when it is not JSON at all.
    async fn on_frame(&self, text: &str) -> Result<Option<ServerFrame>, ()> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| ())?;
        let frame: ClientFrame = match serde_json::from_value(value) {
            Ok(f) => f,
            Err(e) => {
                return Ok(Some(ServerFrame::Error {
                    leg: None,
                    message: format!("unknown or malformed frame: {e}"),
                }));
            }
        };
        let error = |m: &str| {
            Ok(Some(ServerFrame::Error {
                leg: None,
                message: m.to_owned(),
            }))
        };
        let leg_of = |l: &LegRef| l.get();
        let cmd = match frame {
            ClientFrame::Ping => return Ok(Some(ServerFrame::Pong)),
            ClientFrame::Pong => return Ok(None),
            ClientFrame::Presence { status } => {
                return match store_presence(&self.state, self.company, self.user, status).await {
                    Ok(()) => Ok(None),
                    Err(_) => error("presence could not be saved"),
                };
            }
            ClientFrame::Dial { number } => {
                if !self.can_dial {
                    return error("your role may not place calls");
                }
                if number.trim().is_empty() || number.chars().count() > 64 {
                    return error("not a phone number or extension");
                }
                AgentCommand::Dial {
                    number: number.trim().to_owned(),
                }
            }
            ClientFrame::Answer { leg } => match leg_of(&leg) {
                Some(leg) => AgentCommand::Answer { leg },
                None => return error("no such call"),
            },
            ClientFrame::Sdp { leg, sdp } => match leg_of(&leg) {
                Some(leg) => AgentCommand::Sdp { leg, sdp },
                None => return error("no such call"),
            },
            ClientFrame::Decline { leg } => match leg_of(&leg) {
                Some(leg) => AgentCommand::Decline { leg },
                None => return error("no such call"),
            },
            ClientFrame::Hangup { leg } => match leg_of(&leg) {
                Some(leg) => AgentCommand::Hangup { leg },
                None => return error("no such call"),
            },
            ClientFrame::Hold { leg, on } => match leg_of(&leg) {
                Some(leg) => AgentCommand::Hold { leg, on },
                None => return error("no such call"),
            },
            ClientFrame::Dtmf { leg, digits } => match leg_of(&leg) {
                Some(leg) => AgentCommand::Dtmf { leg, digits },
                None => return error("no such call"),
            },
            ClientFrame::Transfer { leg, to } => match leg_of(&leg) {
                Some(leg) if !to.trim().is_empty() && to.len() <= 64 => AgentCommand::Transfer {
                    leg,
                    to: to.trim().to_owned(),
                },
                Some(_) => return error("transfer to an extension or a user id"),
                None => return error("no such call"),
            },
        };
        let Some(telephony) = self.state.telephony.get() else {
            return error("telephony is not running");
        };
        let sent = telephony.agent_command(AgentRequest {
            company: self.company,
            user: self.user,
            tab: self.tab.clone(),
            cmd,
        });
        if sent {
            Ok(None)
        } else {
            error("call control is not running")
        }
    }
}

async fn send(socket: &mut WebSocket, frame: &ServerFrame) -> Result<(), axum::Error> {
    let text = serde_json::to_string(frame).unwrap_or_else(|_| "{}".to_owned());
    socket.send(Message::Text(text.into())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn tab_ids_are_short_and_plain() {
        assert!(valid_tab("t-1_A"));
        assert!(!valid_tab(""));
        assert!(!valid_tab("a b"));
        assert!(!valid_tab(&"x".repeat(65)));
    }

    #[test]
    fn frames_parse_with_string_or_number_legs() {
        let f: ClientFrame = serde_json::from_str(r#"{"type":"answer","leg":"42"}"#).unwrap();
        assert!(matches!(f, ClientFrame::Answer { leg } if leg.get() == Some(42)));
        let f: ClientFrame = serde_json::from_str(r#"{"type":"hold","leg":7,"on":true}"#).unwrap();
        assert!(matches!(f, ClientFrame::Hold { leg, on: true } if leg.get() == Some(7)));
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"launch"}"#).is_err());
    }
}
