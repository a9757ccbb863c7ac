//! The WebRTC viewer mode of `camloop load --whep`: N viewers of one WHEP
//! endpoint, as a [`Mode`] run by [`super::driver`], the loop every mode
//! shares.
//!
//! Each viewer is a str0m [`Rtc`] with full ICE (str0m refuses a session
//! where both sides are ICE-lite, and servers such as camloop are) and a
//! UDP socket of its own: a server that routes datagrams by their source
//! address would send every viewer's media to the first one if they shared
//! a socket. A viewer makes its offer (one receive-only H.264 video
//! section, a host candidate for its socket, abs-capture-time unless
//! `--no-abs-capture-time`), posts it on its connection (`POST URL`,
//! `Content-Type: application/sdp`, `Authorization: Bearer` with
//! `--auth`), takes the `201`'s answer and its `Location`, and from then
//! on lives on its socket: ICE checks, DTLS, then SRTP that str0m
//! decrypts and puts back into access units. The connection is kept for
//! the `DELETE` of the session when the run ends (in the driver's drain),
//! so the server frees its peer at once.
//!
//! The sockets are the mode's own sources in the driver's poll: viewer
//! `i`'s has token `viewers + i`. They are bound before the first connect
//! to the address of this machine that routes to the server (a host
//! candidate must be an address the server can send to), with a large
//! receive buffer (forced past `rmem_max` as root), and read with the
//! kernel's drop counter. Every viewer's str0m timeout is an entry in one
//! heap, as in the server's peers: nothing scans every viewer per turn.
//!
//! A frame is an access unit as str0m emits it (`MediaData`). Its age on
//! arrival is this machine's clock minus its capture time: the
//! abs-capture-time extension when the answer took it, else the server's
//! RTCP sender reports (str0m hands the latest with each frame); so the
//! server's clock must be this machine's, as for the other modes. The time
//! to the first picture runs from the offer's connect to the viewer's
//! first IDR.
//!
//! Frames per viewer, bytes/s and frame ages count only what arrives
//! inside the measurement window. Stalls, drops, NACKs and the time to the
//! first picture count over the whole run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::crypto::dtls::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::media::{Direction, MediaData, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::rtp::rtcp::SenderInfo;
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use super::driver::{
    self, Close, Closing, Connections, Measured, Mode, Moment, Progress, SourceTurn,
};
use super::report::WhepReport;
use super::udp;
use super::viewing::{
    requests_from_outbox, AuAges, GapRecovery, KeyframeWait, Outbox, ResponseHead, StallClock,
    StreamUrl, ViewerFlags, ViewerRun,
};
use super::LoadArgs;
use crate::rtsp::rtp::RTP_CLOCK_HZ;

/// What the viewers call themselves in `User-Agent`.
const USER_AGENT: &str = "camloop-load";
/// The RTP header extension id of abs-capture-time in the viewers' offers.
const ABS_CAPTURE_TIME_ID: u8 = 7;
/// The receive buffer asked for each viewer's socket: a 720p IDR is a
/// burst of about a hundred datagrams, and this loop serves every viewer.
const RECEIVE_BUFFER_BYTES: usize = 2 * 1024 * 1024;
/// Datagrams read from one viewer's socket per turn before the others get
/// theirs.
const DATAGRAMS_PER_TURN: usize = 64;
/// The largest datagram read whole (str0m's MTU is about 1150 bytes).
const MAX_DATAGRAM_BYTES: usize = 4096;
/// The largest WHEP response body read (an answer is about 1–2 KiB).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long the `DELETE`s at the end may take.
const DELETE_GRACE: Duration = Duration::from_secs(2);
/// How often str0m reports a viewer's ingress stats (NACKs, PLIs).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the plan to the end and returns what it measured.
pub(super) fn drive(plan: &WhepPlan) -> Result<WhepReport, String> {
    let mut schedule = plan.flags.schedule(plan.target);
    // The sessions are deleted after the window.
    schedule.drain = Some(DELETE_GRACE);
    driver::drive(WhepViewers::new(plan)?, &schedule)
}

