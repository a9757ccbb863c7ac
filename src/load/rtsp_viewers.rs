//! The RTSP viewer mode of `camloop load --rtsp`: N viewers of one RTSP
//! stream, as a [`Mode`] run by [`super::driver`], the loop every mode
//! shares.
//!
//! A viewer goes connect → `DESCRIBE` (the SDP's H.264 track) → `SETUP`
//! (a session, and the transport: `$`-framed on the connection, or a pair
//! of UDP sockets of its own) → `PLAY` → receiving, one request at a time,
//! each answered before the next goes out. A `401` is answered once, with
//! Digest when the server offers it, else Basic (`--auth`); a second `401`
//! is an auth failure. While it plays, a viewer sends `GET_PARAMETER` every
//! half session timeout, as ffmpeg does, and over UDP an RTCP receiver
//! report to the server's RTCP port every few seconds, as GStreamer does.
//!
//! Everything RTSP is camloop's own sans-IO code: responses and `$` frames
//! are read by [`ResponseReader`], RTP is put back into access units by
//! [`Depacketizer`] (which counts the sequence gaps), RTCP is read by
//! [`parse_compound`]. A frame here is an access unit. Its age on arrival
//! comes from the server's sender reports: each ties an RTP time to a wall
//! clock time, so an AU's RTP timestamp gives the wall clock time it was
//! captured at, and this machine's clock minus that is its age (so the
//! server's clock must be this machine's, as for `--mjpeg`).
//!
//! Over UDP, the viewers' sockets are the mode's own sources in the
//! driver's poll: viewer `i`'s RTP socket has token `viewers + 2i` and its
//! RTCP socket the one after. They are bound and registered before the
//! first connect, read here until `WouldBlock` (the RTCP socket first, so
//! that a sender report that came with the first packets dates them), and
//! deregistered when the viewer's connection closes.
//!
//! Frames per viewer, bytes/s and frame ages count only what arrives
//! inside the measurement window. Stalls, drops, lost packets and the
//! time to the first IDR count over the whole run: a viewer starts playing
//! in the warmup.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

use super::driver::{
    self, Close, Closing, Connections, Counts, Measured, Mode, Moment, Progress, SourceTurn,
};
use super::report::{RtspReport, RtspTransport};
use super::udp;
use super::viewing::{
    requests_from_outbox, AuAges, GapRecovery, KeyframeWait, Outbox, StallClock, StreamUrl,
    ViewerFlags, ViewerRun, AUTH_USER,
};
use super::LoadArgs;
use crate::rtsp::auth::{basic_authorization, digest_authorization};
use crate::rtsp::client::{
    control_url, parse_session, sdp_video, ResponseReader, RtspResponse, ServerEvent,
};
use crate::rtsp::depacketize::{Depacketizer, ReceivedAu};
use crate::rtsp::request::{parse_transport, LowerTransport};
use crate::rtsp::rtcp::{ntp_timestamp, parse_compound, receiver_report, RtcpPacket, SenderInfo};
use crate::rtsp::rtp::RTP_CLOCK_HZ;
use crate::timefmt::unix_micros;

/// What the viewers call themselves, in `User-Agent` and their RTCP CNAME.
const USER_AGENT: &str = "camloop-load";
/// The interleaved channels a viewer over TCP asks for: RTP, RTCP.
const CHANNELS: (u8, u8) = (0, 1);
/// How often a viewer over UDP sends a receiver report: within the 2 to 5
/// seconds real clients keep to, far inside any session timeout.
const RECEIVER_REPORT_INTERVAL: Duration = Duration::from_secs(3);
/// The shortest keepalive interval, whatever timeout a server announces.
const MIN_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// The receive buffer asked for each RTP socket: an IDR of a 1080p camera
/// arrives as a burst of datagrams (the kernel caps it at `rmem_max`).
const UDP_RECEIVE_BUFFER_BYTES: usize = 1024 * 1024;
/// Datagrams read from one viewer's RTP socket per turn before the others
/// get theirs.
const DATAGRAMS_PER_TURN: usize = 64;
/// The largest datagram read whole (an RTP packet is an MTU or less).
const MAX_DATAGRAM_BYTES: usize = 64 * 1024;

/// Runs the plan to the end and returns what it measured.
pub(super) fn drive(plan: &RtspPlan) -> Result<RtspReport, String> {
    let schedule = plan.flags.schedule(plan.target);
    driver::drive(RtspViewers::new(plan)?, &schedule)
}

