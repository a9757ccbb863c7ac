//! The RTSP session of one connection: requests in, responses out, and,
//! once it plays, the camera's RTP packets interleaved on the same socket.
//!
//! Parsing and the bytes of responses, SDP, RTP and RTCP come from
//! [`crate::rtsp`]; this module decides what each request does to the
//! server, in the order clients send them: `OPTIONS`, `DESCRIBE` (the SDP
//! from the camera's SPS and PPS, waiting for them if the camera has none
//! yet), `SETUP` (TCP interleaved: one session per connection), `PLAY`
//! (the GOP cache at once, then every access unit under the skip-to-IDR
//! rule), `TEARDOWN`, and `GET_PARAMETER` or `OPTIONS` as keepalives.
//! Any request, and any RTCP packet the client sends (GStreamer sends
//! only its receiver reports for minutes), keeps the session alive.
//!
//! Like the other sessions it works through a [`Context`] and never sees
//! the socket; the packets it queues are the camera's, shared by every
//! viewer ([`super::rtp_stream`]).

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::cameras::UdpViewer;
use super::connection::Context;
use super::core::{AuOffer, Core, Offer, ServerConfig};
use super::rtp_stream::SENDER_REPORT_INTERVAL;
use crate::camera::converter::Direction;
use crate::h264::follow::{Admit, AuFollower, Offered, Sent};
use crate::h264::ParameterSets;
use crate::rtsp::auth::{self, AuthFailure};
use crate::rtsp::request::{parse_target, parse_transport, LowerTransport, Method};
use crate::rtsp::response::{
    push_interleaved, response, status_response, ResponseFields, CONTENT_TYPE_SDP,
    INTERLEAVED_HEADER_BYTES, PUBLIC_METHODS,
};
use crate::rtsp::rtcp::is_rtcp;
use crate::rtsp::sdp::TRACK_CONTROL;
use crate::rtsp::{session_description, RtspEvent, RtspReader, RtspRequest, SdpSession};

/// The lowest UDP port a client may ask packets to be sent to: below it
/// are the system's services, which an RTSP client could otherwise aim
/// camloop's packets at.
const MIN_CLIENT_PORT: u16 = 1024;

/// The interleaved channels a `SETUP` without `interleaved=` gets.
const DEFAULT_CHANNELS: (u8, u8) = (0, 1);

/// How a session's packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// On the RTSP connection, `$`-framed on these channels (RTP, RTCP).
    Interleaved(u8, u8),
    /// As UDP datagrams to these ports of the RTSP peer's own address.
    Udp {
        rtp_to: SocketAddr,
        rtcp_to: SocketAddr,
    },
}

/// A session: the camera it is for, its id and how its packets travel.
#[derive(Debug, Clone)]
struct Binding {
    camera: usize,
    /// The `Session` id, random hex.
    id: String,
    delivery: Delivery,
}

impl Binding {
    /// The interleaved channels, for a session over TCP.
    fn channels(&self) -> Option<(u8, u8)> {
        match self.delivery {
            Delivery::Interleaved(rtp, rtcp) => Some((rtp, rtcp)),
            Delivery::Udp { .. } => None,
        }
    }
}

/// Where the connection's one session is.
enum RtspState {
    /// No `SETUP` yet (or after `TEARDOWN`).
    Init,
    /// Set up, not playing (or paused).
    Ready(Binding),
    /// Receiving the camera's packets.
    Playing {
        binding: Binding,
        /// Its place in the stream (the skip-to-IDR rule).
        follower: AuFollower,
        /// When it is due its next sender report.
        next_report_at: Instant,
    },
}

/// Protocol state of one RTSP connection.
pub struct RtspSession {
    reader: RtspReader,
    state: RtspState,
    /// When the unfinished request head started arriving.
    head_started: Option<Instant>,
    /// The last request or RTCP packet from the client: the session
    /// timeout counts from here (the server's own writes do not count).
    last_heard: Instant,
    /// The Digest nonce of this connection, made at its first challenge
    /// and valid for the connection's life (keepalives reuse it).
    nonce: Option<String>,
    /// A `DESCRIBE` waiting for its camera's SPS and PPS, and the camera.
    waiting_describe: Option<(RtspRequest, usize)>,
}