/// The checked, parsed form of the `--whep` flags.
#[derive(Debug, Clone)]
pub(super) struct WhepPlan {
    /// The URL as given, for the report.
    url: String,
    target: SocketAddr,
    /// `Host`, and the path (with any query) the offers are posted to.
    authority: String,
    path: String,
    /// Where the viewers' sockets bind: the address that routes to the
    /// server.
    local_ip: IpAddr,
    pub(super) flags: ViewerFlags,
    /// `--auth`: sent as `Authorization: Bearer`.
    token: Option<String>,
    /// Offer abs-capture-time (not with `--no-abs-capture-time`).
    abs_capture_time: bool,
}

impl WhepPlan {
    pub(super) fn from_args(args: &LoadArgs) -> Result<WhepPlan, String> {
        let url = args.whep.clone().ok_or("--whep URL is missing")?;
        let flags = ViewerFlags::from_args(args, "--whep")?;
        let StreamUrl { authority, path } = StreamUrl::parse("--whep", &url, "http", 80)?;
        let target = StreamUrl {
            authority: authority.clone(),
            path: path.clone(),
        }
        .address("--whep", &url)?;
        let local_ip = udp::local_ip_towards(target)
            .map_err(|e| format!("--whep {url}: no local address routes to {target}: {e}"))?;
        if let Some(token) = &args.auth {
            if token.is_empty() || token.contains(['\r', '\n']) {
                return Err("--auth: the token must be non-empty and on one line".to_string());
            }
        }
        Ok(WhepPlan {
            url,
            target,
            authority,
            path,
            local_ip,
            flags,
            token: args.auth.clone(),
            abs_capture_time: !args.no_abs_capture_time,
        })
    }

    /// A request to `path`: the offer (`POST` with its SDP) or the end of
    /// a session (`DELETE`).
    fn request(&self, method: &str, path: &str, sdp: Option<&str>) -> Vec<u8> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n",
            self.authority
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = sdp.unwrap_or("");
        if sdp.is_some() {
            head.push_str("Content-Type: application/sdp\r\nAccept: application/sdp\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        head.into_bytes()
    }
}

/// Where a viewer's signalling is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// The offer is posted (or going out); waiting for the answer.
    Offered,
    /// Answered: the session's path, for its `DELETE`.
    Answered { resource: String },
    /// The `DELETE` is out; waiting for its answer.
    Deleting,
    /// Nothing more to say on the connection.
    Done,
}

/// Why the mode closes a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Signalling failed: a status other than 201 (but 401, 403), a
    /// response that does not parse, an answer str0m cannot take or
    /// without `Location`, a close before the answer. An error.
    Whep,
    /// 401 or 403 to the offer. An error.
    Auth,
    /// The server closed the connection of a session it had answered: the
    /// viewer ends, dropped. An error.
    Dropped,
    /// The server closed the connection after the `DELETE`. Not an error.
    Ended,
}

/// One viewer: its str0m session and what it received.
struct WhepViewer {
    rtc: Rtc,
    /// The offer's pending state, until the answer comes.
    pending: Option<SdpPendingOffer>,
    /// Its socket's address: where its datagrams arrive.
    local: SocketAddr,
    out: Outbox,
    /// Response bytes not yet taken.
    inbox: Vec<u8>,
    stage: Stage,
    /// When its connect was issued, until its first IDR.
    waiting_for_picture_since: Option<Instant>,
    /// ICE and DTLS came up.
    ice_connected: bool,
    /// Counted as dropped (ICE consent lost while streaming).
    dropped: bool,
    /// Its current str0m timeout; heap entries for other times are stale.
    timeout_at: Option<Instant>,
    clock: StallClock,
    /// Its wait for a keyframe after a gap.
    keyframe_wait: KeyframeWait,
    /// str0m's latest ingress stats (cumulative).
    nacks: u64,
    keyframe_requests: u64,
    /// The kernel's latest drop count for its socket (cumulative).
    kernel_drops: u32,
}

