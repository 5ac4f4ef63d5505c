//! The configuration side of [`Baresip`]: the account line and the config directory a
//! [`BaresipBuilder`] writes before it starts the process.

use super::*;

/// The account's SIP transport (`;transport=` of the AOR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
    Tls,
}

impl SipTransport {
    fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// `;answermode=` of the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerMode {
    /// Answer incoming calls at once (no CALL_INCOMING event then).
    Auto,
    /// Ring (CALL_INCOMING) until the `accept` command.
    Manual,
    /// Answer with early media (183).
    Early,
}

#[derive(Clone, Debug)]
enum Source {
    Tone(u32),
    /// A mono WAV file and its sample rate.
    File(PathBuf, u32),
}

/// Settings for one baresip; [`BaresipBuilder::start`] runs it.
#[derive(Clone, Debug)]
#[must_use]
pub struct BaresipBuilder {
    user: String,
    registrar: SocketAddr,
    domain: Option<String>,
    password: Option<String>,
    auth_user: Option<String>,
    transport: SipTransport,
    regint: u32,
    answer_mode: AnswerMode,
    account_params: Vec<String>,
    ca_file: Option<PathBuf>,
    source: Source,
    record: bool,
    lifetime: Duration,
    modules: Vec<String>,
    config_lines: Vec<String>,
    sip_trace: bool,
    verbose: bool,
}