impl RtspSession {
    /// A session for a connection accepted at `now`.
    pub fn new(now: Instant) -> Self {
        RtspSession {
            reader: RtspReader::new(),
            state: RtspState::Init,
            head_started: None,
            last_heard: now,
            nonce: None,
            waiting_describe: None,
        }
    }

    /// Whether reading more makes sense now: not while a `DESCRIBE` waits
    /// (the socket's buffer is the queue, as for HTTP).
    pub fn accepts_input(&self) -> bool {
        self.waiting_describe.is_none()
    }

    /// Nothing is waiting for the camera.
    pub fn is_idle(&self) -> bool {
        self.waiting_describe.is_none()
    }

    /// The camera this connection plays, if it plays.
    pub fn viewed_camera(&self) -> Option<usize> {
        match &self.state {
            RtspState::Playing { binding, .. } => Some(binding.camera),
            _ => None,
        }
    }

    /// The camera a `DESCRIBE` of this connection waits for, if one does.
    pub fn awaited_camera(&self) -> Option<usize> {
        self.waiting_describe.as_ref().map(|(_, camera)| *camera)
    }

    /// The deadline this connection is held to: the head timeout while a
    /// request is half received, else the session timeout from the last
    /// thing heard from the client (none while a `DESCRIBE` waits: the
    /// camera timeout bounds that).
    pub fn deadline(&self, config: &ServerConfig) -> Option<Instant> {
        if self.waiting_describe.is_some() {
            return None;
        }
        Some(match self.head_started {
            Some(started) => started + config.http_head_timeout,
            None => self.last_heard + config.rtsp_session_timeout,
        })
    }

    /// The deadline passed: a half-received head gets 408; a session the
    /// client stopped keeping alive just ends (the loop closes it).
    pub fn timed_out(&mut self, cx: &mut Context, core: &mut Core) {
        if self.head_started.is_some() {
            log::debug!("rtsp client {}: request head timed out", cx.peer);
            core.counters.errors += 1;
            cx.output.push_bytes(&status_response(408, None));
        } else {
            log::info!(
                "rtsp client {}: no request or RTCP for {} s, session closed",
                cx.peer,
                core.config.rtsp_session_timeout.as_secs()
            );
        }
    }

    /// Takes one read's bytes and handles every complete message in them.
    pub fn input(&mut self, cx: &mut Context, core: &mut Core, bytes: &[u8], now: Instant) {
        self.reader.push(bytes);
        self.run_queued(cx, core, now);
    }

    /// Handles buffered messages while nothing blocks them.
    pub fn run_queued(&mut self, cx: &mut Context, core: &mut Core, now: Instant) {
        while cx.may_run_request() && self.waiting_describe.is_none() {
            match self.reader.next_event() {
                None => break,
                Some(RtspEvent::Request(request)) => {
                    self.last_heard = now;
                    core.counters.requests += 1;
                    self.request(cx, core, request, now);
                }
                Some(RtspEvent::Interleaved { channel, payload }) => {
                    self.interleaved(channel, &payload, now);
                }
                Some(RtspEvent::Error { error, cseq }) => {
                    log::debug!("rtsp client {}: {error}", cx.peer);
                    core.counters.errors += 1;
                    // An oversize binary frame has no answer: the client is
                    // not reading RTSP at that point.
                    if let Some(status) = error.status() {
                        cx.output.push_bytes(&status_response(status, cseq));
                    }
                    cx.close_after_flush();
                    break;
                }
            }
        }
        self.head_started = match (self.reader.is_mid_message(), self.head_started) {
            (true, None) => Some(now),
            (true, started) => started,
            (false, _) => None,
        };
    }

    /// A `$`-framed packet from the client: RTCP on one of its channels
    /// (receiver reports) keeps the session alive; anything else is
    /// dropped.
    fn interleaved(&mut self, channel: u8, payload: &[u8], now: Instant) {
        let Some(channels) = self.binding().and_then(Binding::channels) else {
            return;
        };
        if (channel == channels.0 || channel == channels.1) && is_rtcp(payload) {
            self.last_heard = now;
        }
    }