/// A viewer's session and offer, made before its connection opens.
struct Offer {
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    sdp: String,
}

/// The WebRTC viewer mode: the plan, the viewers' sockets and str0m
/// timers, the stall checks and the counts (the driver counts connects,
/// I/O errors and the bytes of the connections).
struct WhepViewers<'a> {
    plan: &'a WhepPlan,
    crypto: Arc<CryptoProvider>,
    /// One certificate for every viewer: no key generation per viewer.
    cert: DtlsCert,
    /// Viewer `i`'s socket at `i` (`None` once it closed), and its address.
    sockets: Vec<Option<UdpSocket>>,
    local_addrs: Vec<SocketAddr>,
    /// The token of viewer 0's socket.
    first_source_token: usize,
    /// Viewer `i`'s offer, made with its socket before any connect (taken
    /// when its connection opens): a str0m session and its offer cost
    /// this loop a few milliseconds each, which would otherwise fall
    /// between the connects and the requests, in the viewers' time to
    /// the first picture.
    offers: Vec<Option<Offer>>,
    /// (when, viewer) of every viewer's str0m timeout; stale entries are
    /// skipped when they come up.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// One datagram, read into.
    datagram: Vec<u8>,
    run: ViewerRun,
    ages: AuAges,
    /// Sessions answered and not yet deleted (or closed): the drain waits
    /// for them.
    open_sessions: usize,
    receive_buffer_bytes: u64,
    udp_bytes: u64,
    datagrams: u64,
    ice_connected: u64,
    ice_failures: u64,
    dated_by_capture_time: u64,
    dated_by_sender_report: u64,
    discontinuities: u64,
    gap_recovery: GapRecovery,
    /// The str0m and kernel counts of closed viewers (every viewer is
    /// closed at the end).
    nacks_sent: u64,
    keyframe_requests_sent: u64,
    kernel_drops: u64,
    sessions_deleted: u64,
    whep_errors: u64,
    auth_failures: u64,
    /// Errors seen outside a connection's close (ICE lost), for the report.
    first_error: Option<String>,
}

impl<'a> WhepViewers<'a> {
    fn new(plan: &'a WhepPlan) -> Result<Self, String> {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let cert = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or("cannot make a DTLS certificate")?;
        Ok(WhepViewers {
            plan,
            crypto,
            cert,
            sockets: Vec::new(),
            local_addrs: Vec::new(),
            first_source_token: plan.flags.viewers,
            offers: Vec::new(),
            timers: BinaryHeap::new(),
            datagram: vec![0; MAX_DATAGRAM_BYTES],
            run: ViewerRun::new(&plan.flags)?,
            ages: AuAges::new()?,
            open_sessions: 0,
            receive_buffer_bytes: 0,
            udp_bytes: 0,
            datagrams: 0,
            ice_connected: 0,
            ice_failures: 0,
            dated_by_capture_time: 0,
            dated_by_sender_report: 0,
            discontinuities: 0,
            gap_recovery: GapRecovery::default(),
            nacks_sent: 0,
            keyframe_requests_sent: 0,
            kernel_drops: 0,
            sessions_deleted: 0,
            whep_errors: 0,
            auth_failures: 0,
            first_error: None,
        })
    }

    /// A viewer's str0m session and its offer: one receive-only H.264
    /// video section.
    fn make_offer(&self, local: SocketAddr, now: Instant) -> Offer {
        let mut rtc = self.new_rtc(local, now);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let (sdp, pending) = match api.apply() {
            Some((offer, pending)) => (offer.to_sdp_string(), Some(pending)),
            // Not with a section added; an empty offer is refused and
            // reported like any other.
            None => (String::new(), None),
        };
        Offer { rtc, pending, sdp }
    }