/// The checked, parsed form of the `--rtsp` flags.
#[derive(Debug, Clone)]
pub(super) struct RtspPlan {
    /// The URL as given: what `DESCRIBE` asks for, and the report shows.
    url: String,
    target: SocketAddr,
    pub(super) transport: RtspTransport,
    pub(super) flags: ViewerFlags,
    /// `--auth`: the token a 401 is answered with.
    token: Option<String>,
}

impl RtspPlan {
    pub(super) fn from_args(args: &LoadArgs) -> Result<RtspPlan, String> {
        let url = args.rtsp.clone().ok_or("--rtsp URL is missing")?;
        let flags = ViewerFlags::from_args(args, "--rtsp")?;
        let target = StreamUrl::parse("--rtsp", &url, "rtsp", 554)?.address("--rtsp", &url)?;
        Ok(RtspPlan {
            url,
            target,
            transport: args.transport,
            flags,
            token: args.auth.clone(),
        })
    }
}

/// The requests a viewer sends, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// The session description, to the URL given.
    Describe,
    /// A session and its transport, to the track's URL.
    Setup,
    /// Start sending, to the presentation's URL.
    Play,
    /// `GET_PARAMETER` while playing: the session is still wanted.
    Keepalive,
}

impl Request {
    fn method(self) -> &'static str {
        match self {
            Request::Describe => "DESCRIBE",
            Request::Setup => "SETUP",
            Request::Play => "PLAY",
            Request::Keepalive => "GET_PARAMETER",
        }
    }
}

/// The request a viewer waits for the answer to.
#[derive(Debug, Clone, Copy)]
struct Asked {
    request: Request,
    cseq: u32,
    /// It carried an `Authorization`: a 401 to it is final.
    with_credentials: bool,
}

/// How a viewer answers the server's challenge, once it has had one.
#[derive(Debug, Clone)]
enum Credentials {
    /// A Digest answer to this `WWW-Authenticate` value, for each request.
    Digest(String),
    /// Basic, the same for every request.
    Basic,
}

/// Why the mode closes a viewer; each one is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// A status other than 200, a response that does not parse or answers
    /// no request, an SDP without H.264, or a close before playing.
    Rtsp,
    /// A 401 that credentials did not (or could not) answer.
    Auth,
    /// The server closed or reset the connection while the viewer played.
    Dropped,
}

/// One viewer: its RTSP conversation and what it receives.
struct RtspViewer {
    /// Requests queued and not yet sent.
    out: Outbox,
    reader: ResponseReader,
    next_cseq: u32,
    asked: Option<Asked>,
    credentials: Option<Credentials>,
    /// The Digest client nonce, one per viewer.
    cnonce: String,
    /// From the `DESCRIBE` answer: where `SETUP` goes, and where `PLAY`
    /// and the keepalives go.
    track_url: String,
    presentation_url: String,
    /// From the `SETUP` answer: the session, and over TCP the channels of
    /// RTP and RTCP (those asked for unless the server says otherwise).
    session: Option<String>,
    channels: (u8, u8),
    keepalive_every: Duration,
    /// Set once `PLAY` is answered.
    playing: bool,
    next_keepalive_at: Option<Instant>,
    /// When `PLAY` was queued, until the first IDR arrives.
    play_sent_at: Option<Instant>,
    depacketizer: Depacketizer,
    /// The latest sender report: the RTP time ↔ wall clock mapping.
    sender_report: Option<SenderInfo>,
    clock: StallClock,
    /// Its wait for a keyframe after a sequence gap.
    keyframe_wait: KeyframeWait,
}

/// One viewer's UDP sockets (`--transport udp`).
struct UdpPair {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// Their local ports, for `SETUP`'s `client_port`.
    ports: (u16, u16),
    /// The server's RTCP port (`SETUP`'s `server_port`, else where its
    /// sender reports come from): where receiver reports go.
    server_rtcp: Option<SocketAddr>,
    /// When the next receiver report is due, once the viewer plays.
    next_report_at: Option<Instant>,
    /// The SSRC this viewer's receiver reports carry.
    ssrc: u32,
}