    fn binding(&self) -> Option<&Binding> {
        match &self.state {
            RtspState::Init => None,
            RtspState::Ready(binding) | RtspState::Playing { binding, .. } => Some(binding),
        }
    }

    fn request(&mut self, cx: &mut Context, core: &mut Core, request: RtspRequest, now: Instant) {
        let cseq = request.cseq;
        if let Some(required) = request.header("Require") {
            // No option tag is supported (RFC 2326 §12.32).
            let required = required.replace(['\r', '\n'], " ");
            log::debug!("rtsp client {}: Require {required}", cx.peer);
            let extra = [("Unsupported", required.as_str())];
            self.refuse(cx, core, 551, cseq, &extra);
            return;
        }
        if let Some(token) = core.config.token.clone() {
            if let Err(failure) = self.authorize(&request, &token) {
                self.challenge(cx, core, &request, &failure);
                return;
            }
        }
        if let Some(asked) = request.header("Session") {
            let asked = asked.split(';').next().unwrap_or("").trim();
            if self.binding().is_none_or(|binding| binding.id != asked) {
                self.refuse(cx, core, 454, cseq, &[]);
                return;
            }
        }
        match request.method {
            Method::Options => self.ok(cx, cseq, &[("Public", PUBLIC_METHODS)], core),
            Method::GetParameter => self.ok(cx, cseq, &[], core),
            Method::SetParameter if request.body.is_empty() => self.ok(cx, cseq, &[], core),
            Method::SetParameter => self.refuse(cx, core, 451, cseq, &[]),
            Method::Describe => self.describe(cx, core, request, now),
            Method::Setup => self.setup(cx, core, &request, now),
            Method::Play => self.play(cx, core, &request, now),
            Method::Pause => match std::mem::replace(&mut self.state, RtspState::Init) {
                RtspState::Playing { binding, .. } => {
                    leave(core, cx, binding.camera);
                    self.state = RtspState::Ready(binding);
                    self.ok(cx, cseq, &[], core);
                }
                RtspState::Ready(binding) => {
                    self.state = RtspState::Ready(binding);
                    self.ok(cx, cseq, &[], core);
                }
                RtspState::Init => self.refuse(cx, core, 455, cseq, &[]),
            },
            Method::Teardown => {
                if let RtspState::Playing { binding, .. } =
                    std::mem::replace(&mut self.state, RtspState::Init)
                {
                    leave(core, cx, binding.camera);
                    log::debug!("rtsp client {} tore down its session", cx.peer);
                }
                cx.output.push_bytes(&status_response(200, Some(cseq)));
            }
            // camloop serves cameras; it takes no stream from a client.
            Method::Announce | Method::Record => {
                self.refuse(cx, core, 405, cseq, &[("Allow", PUBLIC_METHODS)]);
            }
            Method::Other(ref method) => {
                log::debug!("rtsp client {}: unknown method {method}", cx.peer);
                self.refuse(cx, core, 501, cseq, &[("Public", PUBLIC_METHODS)]);
            }
        }
    }

    /// Checks the request's `Authorization` against the token (Basic, or
    /// Digest with this connection's nonce).
    fn authorize(&mut self, request: &RtspRequest, token: &str) -> Result<(), AuthFailure> {
        let nonce = self.nonce.get_or_insert_with(auth::new_nonce);
        let offered = request.header("Authorization");
        auth::verify(offered, request.method.as_str(), &request.url, token, nonce)
    }

    /// 401 with both challenges: Digest first (both ffmpeg and GStreamer
    /// pick it when offered both), then Basic.
    fn challenge(
        &mut self,
        cx: &mut Context,
        core: &mut Core,
        request: &RtspRequest,
        failure: &AuthFailure,
    ) {
        core.counters.auth_failures += 1;
        if matches!(failure, AuthFailure::Missing) {
            // The usual first try of every client: not worth a warning.
            log::debug!("rtsp client {}: no credentials yet", cx.peer);
        } else {
            log::warn!("rtsp client {}: {failure}", cx.peer);
        }
        let nonce = self.nonce.get_or_insert_with(auth::new_nonce);
        let [digest, basic] = auth::challenge_headers(nonce);
        let extra = [
            ("WWW-Authenticate", digest.as_str()),
            ("WWW-Authenticate", basic.as_str()),
        ];
        self.refuse(cx, core, 401, request.cseq, &extra);
    }