    /// A str0m session receiving H.264, full ICE, with a host candidate
    /// for `local`.
    fn new_rtc(&self, local: SocketAddr, now: Instant) -> Rtc {
        let mut config = RtcConfig::new()
            .set_crypto_provider(self.crypto.clone())
            .set_dtls_cert(self.cert.clone())
            .clear_codecs()
            .enable_h264(true)
            .set_stats_interval(Some(STATS_INTERVAL));
        if self.plan.abs_capture_time {
            config = config.set_extension(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime);
        }
        let mut rtc = config.build(now);
        if let Ok(candidate) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(candidate);
        }
        rtc
    }

    /// One whole response on viewer `index`'s connection.
    fn on_response(
        &mut self,
        index: usize,
        viewer: &mut WhepViewer,
        head: &ResponseHead,
        body: &[u8],
        at: &Moment,
    ) -> Result<(), Closing<Reason>> {
        let whep_error = |message: String| Closing::mode(Reason::Whep, Some(message));
        match viewer.stage {
            Stage::Offered => {
                if matches!(head.status, 401 | 403) {
                    let hint = if self.plan.token.is_some() {
                        "the --auth token was refused"
                    } else {
                        "the server wants a token (--auth)"
                    };
                    let message = format!("{} to the offer: {hint}", head.status_line());
                    return Err(Closing::mode(Reason::Auth, Some(message)));
                }
                let resource = self.take_answer(viewer, head, body).map_err(whep_error)?;
                viewer.stage = Stage::Answered { resource };
                self.open_sessions += 1;
                // A stall counts from the answer on.
                viewer.clock.restart(at.now);
                self.drive(index, viewer, at);
                Ok(())
            }
            Stage::Deleting => {
                if (200..300).contains(&head.status) {
                    self.sessions_deleted += 1;
                }
                self.open_sessions -= 1;
                viewer.stage = Stage::Done;
                Ok(())
            }
            Stage::Answered { .. } | Stage::Done => Err(whep_error(format!(
                "{} answers no request",
                head.status_line()
            ))),
        }
    }

    /// The answer to the offer: accepted into the viewer's session; the
    /// session's path, from `Location`.
    fn take_answer(
        &self,
        viewer: &mut WhepViewer,
        head: &ResponseHead,
        body: &[u8],
    ) -> Result<String, String> {
        if head.status != 201 {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(format!(
                "{} to the offer: {}",
                head.status_line(),
                text.trim()
            ));
        }
        let location = head
            .field("Location")
            .ok_or("the answer (201) has no Location")?;
        let sdp = std::str::from_utf8(body).map_err(|_| "the answer's SDP is not UTF-8")?;
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("the answer's SDP: {e}"))?;
        let pending = viewer.pending.take().ok_or("no offer is pending")?;
        viewer
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("the answer: {e}"))?;
        Ok(resource_path(&self.plan.path, location))
    }

    /// Takes everything viewer `index`'s session has to say: datagrams out
    /// of its socket, events handled, its next timeout into the heap.
    fn drive(&mut self, index: usize, viewer: &mut WhepViewer, at: &Moment) {
        loop {
            let output = match viewer.rtc.poll_output() {
                Ok(output) => output,
                Err(e) => {
                    self.note_error(format!("str0m: {e}"));
                    return;
                }
            };
            match output {
                Output::Transmit(transmit) => {
                    if let Some(Some(socket)) = self.sockets.get(index) {
                        // A datagram the kernel will not take now is lost,
                        // as on a real network; str0m asks again.
                        let _ = socket.send_to(&transmit.contents, transmit.destination);
                    }
                }
                Output::Timeout(when) => {
                    let when = when.max(at.now);
                    if viewer.timeout_at != Some(when) {
                        viewer.timeout_at = Some(when);
                        self.timers.push(Reverse((when, index)));
                    }
                    return;
                }
                Output::Event(event) => self.on_event(index, viewer, event, at),
            }
        }
    }

    fn on_event(&mut self, index: usize, viewer: &mut WhepViewer, event: Event, at: &Moment) {
        match event {
            Event::Connected if !viewer.ice_connected => {
                viewer.ice_connected = true;
                self.ice_connected += 1;
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                // Only a drop while the session should stream: after its
                // DELETE the server goes quiet by design.
                let streaming = matches!(viewer.stage, Stage::Answered { .. });
                if streaming && viewer.ice_connected && !viewer.dropped && at.may_start_work() {
                    viewer.dropped = true;
                    self.run.dropped += 1;
                    self.note_error(format!("viewer {index}: ICE disconnected"));
                }
            }
            Event::MediaData(data) => self.on_media(index, viewer, &data, at),
            Event::MediaIngressStats(stats) => {
                viewer.nacks = viewer.nacks.max(stats.nacks);
                viewer.keyframe_requests = viewer.keyframe_requests.max(stats.plis + stats.firs);
            }
            _ => {}
        }
    }

    /// An access unit of viewer `index`: a frame, dated by its capture
    /// time or the sender reports.
    fn on_media(&mut self, index: usize, viewer: &mut WhepViewer, data: &MediaData, at: &Moment) {
        viewer.clock.restart(at.now);
        if !data.contiguous {
            self.discontinuities += 1;
            self.gap_recovery.gap(&mut viewer.keyframe_wait, at.now);
        }
        let keyframe = data.is_keyframe();
        let wait = &mut viewer.keyframe_wait;
        self.gap_recovery.access_unit(wait, keyframe, at.now);
        if keyframe {
            if let Some(since) = viewer.waiting_for_picture_since.take() {
                self.ages.first_idr(at.now.saturating_duration_since(since));
            }
        }
        if !self.run.tally.frame(index, at) {
            return;
        }
        let captured = match (&data.ext_vals.abs_capture_time, &data.last_sender_info) {
            (Some(capture), _) => {
                self.dated_by_capture_time += 1;
                capture.capture_time
            }
            (None, Some(report)) => {
                self.dated_by_sender_report += 1;
                captured_at(report, data.time)
            }
            (None, None) => {
                self.run.tally.untimed_frames += 1;
                return;
            }
        };
        let age_us = signed_micros_since(captured, SystemTime::now());
        self.ages.record(&mut self.run.tally, keyframe, age_us);
    }

    /// Reads viewer `index`'s socket up to the turn's budget, each
    /// datagram into its session.
    fn read_socket(&mut self, index: usize, viewer: &mut WhepViewer, at: &Moment) -> SourceTurn {
        for _ in 0..DATAGRAMS_PER_TURN {
            let Some(Some(socket)) = self.sockets.get(index) else {
                return SourceTurn::Drained;
            };
            // WouldBlock ends the turn; so does any other error (an ICMP
            // error reported on the socket): the next event brings more.
            let Ok(datagram) = udp::receive(socket, &mut self.datagram) else {
                return SourceTurn::Drained;
            };
            self.datagrams += 1;
            self.udp_bytes += datagram.length as u64;
            self.run.tally.bytes(datagram.length, at);
            if let Some(drops) = datagram.kernel_drops {
                viewer.kernel_drops = drops;
            }
            let bytes = &self.datagram[..datagram.length];
            let Ok(contents) = bytes.try_into() else {
                continue; // not STUN, DTLS or (S)RTP
            };
            let input = Input::Receive(
                at.now,
                Receive {
                    proto: Protocol::Udp,
                    source: datagram.from,
                    destination: viewer.local,
                    contents,
                },
            );
            if viewer.rtc.handle_input(input).is_ok() {
                self.drive(index, viewer, at);
            }
        }
        SourceTurn::MoreLeft
    }

    fn note_error(&mut self, error: String) {
        self.first_error.get_or_insert(error);
    }
}