/// The RTSP viewer mode: the plan, the viewers' UDP sockets, the stall
/// checks and the counts (the driver counts connects, I/O errors and the
/// bytes of the connections).
struct RtspViewers<'a> {
    plan: &'a RtspPlan,
    /// Viewer `i`'s sockets at `i`, over UDP (`None` once it closed).
    udp: Vec<Option<UdpPair>>,
    /// The token of viewer 0's RTP socket.
    first_source_token: usize,
    /// One datagram, read into.
    datagram: Vec<u8>,
    /// AUs per viewer, bytes and the ages of the AUs, the stall checks
    /// and the drops.
    run: ViewerRun,
    /// The AU ages of the run's tally, IDRs apart from the others, and
    /// from `PLAY` to each viewer's first IDR.
    ages: AuAges,
    rtp_packets: u64,
    /// Bytes received on the UDP sockets, whole run.
    udp_bytes: u64,
    /// The depacketisers' counts of closed viewers (every viewer is closed
    /// at the end).
    packets_lost: u64,
    sequence_gaps: u64,
    aus_discarded: u64,
    gap_recovery: GapRecovery,
    malformed_rtp: u64,
    sender_reports: u64,
    receiver_reports: u64,
    keepalives: u64,
    rtsp_errors: u64,
    auth_failures: u64,
}

impl<'a> RtspViewers<'a> {
    fn new(plan: &'a RtspPlan) -> Result<Self, String> {
        Ok(RtspViewers {
            plan,
            udp: Vec::new(),
            first_source_token: plan.flags.viewers,
            datagram: vec![0; MAX_DATAGRAM_BYTES],
            run: ViewerRun::new(&plan.flags)?,
            ages: AuAges::new()?,
            rtp_packets: 0,
            udp_bytes: 0,
            packets_lost: 0,
            sequence_gaps: 0,
            aus_discarded: 0,
            gap_recovery: GapRecovery::default(),
            malformed_rtp: 0,
            sender_reports: 0,
            receiver_reports: 0,
            keepalives: 0,
            rtsp_errors: 0,
            auth_failures: 0,
        })
    }

    /// Queues `request` on `viewer`: the request line, `CSeq`, the
    /// credentials once challenged, the session once set up, and what the
    /// request itself needs.
    fn send(
        &self,
        index: usize,
        viewer: &mut RtspViewer,
        request: Request,
    ) -> Result<(), Closing<Reason>> {
        let method = request.method();
        let url = match request {
            Request::Describe => &self.plan.url,
            Request::Setup => &viewer.track_url,
            Request::Play | Request::Keepalive => &viewer.presentation_url,
        };
        let cseq = viewer.next_cseq;
        viewer.next_cseq += 1;
        let mut head =
            format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: {USER_AGENT}\r\n");
        if let Some(credentials) = &viewer.credentials {
            let answer = self.authorization(credentials, method, url, &viewer.cnonce)?;
            head.push_str(&format!("Authorization: {answer}\r\n"));
        }
        if let Some(session) = &viewer.session {
            head.push_str(&format!("Session: {session}\r\n"));
        }
        match request {
            Request::Describe => head.push_str("Accept: application/sdp\r\n"),
            Request::Setup => head.push_str(&format!("Transport: {}\r\n", self.transport(index))),
            Request::Play => head.push_str("Range: npt=0.000-\r\n"),
            Request::Keepalive => {}
        }
        head.push_str("\r\n");
        viewer.out.queue(head.as_bytes());
        viewer.asked = Some(Asked {
            request,
            cseq,
            with_credentials: viewer.credentials.is_some(),
        });
        Ok(())
    }

    /// The `Transport` viewer `index` asks for.
    fn transport(&self, index: usize) -> String {
        match self.udp.get(index).and_then(Option::as_ref) {
            Some(pair) => format!(
                "RTP/AVP;unicast;client_port={}-{}",
                pair.ports.0, pair.ports.1
            ),
            None => format!(
                "RTP/AVP/TCP;unicast;interleaved={}-{}",
                CHANNELS.0, CHANNELS.1
            ),
        }
    }

    /// The `Authorization` value of a request.
    fn authorization(
        &self,
        credentials: &Credentials,
        method: &str,
        url: &str,
        cnonce: &str,
    ) -> Result<String, Closing<Reason>> {
        let token = self.plan.token.as_deref().unwrap_or("");
        match credentials {
            Credentials::Basic => Ok(basic_authorization(AUTH_USER, token)),
            Credentials::Digest(challenge) => digest_authorization(
                challenge, method, url, AUTH_USER, token, cnonce,
            )
            .ok_or_else(|| {
                let why = format!("cannot answer the Digest challenge `{challenge}`");
                Closing::mode(Reason::Auth, Some(why))
            }),
        }
    }