    /// An error answer: counted, and the connection stays open (only a
    /// request that cannot be read closes it).
    fn refuse(
        &self,
        cx: &mut Context,
        core: &mut Core,
        status: u16,
        cseq: u32,
        extra: &[(&str, &str)],
    ) {
        core.counters.errors += 1;
        let fields = ResponseFields {
            extra,
            ..Default::default()
        };
        cx.output.push_bytes(&response(status, Some(cseq), &fields));
    }

    /// 200 with the session, if there is one, and `extra`.
    fn ok(&self, cx: &mut Context, cseq: u32, extra: &[(&str, &str)], core: &Core) {
        let timeout = core.config.rtsp_session_timeout.as_secs() as u32;
        let fields = ResponseFields {
            session: self.binding().map(|b| (b.id.as_str(), timeout)),
            extra,
            ..Default::default()
        };
        cx.output.push_bytes(&response(200, Some(cseq), &fields));
    }

    /// The camera a request URL names: `Err(404)` for none, `Err(503)` for
    /// one that has no stream to give.
    fn camera_for(&self, core: &Core, url: &str) -> Result<(usize, Option<u32>), u16> {
        let target = parse_target(url).ok_or(404u16)?;
        let camera = match &target.camera {
            None => 0,
            Some(name) => core.camera_named(name).ok_or(404u16)?,
        };
        if target.track.is_some_and(|track| track != 0) {
            return Err(404);
        }
        let served = &core.cameras[camera];
        let encoder_failed = served
            .camera
            .converter_start_error()
            .is_some_and(|(direction, _)| direction == Direction::JpegToH264);
        if !served.camera.is_present() || encoder_failed {
            return Err(503);
        }
        Ok((camera, target.track))
    }

    fn describe(&mut self, cx: &mut Context, core: &mut Core, request: RtspRequest, now: Instant) {
        let camera = match self.camera_for(core, &request.url) {
            Ok((camera, _)) => camera,
            Err(status) => return self.refuse(cx, core, status, request.cseq, &[]),
        };
        let mtu = core.config.rtp_mtu_bytes;
        let served = &mut core.cameras[camera];
        served.start_rtp(mtu, now);
        match served.camera.parameter_sets() {
            Some(sets) => self.answer_describe(cx, core, &request, camera, &sets),
            None => {
                // An MJPEG camera's encoder, or an H.264 camera that has
                // sent nothing yet: wait for its SPS and PPS without
                // holding up anybody else (frames.rs wakes this session).
                log::debug!(
                    "rtsp client {}: DESCRIBE waits for camera {}'s SPS and PPS",
                    cx.peer,
                    served.camera.name()
                );
                served.describe_waiters.push((cx.conn, now));
                core.demand_changed = true;
                self.waiting_describe = Some((request, camera));
            }
        }
    }

    /// The waiting `DESCRIBE` is answered: with the SDP if its camera now
    /// has SPS and PPS, else (its `--camera-timeout` passed) with 503.
    pub fn describe_ready(&mut self, cx: &mut Context, core: &mut Core) {
        let Some((request, camera)) = self.waiting_describe.take() else {
            return;
        };
        match core.cameras[camera].camera.parameter_sets() {
            Some(sets) => self.answer_describe(cx, core, &request, camera, &sets),
            None => {
                log::warn!(
                    "rtsp client {}: camera {} gave no SPS and PPS within {} s",
                    cx.peer,
                    core.cameras[camera].camera.name(),
                    core.cameras[camera].camera.timeout().as_secs_f64()
                );
                self.refuse(cx, core, 503, request.cseq, &[]);
            }
        }
    }