impl BaresipBuilder {
    /// The AOR's host part (`sip:user@<domain>`); by default the registrar's address. When it
    /// differs, requests go to the registrar as the outbound proxy (`;outbound=`).
    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = Some(domain.to_owned());
        self
    }

    /// The digest password (`;auth_pass=`). Must not contain `;` or `>`.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// The digest username when it is not the AOR's user (`;auth_user=`).
    pub fn auth_user(mut self, user: &str) -> Self {
        self.auth_user = Some(user.to_owned());
        self
    }

    /// UDP (default), TCP or TLS.
    pub fn transport(mut self, transport: SipTransport) -> Self {
        self.transport = transport;
        self
    }

    /// The registration interval in seconds (`;regint=`, default 600); 0 does not register.
    pub fn regint(mut self, seconds: u32) -> Self {
        self.regint = seconds;
        self
    }

    /// How incoming calls are answered (default [`AnswerMode::Auto`]).
    pub fn answer_mode(mut self, mode: AnswerMode) -> Self {
        self.answer_mode = mode;
        self
    }

    /// Another account parameter, e.g. `"audio_codecs=pcmu"` or `"mediaenc=srtp"`.
    pub fn account_param(mut self, param: &str) -> Self {
        self.account_params.push(param.to_owned());
        self
    }

    /// `sip_cafile`: a PEM file of trusted CAs (loaded, not enforced, by 1.0.0).
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Send a sine tone of this frequency (`ausine`; the default, 440 Hz).
    pub fn tone(mut self, hz: u32) -> Self {
        self.source = Source::Tone(hz);
        self
    }

    /// Send this mono WAV file of `sample_rate` Hz instead of a tone (`aufile`, which refuses
    /// a file whose rate or channel count differs from what it is told).
    pub fn source_file(mut self, wav: impl Into<PathBuf>, sample_rate: u32) -> Self {
        self.source = Source::File(wav.into(), sample_rate);
        self
    }

    /// Dump each call's audio to WAV files in [`Baresip::dir`] (`sndfile`: one file per
    /// direction, `dump-<local time>-enc.wav` sent, `dump-<local time>-dec.wav` received; see
    /// [`Baresip::recordings`]).
    pub fn record(mut self) -> Self {
        self.record = true;
        self
    }

    /// How long baresip runs before it quits by itself (`-t`; default 120 s).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Load another module (`module <name>.so`), e.g. `"opus"`, `"srtp"`, `"g722"`.
    pub fn module(mut self, name: &str) -> Self {
        self.modules.push(name.to_owned());
        self
    }

    /// Another line of `config`, e.g. `"rtp_timeout 10"`.
    pub fn config_line(mut self, line: &str) -> Self {
        self.config_lines.push(line.to_owned());
        self
    }

    /// Print SIP messages to baresip's log (`-s`; on by default), shown in assertion messages.
    pub fn sip_trace(mut self, on: bool) -> Self {
        self.sip_trace = on;
        self
    }

    /// Debug logging (`-v`).
    pub fn verbose(mut self) -> Self {
        self.verbose = true;
        self
    }

    /// The account line `uanew` gets (and `accounts` documents).
    pub fn account_line(&self) -> String {
        let t = self.transport.name();
        let domain = self
            .domain
            .clone()
            .unwrap_or_else(|| self.registrar.to_string());
        let mut line = format!("<sip:{}@{domain};transport={t}>", self.user);
        if let Some(p) = &self.password {
            let _ = write!(line, ";auth_pass={p}");
        }
        if let Some(u) = &self.auth_user {
            let _ = write!(line, ";auth_user={u}");
        }
        if domain != self.registrar.to_string() {
            let _ = write!(line, ";outbound=\"sip:{};transport={t}\"", self.registrar);
        }
        let mode = match self.answer_mode {
            AnswerMode::Auto => "auto",
            AnswerMode::Manual => "manual",
            AnswerMode::Early => "early",
        };
        let _ = write!(line, ";regint={};answermode={mode}", self.regint);
        for p in &self.account_params {
            let _ = write!(line, ";{p}");
        }
        line
    }

    fn config(&self, dir: &Path, sip_port: u16, ctrl_port: u16) -> String {
        let mut c = String::new();
        let mut line = |l: &str| {
            c.push_str(l);
            c.push('\n');
        };
        line("# Written by tests/peers/baresip.rs: loopback only, no audio device.");
        line("poll_method\tepoll");
        // With a port set, baresip puts TLS on port + 1.
        line(&format!("sip_listen\t127.0.0.1:{sip_port}"));
        if let Some(ca) = &self.ca_file {
            line(&format!("sip_cafile\t{}", ca.display()));
        }
        line("net_interface\t127.0.0.1");
        line("call_local_timeout\t60");
        line("call_max_calls\t4");
        // The source runs at its own rate and channel count and baresip resamples to the
        // codec's: ausine makes 48 kHz stereo only, aufile whatever the file has.
        match &self.source {
            Source::Tone(hz) => {
                line(&format!("audio_source\tausine,{hz}"));
                line("ausrc_srate\t48000");
                line("ausrc_channels\t2");
            }
            Source::File(p, rate) => {
                line(&format!("audio_source\taufile,{}", p.display()));
                line(&format!("ausrc_srate\t{rate}"));
                line("ausrc_channels\t1");
            }
        }
        // aubridge plays into a bridge device that no source reads: a null sink.
        line("audio_player\taubridge,sink");
        line("audio_alert\taubridge,alert");
        line("audio_level\tno");
        line(&format!("module_path\t{MODULE_PATH}"));
        line("module\tg711.so");
        line(match self.source {
            Source::Tone(_) => "module\tausine.so",
            Source::File(..) => "module\taufile.so",
        });
        line("module\taubridge.so");
        if self.record {
            line("module\tsndfile.so");
            line(&format!("snd_path\t{}", dir.display()));
        }
        for m in &self.modules {
            line(&format!("module\t{m}.so"));
        }
        line("module_app\tmenu.so");
        line("module_app\tctrl_tcp.so");
        line(&format!("ctrl_tcp_listen\t127.0.0.1:{ctrl_port}"));
        for l in &self.config_lines {
            line(l);
        }
        c
    }

    /// Starts baresip, connects to ctrl_tcp and adds the account (which then registers unless
    /// `regint` is 0). Panics, with baresip's log, when any of it fails.
    pub fn start(self) -> Baresip {
        assert!(
            super::super::find_binary(super::super::BARESIP).is_some(),
            "baresip is not installed (call peers::require(peers::BARESIP) first)"
        );
        let dir = tempfile::Builder::new()
            .prefix("masterz-baresip.")
            .tempdir()
            .expect("temp dir for baresip");
        let sip_port = free_port_pair();
        let ctrl_port = super::super::free_port();
        std::fs::write(
            dir.path().join("config"),
            self.config(dir.path(), sip_port, ctrl_port),
        )
        .expect("write baresip config");
        let account = self.account_line();
        std::fs::write(
            dir.path().join("accounts"),
            format!(
                "# added over ctrl_tcp with uanew once the harness is connected:\n# {account}\n"
            ),
        )
        .expect("write baresip accounts");

        let mut args = vec![
            "-f".to_owned(),
            dir.path().display().to_string(),
            "-t".to_owned(),
            self.lifetime.as_secs().max(1).to_string(),
        ];
        if self.sip_trace {
            args.push("-s".to_owned());
        }
        if self.verbose {
            args.push("-v".to_owned());
        }
        let stdout = File::create(dir.path().join("stdout.txt")).expect("baresip stdout file");
        let stderr = File::create(dir.path().join("stderr.txt")).expect("baresip stderr file");
        let child = Command::new(super::super::BARESIP)
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start baresip {}: {e}", args.join(" ")));

        let mut baresip = Baresip {
            child: Some(child),
            dir,
            aor: String::new(),
            sip_port,
            ctrl: None,
            frames: None,
            pending: VecDeque::new(),
            seen: Vec::new(),
            responses: Vec::new(),
            next_token: 0,
        };
        baresip.connect(ctrl_port);
        let r = baresip.command("uanew", &account);
        assert!(
            r.ok,
            "baresip uanew {account} failed: {}\n{}",
            r.data,
            baresip.report()
        );
        baresip.aor = format!(
            "sip:{}@{}",
            self.user,
            self.domain.unwrap_or_else(|| self.registrar.to_string())
        );
        baresip
    }
}

/// A port free (UDP and TCP) whose successor is free too: baresip listens for TLS on the SIP
/// port + 1.
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let port = super::super::free_port();
        if port < u16::MAX
            && std::net::UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
    panic!("no two consecutive free ports on 127.0.0.1");
}

impl Baresip {
    /// Settings for a baresip whose account is `sip:<user>@<registrar>`.
    pub fn builder(user: &str, registrar: SocketAddr) -> BaresipBuilder {
        BaresipBuilder {
            user: user.to_owned(),
            registrar,
            domain: None,
            password: None,
            auth_user: None,
            transport: SipTransport::Udp,
            regint: 600,
            answer_mode: AnswerMode::Auto,
            account_params: Vec::new(),
            ca_file: None,
            source: Source::Tone(440),
            record: false,
            lifetime: Duration::from_secs(120),
            modules: Vec::new(),
            config_lines: Vec::new(),
            sip_trace: true,
            verbose: false,
        }
    }
}