    /// A response to the request `viewer` asked; queues the next one.
    fn on_response(
        &mut self,
        index: usize,
        viewer: &mut RtspViewer,
        response: &RtspResponse,
        at: &Moment,
    ) -> Result<(), Closing<Reason>> {
        let rtsp_error = |message: String| Closing::mode(Reason::Rtsp, Some(message));
        let Some(asked) = viewer.asked.take() else {
            return Err(rtsp_error(format!(
                "RTSP {} {} answers no request",
                response.status, response.reason
            )));
        };
        let method = asked.request.method();
        if response.cseq != Some(asked.cseq) {
            return Err(rtsp_error(format!(
                "the answer to {method} has CSeq {:?}, not {}",
                response.cseq, asked.cseq
            )));
        }
        if response.status == 401 {
            viewer.credentials = Some(self.answer_challenge(response, &asked)?);
            return self.send(index, viewer, asked.request);
        }
        if response.status != 200 {
            return Err(rtsp_error(format!(
                "RTSP {} {} to {method}",
                response.status, response.reason
            )));
        }
        match asked.request {
            Request::Describe => {
                self.described(viewer, response).map_err(rtsp_error)?;
                self.send(index, viewer, Request::Setup)
            }
            Request::Setup => {
                self.set_up(index, viewer, response).map_err(rtsp_error)?;
                viewer.play_sent_at = Some(at.now);
                self.send(index, viewer, Request::Play)
            }
            Request::Play => {
                viewer.playing = true;
                // A stall counts from here, not from the connect.
                viewer.clock.restart(at.now);
                viewer.next_keepalive_at = Some(at.now + viewer.keepalive_every);
                if let Some(pair) = self.udp.get_mut(index).and_then(Option::as_mut) {
                    pair.next_report_at = Some(at.now + RECEIVER_REPORT_INTERVAL);
                }
                Ok(())
            }
            Request::Keepalive => Ok(()),
        }
    }

    /// The credentials a 401 asks for: Digest when offered (and
    /// answerable), else Basic; an error without `--auth`, for a request
    /// that had credentials already, or for a challenge of neither kind.
    fn answer_challenge(
        &self,
        response: &RtspResponse,
        asked: &Asked,
    ) -> Result<Credentials, Closing<Reason>> {
        let refused = |why: &str| {
            let message = format!(
                "RTSP 401 {} to {}: {why}",
                response.reason,
                asked.request.method()
            );
            Closing::mode(Reason::Auth, Some(message))
        };
        if self.plan.token.is_none() {
            return Err(refused("the server wants a token (--auth)"));
        }
        if asked.with_credentials {
            return Err(refused("the server refused the --auth token"));
        }
        let challenges = response.headers_named("WWW-Authenticate");
        choose_credentials(challenges).ok_or_else(|| refused("no Digest or Basic challenge"))
    }

    /// The answer to `DESCRIBE`: the H.264 track and the URLs to set it up
    /// and play it at.
    fn described(&self, viewer: &mut RtspViewer, response: &RtspResponse) -> Result<(), String> {
        let base = response
            .header("Content-Base")
            .or(response.header("Content-Location"))
            .unwrap_or(&self.plan.url);
        let sdp = String::from_utf8_lossy(&response.body);
        let video = sdp_video(&sdp).ok_or("the SDP has no video track")?;
        if let Some(encoding) = video.encoding.as_deref() {
            if !encoding.eq_ignore_ascii_case("H264") {
                return Err(format!("the SDP's video is {encoding}, not H.264"));
            }
        }
        viewer.track_url = control_url(base, video.control.as_deref());
        viewer.presentation_url = base.to_string();
        Ok(())
    }