    fn answer_describe(
        &self,
        cx: &mut Context,
        core: &Core,
        request: &RtspRequest,
        camera: usize,
        sets: &ParameterSets,
    ) {
        let served = &core.cameras[camera];
        let fps = Some(served.camera.stream_fps(Instant::now()));
        let sdp = session_description(
            sets,
            &SdpSession {
                session_id: served.rtp.as_ref().map_or(0, |rtp| u64::from(rtp.ssrc())),
                server_address: host_address(&request.url),
                frames_per_second: fps,
            },
        );
        let base = content_base(&request.url);
        let fields = ResponseFields {
            content_base: Some(&base),
            body: Some((CONTENT_TYPE_SDP, sdp.as_bytes())),
            ..Default::default()
        };
        cx.output
            .push_bytes(&response(200, Some(request.cseq), &fields));
    }

    fn setup(&mut self, cx: &mut Context, core: &mut Core, request: &RtspRequest, now: Instant) {
        let cseq = request.cseq;
        let camera = match self.camera_for(core, &request.url) {
            Ok((camera, _)) => camera,
            Err(status) => return self.refuse(cx, core, status, cseq, &[]),
        };
        if self
            .binding()
            .is_some_and(|binding| binding.camera != camera)
        {
            // One session, one camera: a second presentation is a second
            // connection.
            return self.refuse(cx, core, 459, cseq, &[]);
        }
        let Some((delivery, reply)) = self.choose_delivery(cx, core, request) else {
            log::debug!(
                "rtsp client {}: no transport it offers is served: {:?}",
                cx.peer,
                request.header("Transport")
            );
            return self.refuse(cx, core, 461, cseq, &[]);
        };
        let mtu = core.config.rtp_mtu_bytes;
        let ssrc = core.cameras[camera].start_rtp(mtu, now).ssrc();
        match &mut self.state {
            RtspState::Ready(binding) => binding.delivery = delivery,
            // Playing: a new transport would have to move the viewer between
            // camera lists; clients set up before they play.
            RtspState::Playing { .. } => return self.refuse(cx, core, 455, cseq, &[]),
            RtspState::Init => {
                self.state = RtspState::Ready(Binding {
                    camera,
                    id: session_id(),
                    delivery,
                });
            }
        }
        let transport = format!("{reply};ssrc={ssrc:08X};mode=\"PLAY\"");
        self.ok(cx, cseq, &[("Transport", &transport)], core);
    }