/// When an AU with RTP time `time` was captured, by the sender `report`'s
/// mapping (RTP times differ modulo 2^32, so a wrapping clock does no
/// harm).
fn captured_at(report: &SenderInfo, time: MediaTime) -> SystemTime {
    let ticks = (time.numer() as u32).wrapping_sub(report.rtp_time.numer() as u32) as i32;
    let micros = i64::from(ticks) * 1_000_000 / RTP_CLOCK_HZ as i64;
    let offset = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        report.ntp_time + offset
    } else {
        report.ntp_time - offset
    }
}

/// `now - then` in microseconds, negative when `then` is after `now`.
fn signed_micros_since(then: SystemTime, now: SystemTime) -> i64 {
    match now.duration_since(then) {
        Ok(age) => age.as_micros() as i64,
        Err(ahead) => -(ahead.duration().as_micros() as i64),
    }
}

/// The path of a session, from the `Location` answering a `POST` to
/// `post_path`: an absolute URL's path, an absolute path, or a relative
/// one resolved against the posted path (it replaces the last segment,
/// RFC 3986 §5.2), which keeps the posted query (a `?token=`) when it has
/// none of its own.
fn resource_path(post_path: &str, location: &str) -> String {
    let after_scheme = location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("https://"));
    if let Some(rest) = after_scheme {
        return rest
            .find('/')
            .map_or("/".to_string(), |at| rest[at..].to_string());
    }
    if location.starts_with('/') {
        return location.to_string();
    }
    let (path, query) = match post_path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (post_path, None),
    };
    let directory = &path[..path.rfind('/').map_or(0, |at| at + 1)];
    let mut resolved = format!("{directory}{location}");
    if let (Some(query), false) = (query, location.contains('?')) {
        resolved.push('?');
        resolved.push_str(query);
    }
    resolved
}