    /// The answer to `SETUP`: the session, its timeout, and where the
    /// packets come (the channels, or the server's ports).
    fn set_up(
        &mut self,
        index: usize,
        viewer: &mut RtspViewer,
        response: &RtspResponse,
    ) -> Result<(), String> {
        let session = response
            .header("Session")
            .and_then(parse_session)
            .ok_or("the answer to SETUP has no Session")?;
        viewer.session = Some(session.id);
        let half_timeout = Duration::from_secs(u64::from(session.timeout_secs)) / 2;
        viewer.keepalive_every = half_timeout.max(MIN_KEEPALIVE_INTERVAL);
        let transport = response
            .header("Transport")
            .and_then(|value| parse_transport(value).into_iter().next())
            .ok_or("the answer to SETUP has no Transport camloop load reads")?;
        match (
            transport.lower,
            self.udp.get_mut(index).and_then(Option::as_mut),
        ) {
            (LowerTransport::Tcp, None) => {
                viewer.channels = transport.interleaved.unwrap_or(CHANNELS);
            }
            (LowerTransport::Udp, Some(pair)) => {
                pair.server_rtcp = transport
                    .server_port
                    .map(|(_, rtcp)| SocketAddr::new(self.plan.target.ip(), rtcp));
            }
            (lower, _) => return Err(format!("the server chose {lower:?}, not what was asked")),
        }
        Ok(())
    }

    /// An RTP packet of viewer `index`, from its connection or its socket.
    fn on_rtp(&mut self, index: usize, viewer: &mut RtspViewer, packet: &[u8], at: &Moment) {
        self.rtp_packets += 1;
        let gaps_before = viewer.depacketizer.gaps();
        let aus: Vec<ReceivedAu> = viewer.depacketizer.push(packet).collect();
        if viewer.depacketizer.gaps() > gaps_before {
            self.gap_recovery.gap(&mut viewer.keyframe_wait, at.now);
        }
        for au in &aus {
            self.on_au(index, viewer, au, at);
        }
    }

    /// An access unit of viewer `index`: a frame, dated by the last sender
    /// report.
    fn on_au(&mut self, index: usize, viewer: &mut RtspViewer, au: &ReceivedAu, at: &Moment) {
        viewer.clock.restart(at.now);
        let wait = &mut viewer.keyframe_wait;
        self.gap_recovery.access_unit(wait, au.keyframe, at.now);
        if au.keyframe {
            if let Some(play_sent_at) = viewer.play_sent_at.take() {
                self.ages
                    .first_idr(at.now.saturating_duration_since(play_sent_at));
            }
        }
        if !self.run.tally.frame(index, at) {
            return;
        }
        let Some(report) = &viewer.sender_report else {
            self.run.tally.untimed_frames += 1;
            return;
        };
        let now_us = unix_micros(SystemTime::now());
        let age_us = frame_age_us(report, au.timestamp, now_us);
        self.ages.record(&mut self.run.tally, au.keyframe, age_us);
    }

    /// An RTCP packet of `viewer`: its sender reports date the AUs.
    fn on_rtcp(&mut self, viewer: &mut RtspViewer, packet: &[u8]) {
        // RTCP that does not parse is not the load tool's to judge.
        for rtcp in parse_compound(packet).unwrap_or_default() {
            if let RtcpPacket::SenderReport(info) = rtcp {
                viewer.sender_report = Some(info);
                self.sender_reports += 1;
            }
        }
    }

    /// Reads viewer `index`'s sockets: the RTCP one to the end, then the
    /// RTP one up to the turn's budget.
    fn read_udp(&mut self, index: usize, viewer: &mut RtspViewer, at: &Moment) -> SourceTurn {
        let Some(mut pair) = self.udp.get_mut(index).and_then(Option::take) else {
            return SourceTurn::Drained;
        };
        let mut datagram = mem::take(&mut self.datagram);
        while let Ok((length, from)) = pair.rtcp.recv_from(&mut datagram) {
            self.count_udp_bytes(length, at);
            pair.server_rtcp.get_or_insert(from);
            self.on_rtcp(viewer, &datagram[..length]);
        }
        let mut turn = SourceTurn::MoreLeft;
        for _ in 0..DATAGRAMS_PER_TURN {
            // WouldBlock ends the turn; so does any other error (an ICMP
            // error reported on the socket): the next event brings more.
            let Ok(length) = pair.rtp.recv(&mut datagram) else {
                turn = SourceTurn::Drained;
                break;
            };
            self.count_udp_bytes(length, at);
            self.on_rtp(index, viewer, &datagram[..length], at);
        }
        self.datagram = datagram;
        self.udp[index] = Some(pair);
        turn
    }