    /// The first of the client's `Transport` alternatives camloop serves,
    /// and the reply's transport without `ssrc` and `mode`: TCP
    /// interleaved, or unicast UDP to the peer's own address (its
    /// `destination=`, if any, is ignored) at ports from 1024 on, when the
    /// UDP sockets are bound and of the peer's family.
    fn choose_delivery(
        &self,
        cx: &Context,
        core: &Core,
        request: &RtspRequest,
    ) -> Option<(Delivery, String)> {
        let peer_ip = cx.peer.parse::<SocketAddr>().ok().map(|peer| peer.ip());
        let offered = parse_transport(request.header("Transport")?);
        offered
            .iter()
            .filter(|spec| !spec.multicast)
            .find_map(|spec| match spec.lower {
                LowerTransport::Tcp => {
                    let (rtp, rtcp) = spec.interleaved.unwrap_or(DEFAULT_CHANNELS);
                    let reply = format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp}");
                    Some((Delivery::Interleaved(rtp, rtcp), reply))
                }
                LowerTransport::Udp => {
                    let udp = core.rtsp_udp?;
                    let ip = peer_ip.filter(|ip| ip.is_ipv6() == udp.ipv6)?;
                    let (rtp, rtcp) = spec.client_port?;
                    if rtp < MIN_CLIENT_PORT || rtcp < MIN_CLIENT_PORT {
                        log::debug!("rtsp client {}: client ports {rtp}-{rtcp} refused", cx.peer);
                        return None;
                    }
                    let reply = format!(
                        "RTP/AVP;unicast;client_port={rtp}-{rtcp};server_port={}-{}",
                        udp.rtp, udp.rtcp
                    );
                    let delivery = Delivery::Udp {
                        rtp_to: SocketAddr::new(ip, rtp),
                        rtcp_to: SocketAddr::new(ip, rtcp),
                    };
                    Some((delivery, reply))
                }
            })
    }

    fn play(&mut self, cx: &mut Context, core: &mut Core, request: &RtspRequest, now: Instant) {
        let cseq = request.cseq;
        let Some(binding) = self.binding().cloned() else {
            return self.refuse(cx, core, 455, cseq, &[]);
        };
        let camera = match self.camera_for(core, &request.url) {
            Ok((camera, _)) => camera,
            Err(status) => return self.refuse(cx, core, status, cseq, &[]),
        };
        if camera != binding.camera {
            return self.refuse(cx, core, 459, cseq, &[]);
        }
        if matches!(self.state, RtspState::Playing { .. }) {
            // Already playing: a client that says PLAY twice keeps its place.
            return self.ok(cx, cseq, &[("Range", "npt=0.000-")], core);
        }
        let served = &mut core.cameras[camera];
        let Some(rtp) = served.rtp.as_ref() else {
            return self.refuse(cx, core, 503, cseq, &[]);
        };
        let (seq, rtptime) = rtp.start_point(now);
        let track_url = track_url(&request.url);
        let rtp_info = format!("url={track_url};seq={seq};rtptime={rtptime}");
        self.ok(
            cx,
            cseq,
            &[("Range", "npt=0.000-"), ("RTP-Info", &rtp_info)],
            core,
        );
        let served = &mut core.cameras[camera];
        let Some(rtp) = served.rtp.as_ref() else {
            return;
        };
        let mut follower = AuFollower::new();
        match binding.delivery {
            Delivery::Interleaved(rtp_channel, rtcp_channel) => {
                // The clock mapping first, so a client can date the first frame.
                let report = rtp.sender_report(now, crate::timefmt::unix_micros(SystemTime::now()));
                queue_interleaved(cx, rtcp_channel, &report);
                // The GOP cache at once: the first picture is the cached IDR,
                // not the next one. A burst by design, which the follower knows.
                let cached = rtp.gop();
                if !cached.is_empty() {
                    for au in cached {
                        let bytes = au.framed_on(rtp_channel);
                        served.counters.rtsp_packets_sent += u64::from(au.packets);
                        served.counters.rtsp_bytes_sent += bytes.len() as u64;
                        cx.output.push_shared(bytes);
                    }
                    served.counters.frames_sent += cached.len() as u64;
                    follower.started_with_cache(cx.output.queued_total(), now);
                }
            }
            // Over UDP it starts at the next IDR, with a sender report then
            // (frames.rs sends both): a GOP burst of datagrams would overflow
            // the client's receive buffer.
            Delivery::Udp { rtp_to, rtcp_to } => served.udp_viewers.push(UdpViewer {
                conn: cx.conn,
                rtp_to,
                rtcp_to,
                waiting_for_idr: true,
                next_report_at: now,
            }),
        }
        served.viewers.push(cx.conn);
        served.h264_viewers += 1;
        served.rtsp_viewers += 1;
        core.demand_changed = true;
        log::debug!(
            "rtsp client {} plays camera {}",
            cx.peer,
            served.camera.name()
        );
        self.state = RtspState::Playing {
            binding,
            follower,
            next_report_at: now + SENDER_REPORT_INTERVAL,
        };
    }

    /// A receiver report of this session's arrived over UDP: it keeps the
    /// session alive, like a request.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// Whether this connection plays a camera.
    pub fn is_playing(&self) -> bool {
        matches!(self.state, RtspState::Playing { .. })
    }

    /// Offers an access unit, packetised, under the skip-to-IDR rule; a
    /// sender report goes first when one is due.
    pub fn offer_au(
        &mut self,
        cx: &mut Context,
        offer: &AuOffer,
        last_idr_bytes: usize,
        now: Instant,
    ) -> Offer {
        let RtspState::Playing {
            binding,
            follower,
            next_report_at,
        } = &mut self.state
        else {
            return Offer::NotViewing;
        };
        let Some((rtp_channel, rtcp_channel)) = binding.channels() else {
            return Offer::NotViewing; // over UDP: frames.rs sends the datagrams
        };
        let Some(rtp) = offer.rtp else {
            return Offer::Skipped; // already sent with the GOP cache
        };
        let offered = Offered {
            keyframe: rtp.keyframe,
            follows_gap: rtp.follows_gap,
        };
        let (unsent, written) = (cx.output.pending_bytes(), cx.output.written_total());
        if follower.offer(offered, unsent, written, last_idr_bytes, now) == Admit::Skip {
            return Offer::Skipped;
        }
        if now >= *next_report_at {
            if let Some(report) = offer.sender_report {
                queue_interleaved(cx, rtcp_channel, report);
            }
            *next_report_at = now + SENDER_REPORT_INTERVAL;
        }
        cx.output.push_shared(rtp.framed_on(rtp_channel));
        follower.queued(cx.output.queued_total(), rtp.ready_at, rtp.keyframe);
        Offer::Sent
    }

    /// After a write: each access unit now written whole.
    pub fn parts_sent(&mut self, written_total: u64, sent: impl FnMut(Sent)) {
        if let RtspState::Playing { follower, .. } = &mut self.state {
            follower.written(written_total, sent);
        }
    }
}