/// The body length a response head announces (none: 0).
fn content_length(head: &ResponseHead) -> Result<usize, String> {
    let Some(value) = head.field("Content-Length") else {
        return Ok(0);
    };
    match value.trim().parse::<usize>() {
        Ok(length) if length <= MAX_BODY_BYTES => Ok(length),
        Ok(length) => Err(format!("a response body of {length} bytes (over 64 KiB)")),
        Err(_) => Err(format!("Content-Length `{value}`")),
    }
}

impl Mode for WhepViewers<'_> {
    type Conn = WhepViewer;
    type Reason = Reason;
    type Report = WhepReport;

    /// Binds and registers a socket per viewer.
    fn register_sources(&mut self, registry: &Registry, first_token: usize) -> io::Result<()> {
        self.first_source_token = first_token;
        for index in 0..self.plan.flags.viewers {
            let local = SocketAddr::new(self.plan.local_ip, 0);
            let mut socket = udp::bind(local, RECEIVE_BUFFER_BYTES)?;
            registry.register(&mut socket, Token(first_token + index), Interest::READABLE)?;
            self.receive_buffer_bytes = udp::receive_buffer_bytes(&socket) as u64;
            let local = socket.local_addr()?;
            self.local_addrs.push(local);
            self.sockets.push(Some(socket));
            self.offers
                .push(Some(self.make_offer(local, Instant::now())));
        }
        Ok(())
    }

    fn on_source_ready(
        &mut self,
        token: usize,
        at: &Moment,
        viewers: &mut Connections<WhepViewer>,
    ) -> SourceTurn {
        let index = token.saturating_sub(self.first_source_token);
        match viewers.get_mut(index) {
            Some(viewer) => self.read_socket(index, viewer, at),
            // Its viewer closed in this turn: the socket is gone.
            None => SourceTurn::Drained,
        }
    }

    fn deregister_sources(&mut self, index: usize, registry: &Registry) {
        if let Some(mut socket) = self.sockets.get_mut(index).and_then(Option::take) {
            let _ = registry.deregister(&mut socket);
        }
    }

    fn on_start(&mut self, start: Instant) {
        self.run.start(start);
    }

    /// The offer goes out as soon as the connect completes; until an AU
    /// arrives (or the answer), a stall counts from the connect.
    fn open(&mut self, index: usize, now: Instant) -> WhepViewer {
        let local = self.local_addrs[index];
        let prepared = self.offers.get_mut(index).and_then(Option::take);
        let Offer { rtc, pending, sdp } = prepared.unwrap_or_else(|| self.make_offer(local, now));
        let mut out = Outbox::default();
        out.queue(&self.plan.request("POST", &self.plan.path, Some(&sdp)));
        WhepViewer {
            rtc,
            pending,
            local,
            out,
            inbox: Vec::new(),
            stage: Stage::Offered,
            waiting_for_picture_since: Some(now),
            ice_connected: false,
            dropped: false,
            timeout_at: None,
            clock: StallClock::new(now),
            keyframe_wait: KeyframeWait::default(),
            nacks: 0,
            keyframe_requests: 0,
            kernel_drops: 0,
        }
    }

    requests_from_outbox!(WhepViewer);

    /// Whole responses (head and `Content-Length` body), one at a time.
    fn on_bytes(
        &mut self,
        index: usize,
        viewer: &mut WhepViewer,
        bytes: &[u8],
        at: &Moment,
    ) -> Result<(), Closing<Reason>> {
        let whep_error = |message: String| Closing::mode(Reason::Whep, Some(message));
        viewer.inbox.extend_from_slice(bytes);
        loop {
            let Some(head) = ResponseHead::parse(&viewer.inbox).map_err(whep_error)? else {
                return Ok(());
            };
            let end = head.length + content_length(&head).map_err(whep_error)?;
            if viewer.inbox.len() < end {
                return Ok(());
            }
            let body: Vec<u8> = viewer.inbox.drain(..end).skip(head.length).collect();
            self.on_response(index, viewer, &head, &body, at)?;
        }
    }

    fn on_peer_closed(&self, viewer: &WhepViewer) -> Closing<Reason> {
        match viewer.stage {
            Stage::Offered => Closing::mode(
                Reason::Whep,
                Some("the server closed the connection before answering the offer".to_string()),
            ),
            Stage::Answered { .. } => Closing::mode(
                Reason::Dropped,
                Some("the server closed the WHEP connection of a session".to_string()),
            ),
            Stage::Deleting | Stage::Done => Closing::mode(Reason::Ended, None),
        }
    }

    fn on_close(&mut self, viewer: WhepViewer, reason: Close<Reason>) {
        self.gap_recovery.end(&viewer.keyframe_wait, Instant::now());
        self.nacks_sent += viewer.nacks;
        self.keyframe_requests_sent += viewer.keyframe_requests;
        self.kernel_drops += u64::from(viewer.kernel_drops);
        if matches!(viewer.stage, Stage::Answered { .. } | Stage::Deleting) {
            self.open_sessions -= 1;
            if !viewer.ice_connected {
                self.ice_failures += 1;
            }
        }
        match reason {
            Close::Mode(Reason::Whep) => self.whep_errors += 1,
            Close::Mode(Reason::Auth) => self.auth_failures += 1,
            // Counted when ICE went.
            _ if viewer.dropped => {}
            _ => self.run.closed(&viewer.clock, reason, Reason::Dropped),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let timers = self.timers.peek().map(|Reverse((when, _))| *when);
        match (self.run.next_deadline(), timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Stall checks while the run is on, the `DELETE`s once it is over,
    /// then the str0m timeouts that are due.
    fn on_timers(
        &mut self,
        at: &Moment,
        viewers: &mut Connections<WhepViewer>,
        wake: &mut Vec<usize>,
    ) {
        if at.may_start_work() {
            let clocks = viewers.iter_mut().map(|viewer| &mut viewer.clock);
            self.run.check_stalls(at.now, clocks);
        } else {
            for (index, viewer) in viewers.iter_indexed_mut() {
                if let Stage::Answered { resource } = &viewer.stage {
                    let request = self.plan.request("DELETE", resource, None);
                    viewer.out.queue(&request);
                    viewer.stage = Stage::Deleting;
                    wake.push(index);
                }
            }
        }
        while let Some(&Reverse((when, index))) = self.timers.peek() {
            if when > at.now {
                break;
            }
            self.timers.pop();
            let Some(viewer) = viewers.get_mut(index) else {
                continue; // closed
            };
            if viewer.timeout_at != Some(when) {
                continue; // replaced by a later one
            }
            viewer.timeout_at = None;
            if viewer.rtc.handle_input(Input::Timeout(at.now)).is_ok() {
                self.drive(index, viewer, at);
            }
        }
    }

    /// The drain lasts while sessions wait for their `DELETE`'s answer.
    fn awaiting_replies(&self) -> bool {
        self.open_sessions > 0
    }

    fn progress_line(&mut self, progress: &Progress) -> String {
        self.run.progress_line(progress)
    }

    fn report(self, mut measured: Measured) -> WhepReport {
        if measured.counts.first_error.is_none() {
            measured.counts.first_error = self.first_error.clone();
        }
        let errors = measured.counts.errors()
            + self.whep_errors
            + self.auth_failures
            + self.ice_failures
            + self.run.dropped;
        WhepReport {
            viewing: self
                .run
                .into_viewing(&self.plan.url, self.udp_bytes, &measured),
            ages: self.ages.spreads(),
            ice_connected: self.ice_connected,
            ice_failures: self.ice_failures,
            dated_by_capture_time: self.dated_by_capture_time,
            dated_by_sender_report: self.dated_by_sender_report,
            datagrams: self.datagrams,
            discontinuities: self.discontinuities,
            keyframes_after_gaps: self.gap_recovery.summary(),
            nacks_sent: self.nacks_sent,
            keyframe_requests_sent: self.keyframe_requests_sent,
            kernel_drops: self.kernel_drops,
            receive_buffer_bytes: self.receive_buffer_bytes,
            sessions_deleted: self.sessions_deleted,
            whep_errors: self.whep_errors,
            auth_failures: self.auth_failures,
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_resolves_against_the_posted_path() {
        assert_eq!(resource_path("/whep", "whep/ab12"), "/whep/ab12");
        assert_eq!(resource_path("/door/whep", "whep/ab12"), "/door/whep/ab12");
        assert_eq!(
            resource_path("/whep?token=t", "whep/ab12"),
            "/whep/ab12?token=t"
        );
        assert_eq!(resource_path("/whep", "/sessions/1"), "/sessions/1");
        assert_eq!(
            resource_path("/whep", "http://cam:8080/s/1?x=y"),
            "/s/1?x=y"
        );
    }

    #[test]
    fn a_frame_is_dated_by_the_sender_report() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let report = SenderInfo {
            ssrc: 1.into(),
            ntp_time: at,
            rtp_time: MediaTime::from_90khz(u64::from(u32::MAX) - 4_499),
            sender_packet_count: 0,
            sender_octet_count: 0,
        };
        // 9000 ticks after the report, across the RTP clock's wrap.
        let captured = captured_at(&report, MediaTime::from_90khz(4_500));
        assert_eq!(captured, at + Duration::from_millis(100));
        let before = captured_at(&report, MediaTime::from_90khz(u64::from(u32::MAX) - 13_499));
        assert_eq!(before, at - Duration::from_millis(100));
        assert_eq!(
            signed_micros_since(at, at + Duration::from_millis(3)),
            3_000
        );
        assert_eq!(
            signed_micros_since(at + Duration::from_millis(3), at),
            -3_000
        );
    }
}