    fn count_udp_bytes(&mut self, length: usize, at: &Moment) {
        self.udp_bytes += length as u64;
        self.run.tally.bytes(length, at);
    }

    /// Sends viewer `index` its receiver report if one is due.
    fn report_reception(&mut self, index: usize, now: Instant) {
        let Some(pair) = self.udp.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let (Some(due), Some(server)) = (pair.next_report_at, pair.server_rtcp) else {
            return;
        };
        if now < due {
            return;
        }
        pair.next_report_at = Some(now + RECEIVER_REPORT_INTERVAL);
        // A datagram the kernel will not take now is left out, as a
        // real client's would be; the next one is a few seconds away.
        let report = receiver_report(pair.ssrc, USER_AGENT);
        if pair.rtcp.send_to(&report, server).is_ok() {
            self.receiver_reports += 1;
        }
    }

    /// The driver's errors (connect failures, I/O errors) and the mode's.
    /// Stalls and lost packets are not errors.
    fn errors(&self, counts: &Counts) -> u64 {
        counts.errors() + self.rtsp_errors + self.auth_failures + self.run.dropped
    }
}

/// What a viewer answers these `WWW-Authenticate` challenges with: Digest
/// when one is offered (it does not send the token), else Basic; `None`
/// when neither is.
fn choose_credentials<'c>(challenges: impl Iterator<Item = &'c str>) -> Option<Credentials> {
    let mut basic = false;
    for challenge in challenges {
        let scheme = challenge.split_whitespace().next().unwrap_or("");
        if scheme.eq_ignore_ascii_case("Digest") {
            return Some(Credentials::Digest(challenge.to_string()));
        }
        basic |= scheme.eq_ignore_ascii_case("Basic");
    }
    basic.then_some(Credentials::Basic)
}

/// How old an access unit with RTP timestamp `rtp_timestamp` is at
/// `now_us` (microseconds since the Unix epoch), by the sender `report`'s
/// mapping: the time since the report, less how much later than the
/// report the AU was captured. Negative when the AU is dated after `now_us`.
/// Differences of NTP times and of RTP times are taken modulo their size,
/// so wrapping clocks do no harm.
fn frame_age_us(report: &SenderInfo, rtp_timestamp: u32, now_us: u64) -> i64 {
    let since_report = ntp_timestamp(now_us).wrapping_sub(report.ntp_timestamp) as i64;
    // NTP counts in 2^-32 s.
    let since_report_us = ((i128::from(since_report) * 1_000_000) >> 32) as i64;
    let ticks_after_report = i64::from(rtp_timestamp.wrapping_sub(report.rtp_timestamp) as i32);
    let after_report_us = ticks_after_report * 1_000_000 / RTP_CLOCK_HZ as i64;
    since_report_us - after_report_us
}

/// A UDP socket on any free port, with a larger receive buffer if the
/// system allows it.
fn bind_udp(target: SocketAddr) -> io::Result<UdpSocket> {
    udp::bind(udp::unspecified_like(target), UDP_RECEIVE_BUFFER_BYTES)
}

/// A random 32-bit number: an SSRC, a Digest client nonce.
fn random_u32() -> u32 {
    u32::from_be_bytes(crate::sys::random_bytes())
}