/// Queues `packet` (a sender report) framed for `channel` of the
/// connection.
fn queue_interleaved(cx: &mut Context, channel: u8, packet: &[u8]) {
    let mut framed = Vec::with_capacity(INTERLEAVED_HEADER_BYTES + packet.len());
    push_interleaved(&mut framed, channel, packet);
    cx.output.push_bytes(&framed);
}

/// Takes a viewer off its camera (`TEARDOWN`, `PAUSE`).
fn leave(core: &mut Core, cx: &Context, camera: usize) {
    let served = &mut core.cameras[camera];
    served.viewers.retain(|viewer| viewer.id != cx.conn.id);
    served
        .udp_viewers
        .retain(|viewer| viewer.conn.id != cx.conn.id);
    served.h264_viewers -= 1;
    served.rtsp_viewers -= 1;
    core.demand_changed = true;
}

/// A new session id: 16 random hex digits.
fn session_id() -> String {
    let bytes: [u8; 8] = crate::sys::random_bytes();
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// `Content-Base`: the request URL with a trailing `/`, so that the
/// client's `base + "trackID=0"` names the track (RFC 2326 §C.1.1).
fn content_base(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

/// The track URL for `RTP-Info`: the request URL if it names the track
/// already, else the track under it.
fn track_url(url: &str) -> String {
    let names_track = parse_target(url).is_some_and(|target| target.track.is_some());
    if names_track {
        url.to_string()
    } else {
        format!("{}{TRACK_CONTROL}", content_base(url))
    }
}

/// The address in a request URL's authority, for the SDP's `o=` line;
/// 0.0.0.0 when it is a host name (the line only needs the address type).
fn host_address(url: &str) -> std::net::IpAddr {
    let authority = url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    host.parse()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_base_ends_in_a_slash_and_the_track_url_is_under_it() {
        assert_eq!(content_base("rtsp://h:8554/door"), "rtsp://h:8554/door/");
        assert_eq!(content_base("rtsp://h:8554/"), "rtsp://h:8554/");
        assert_eq!(
            track_url("rtsp://h:8554/door"),
            "rtsp://h:8554/door/trackID=0"
        );
        assert_eq!(
            track_url("rtsp://h:8554/door/trackID=0"),
            "rtsp://h:8554/door/trackID=0"
        );
    }

    #[test]
    fn the_sdp_address_comes_from_the_url_or_is_unspecified() {
        assert_eq!(
            host_address("rtsp://10.0.0.2:8554/x").to_string(),
            "10.0.0.2"
        );
        assert_eq!(host_address("rtsp://[::1]:8554/").to_string(), "::1");
        assert_eq!(
            host_address("rtsp://u:p@127.0.0.1/").to_string(),
            "127.0.0.1"
        );
        assert_eq!(host_address("rtsp://camera.local/").to_string(), "0.0.0.0");
    }

    #[test]
    fn session_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (session_id(), session_id());
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