impl Mode for RtspViewers<'_> {
    type Conn = RtspViewer;
    type Reason = Reason;
    type Report = RtspReport;

    /// Over UDP: binds and registers two sockets per viewer.
    fn register_sources(&mut self, registry: &Registry, first_token: usize) -> io::Result<()> {
        self.first_source_token = first_token;
        if self.plan.transport != RtspTransport::Udp {
            return Ok(());
        }
        for index in 0..self.plan.flags.viewers {
            let (mut rtp, mut rtcp) = (bind_udp(self.plan.target)?, bind_udp(self.plan.target)?);
            let rtp_token = first_token + 2 * index;
            registry.register(&mut rtp, Token(rtp_token), Interest::READABLE)?;
            registry.register(&mut rtcp, Token(rtp_token + 1), Interest::READABLE)?;
            let ports = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
            self.udp.push(Some(UdpPair {
                rtp,
                rtcp,
                ports,
                server_rtcp: None,
                next_report_at: None,
                ssrc: random_u32(),
            }));
        }
        Ok(())
    }

    fn on_source_ready(
        &mut self,
        token: usize,
        at: &Moment,
        viewers: &mut Connections<RtspViewer>,
    ) -> SourceTurn {
        let index = token.saturating_sub(self.first_source_token) / 2;
        match viewers.get_mut(index) {
            Some(viewer) => self.read_udp(index, viewer, at),
            // Its viewer closed in this turn: the sockets are gone.
            None => SourceTurn::Drained,
        }
    }

    fn deregister_sources(&mut self, index: usize, registry: &Registry) {
        if let Some(mut pair) = self.udp.get_mut(index).and_then(Option::take) {
            let _ = registry.deregister(&mut pair.rtp);
            let _ = registry.deregister(&mut pair.rtcp);
        }
    }

    /// Stall checks, keepalives and receiver reports run from the start of
    /// the run, on the stall checks' clock.
    fn on_start(&mut self, start: Instant) {
        self.run.start(start);
    }

    /// `DESCRIBE` goes out as soon as the connect completes; until an AU
    /// arrives (or `PLAY` is answered), a stall counts from the connect.
    fn open(&mut self, index: usize, now: Instant) -> RtspViewer {
        let mut viewer = RtspViewer {
            out: Outbox::default(),
            reader: ResponseReader::new(),
            next_cseq: 1,
            asked: None,
            credentials: None,
            cnonce: format!("{:08x}", random_u32()),
            track_url: String::new(),
            presentation_url: String::new(),
            session: None,
            channels: CHANNELS,
            keepalive_every: MIN_KEEPALIVE_INTERVAL,
            playing: false,
            next_keepalive_at: None,
            play_sent_at: None,
            depacketizer: Depacketizer::new(),
            sender_report: None,
            clock: StallClock::new(now),
            keyframe_wait: KeyframeWait::default(),
        };
        // A DESCRIBE carries no credentials, so it cannot fail.
        let _ = self.send(index, &mut viewer, Request::Describe);
        viewer
    }

    requests_from_outbox!(RtspViewer);

    /// Responses move the viewer on; `$` frames are its RTP and RTCP.
    fn on_bytes(
        &mut self,
        index: usize,
        viewer: &mut RtspViewer,
        bytes: &[u8],
        at: &Moment,
    ) -> Result<(), Closing<Reason>> {
        viewer.reader.push(bytes);
        self.run.tally.bytes(bytes.len(), at);
        while let Some(event) = viewer.reader.next_event() {
            match event {
                ServerEvent::Response(response) => {
                    self.on_response(index, viewer, &response, at)?;
                }
                ServerEvent::Interleaved { channel, payload } if channel == viewer.channels.0 => {
                    self.on_rtp(index, viewer, &payload, at);
                }
                ServerEvent::Interleaved { channel, payload } if channel == viewer.channels.1 => {
                    self.on_rtcp(viewer, &payload);
                }
                // A channel this viewer did not set up.
                ServerEvent::Interleaved { .. } => {}
                ServerEvent::Error(error) => {
                    return Err(Closing::mode(Reason::Rtsp, Some(error.to_string())));
                }
            }
        }
        Ok(())
    }

    fn on_peer_closed(&self, viewer: &RtspViewer) -> Closing<Reason> {
        if viewer.playing {
            return Closing::mode(Reason::Dropped, None);
        }
        let waiting_for = viewer
            .asked
            .map_or("a request", |asked| asked.request.method());
        let message = format!("the server closed the connection before answering {waiting_for}");
        Closing::mode(Reason::Rtsp, Some(message))
    }

    /// A reset of a playing viewer is the server dropping it.
    fn on_read_error(&self, viewer: &RtspViewer, error: io::Error) -> Closing<Reason> {
        if viewer.playing && error.kind() == io::ErrorKind::ConnectionReset {
            return Closing::mode(Reason::Dropped, Some(error.to_string()));
        }
        Closing::io(error)
    }

    fn on_close(&mut self, viewer: RtspViewer, reason: Close<Reason>) {
        self.gap_recovery.end(&viewer.keyframe_wait, Instant::now());
        let depacketizer = &viewer.depacketizer;
        self.packets_lost += depacketizer.lost_packets();
        self.sequence_gaps += depacketizer.gaps();
        self.aus_discarded += depacketizer.discarded_aus();
        self.malformed_rtp += depacketizer.malformed_packets();
        match reason {
            Close::Mode(Reason::Rtsp) => self.rtsp_errors += 1,
            Close::Mode(Reason::Auth) => self.auth_failures += 1,
            _ => self.run.closed(&viewer.clock, reason, Reason::Dropped),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.run.next_deadline()
    }

    /// Stall checks, then each playing viewer's keepalive (when no request
    /// is in flight) and receiver report, when due.
    fn on_timers(
        &mut self,
        at: &Moment,
        viewers: &mut Connections<RtspViewer>,
        wake: &mut Vec<usize>,
    ) {
        let clocks = viewers.iter_mut().map(|viewer| &mut viewer.clock);
        if !self.run.check_stalls(at.now, clocks) {
            return;
        }
        for (index, viewer) in viewers.iter_indexed_mut() {
            if !viewer.playing {
                continue;
            }
            self.report_reception(index, at.now);
            let due = viewer.next_keepalive_at.is_some_and(|due| at.now >= due);
            if due && viewer.asked.is_none() {
                viewer.next_keepalive_at = Some(at.now + viewer.keepalive_every);
                // Credentials answered every request before this one.
                if self.send(index, viewer, Request::Keepalive).is_ok() {
                    self.keepalives += 1;
                    wake.push(index);
                }
            }
        }
    }

    fn progress_line(&mut self, progress: &Progress) -> String {
        self.run.progress_line(progress)
    }

    fn report(self, measured: Measured) -> RtspReport {
        let errors = self.errors(&measured.counts);
        let ages = self.ages.spreads();
        RtspReport {
            viewing: self
                .run
                .into_viewing(&self.plan.url, self.udp_bytes, &measured),
            transport: self.plan.transport,
            frame_age_idr_us: ages.idr_us,
            frame_age_non_idr_us: ages.non_idr_us,
            first_idr_us: ages.first_idr_us,
            rtp_packets: self.rtp_packets,
            rtp_packets_lost: self.packets_lost,
            sequence_gaps: self.sequence_gaps,
            aus_discarded: self.aus_discarded,
            keyframes_after_gaps: self.gap_recovery.summary(),
            malformed_rtp: self.malformed_rtp,
            sender_reports: self.sender_reports,
            receiver_reports: self.receiver_reports,
            keepalives: self.keepalives,
            rtsp_errors: self.rtsp_errors,
            auth_failures: self.auth_failures,
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender report at `unix_us` on the wall clock and `rtp` on the
    /// RTP clock.
    fn report_at(unix_us: u64, rtp: u32) -> SenderInfo {
        SenderInfo {
            ssrc: 1,
            ntp_timestamp: ntp_timestamp(unix_us),
            rtp_timestamp: rtp,
            packet_count: 0,
            octet_count: 0,
        }
    }

    #[test]
    fn digest_is_chosen_when_offered_else_basic() {
        let digest = r#"Digest realm="camloop", nonce="ab", qop="auth""#;
        let chosen = |challenges: &[&str]| choose_credentials(challenges.iter().copied());
        assert!(matches!(
            chosen(&[r#"Basic realm="camloop""#, digest]),
            Some(Credentials::Digest(challenge)) if challenge == digest
        ));
        assert!(matches!(
            chosen(&[r#"basic realm="x""#]),
            Some(Credentials::Basic)
        ));
        assert!(chosen(&["Bearer x"]).is_none());
        assert!(chosen(&[]).is_none());
    }

    #[test]
    fn a_frame_is_as_old_as_the_sender_report_says() {
        const REPORT_US: u64 = 1_700_000_000_000_000;
        // Captured 100 ms after the report (9000 ticks), arrived 150 ms
        // after it: 50 ms old, within the NTP fraction's rounding.
        let age = |rtp_report: u32, rtp_au: u32, now_us: u64| {
            frame_age_us(&report_at(REPORT_US, rtp_report), rtp_au, now_us)
        };
        let close = |age: i64, expected: i64| (age - expected).abs() <= 1;
        assert!(close(age(1_000, 10_000, REPORT_US + 150_000), 50_000));
        // Both clocks wrap: the RTP one just after the report.
        assert!(close(
            age(u32::MAX - 4_499, 4_500, REPORT_US + 150_000),
            50_000
        ));
        // A GOP cache's AU, captured before the report.
        assert!(close(age(90_000, 0, REPORT_US), 1_000_000));
        // Dated after now: negative, which the tally counts as the future.
        assert!(close(age(0, 90_000, REPORT_US), -1_000_000));
    }
}
