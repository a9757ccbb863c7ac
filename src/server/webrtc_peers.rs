//! WebRTC peers: one str0m `Rtc` per browser watching a camera, driven
//! from the loop like every other state machine here.
//!
//! str0m is sans-IO: datagrams and timeouts go in (`handle_input`), and
//! datagrams, events and the next timeout come out (`poll_output`). This
//! module owns the peers and that driving, and nothing else: no socket
//! (what a peer sends is queued in [`WebrtcPeers::take_outbox`] for the
//! loop's UDP socket), no HTTP (the signalling calls in with SDP text and
//! gets SDP text back).
//!
//! Three things keep it cheap with many peers:
//!
//! - **Routing by source.** A datagram goes to the peer its source address
//!   belongs to (a map); only a datagram from an unknown source, a
//!   browser's first STUN check, is offered to the peers' `accepts`.
//! - **A timer heap.** Every peer's next timeout is an entry in one heap
//!   whose head is the loop's next deadline; an entry a peer has since
//!   replaced is skipped when it comes up. Nothing scans every peer per
//!   iteration (a streaming peer asks for 20–30 timeouts a second).
//! - **Shared bytes.** Each access unit becomes one `Arc<[u8]>` (with the
//!   SPS and PPS in front of an IDR) that every peer's writer takes.
//!   str0m then packetises and encrypts per peer: SRTP keys are per peer,
//!   so the "packetise once" of RTSP cannot hold here.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use slab::Slab;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::crypto::dtls::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{AbsCaptureTime, Extension};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use crate::camera::h264_stream::SharedAu;
use crate::webrtc::OfferSummary;

/// `--webrtc-max-peers`' default.
pub const DEFAULT_MAX_PEERS: usize = 32;

/// A peer that is not connected this long after it was made is freed: a
/// camera-streamer `request` never answered, an offer from `curl`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Packets str0m keeps per peer for NACK retransmission: about one second
/// of a 2 Mbit/s stream in 1200-byte packets. Its default of 1000 made 100
/// peers cost 144 MB.
pub const SEND_BUFFER_PACKETS: usize = 240;

/// The most due timeouts one drive of a peer handles before it leaves the
/// rest to the heap (the next iteration): a GOP cache is a few hundred
/// packets, one timeout each.
const MAX_DUE_TIMEOUTS_PER_DRIVE: usize = 4096;

/// The most ids of peers freed without a `DELETE` kept for one (each
/// for [`CONNECT_TIMEOUT`]).
const MAX_ENDED_IDS: usize = 4096;

/// The latest a peer's timeout is put off: str0m may ask for none for a
/// long while (`not_happening`), and an entry that far ahead would sit in
/// the heap for ever each time; a peer woken once a second costs nothing.
const MAX_TIMEOUT: Duration = Duration::from_secs(1);

/// The RTP header extension id of abs-capture-time in camloop's offers
/// and answers (free in str0m's standard map).
const ABS_CAPTURE_TIME_ID: u8 = 7;
/// The RTP header extension id of the mid (str0m's default one).
const MID_ID: u8 = 4;

/// `profile-level-id` used when the camera's own profile is not offered:
/// Constrained Baseline 3.1, which every browser offers and which decodes
/// a High stream in practice (Chromium offers no plain High).
const FALLBACK_PROFILE_LEVEL_ID: u32 = 0x42e01f;

/// One datagram for the loop to send.
pub struct Datagram {
    /// The peer's address.
    pub to: SocketAddr,
    /// Which of the server's addresses it must leave from.
    pub from: SocketAddr,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The camera whose peer sent it (for the dropped count).
    pub camera: usize,
}

/// Why a signalling request could not be done: the HTTP status and the
/// reason for `{"error":"webrtc: …"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError {
    /// 400, 404, 503...
    pub status: u16,
    /// Said to the client and logged.
    pub reason: String,
}

impl PeerError {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        PeerError {
            status,
            reason: reason.into(),
        }
    }
}

/// A peer just made: its id (the WHEP resource, camera-streamer's `id`),
/// its `ETag`, and the SDP to send back (an answer, or the server's offer).
#[derive(Debug)]
pub struct NewPeer {
    /// Its id.
    pub id: String,
    /// The WHEP `ETag` value, quoted.
    pub etag: String,
    /// The SDP.
    pub sdp: String,
}

/// What one camera's peers count, beside the per-peer state.
#[derive(Debug, Default, Clone)]
pub struct WebrtcCounters {
    /// Peers made, connected or not yet.
    pub connecting: u64,
    /// Peers with ICE and DTLS up.
    pub connected: u64,
    /// Datagrams sent to its peers (media, RTCP, ICE and DTLS).
    pub packets_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Datagrams the kernel would not take, dropped.
    pub packets_dropped: u64,
    /// NACKs its peers sent (str0m retransmits from its send buffer).
    pub nacks: u64,
    /// PLIs and FIRs its peers sent (an `exec:` camera cannot be asked for
    /// a keyframe; its GOP decides).
    pub keyframe_requests: u64,
}

impl WebrtcCounters {
    /// Peers, connected or not.
    pub fn peers(&self) -> u64 {
        self.connecting + self.connected
    }
}

/// Where a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Made; ICE and DTLS not up yet.
    Connecting,
    /// Up: it gets the camera's access units.
    Connected,
}

/// One browser.
struct Peer {
    id: String,
    etag: String,
    /// Unique for the server's life: a heap entry names its peer by this,
    /// so a slab key reused by a later peer is never confused with it.
    serial: u64,
    rtc: Rtc,
    camera: usize,
    phase: Phase,
    created_at: Instant,
    /// The server's offer, until the browser answers (camera-streamer).
    pending_offer: Option<SdpPendingOffer>,
    /// The video sections str0m made for it (from the offer, or camloop's).
    video_mids: Vec<Mid>,
    /// The video section and the payload type the camera's H.264 goes in.
    video: Option<(Mid, Pt)>,
    /// Its current timeout; heap entries for other times are stale.
    timeout_at: Option<Instant>,
    /// It skips access units until the next IDR (it has none yet, or the
    /// camera's stream had a gap).
    waiting_for_idr: bool,
    /// Source addresses that reached it (to free them from the map).
    sources: Vec<SocketAddr>,
    /// The last egress stats' totals, to count the increments.
    nacks_seen: u64,
    keyframe_requests_seen: u64,
}

/// The server's WebRTC peers.
pub struct WebrtcPeers {
    peers: Slab<Peer>,
    by_id: HashMap<String, usize>,
    by_source: HashMap<SocketAddr, usize>,
    /// (when, slab key, serial) of every peer's timeout and connect
    /// deadline; stale entries are skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_serial: u64,
    crypto: Arc<CryptoProvider>,
    cert: DtlsCert,
    /// The addresses a browser may reach camloop at (ICE host candidates).
    local_addrs: Vec<SocketAddr>,
    max_peers: usize,
    /// Media time zero: access units' times count from here.
    epoch: Instant,
    outbox: Vec<Datagram>,
    /// Peers connected since the loop last asked: they need the GOP cache.
    newly_connected: Vec<usize>,
    /// A peer came or went since the loop last asked (camera demand).
    changed: bool,
    /// Access units handed to peers since the loop last asked, for the
    /// send-age histograms: (ready to send at, an IDR or the GOP cache,
    /// how many peers took it).
    written: Vec<(Instant, bool, u64)>,
    /// Ids of peers freed without a `DELETE` (their browser closed the
    /// connection, consent was lost, the encoder could not start), and
    /// when: a client's `DELETE` must still find its session (Fluidd
    /// calls `pc.close()` first, then `DELETE`). Kept for
    /// [`CONNECT_TIMEOUT`], at most [`MAX_ENDED_IDS`].
    ended: HashMap<String, Instant>,
    /// Per camera.
    pub counters: Vec<WebrtcCounters>,
}

impl WebrtcPeers {
    /// No peers yet; candidates on `local_addrs` (each a bound socket's
    /// address, or one `--webrtc-host` gives). The DTLS certificate is
    /// made once here and shared by every peer (making one per peer costs
    /// a key generation each).
    pub fn new(
        local_addrs: Vec<SocketAddr>,
        max_peers: usize,
        cameras: usize,
        now: Instant,
    ) -> Result<Self, String> {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let cert = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or("cannot make a DTLS certificate")?;
        Ok(WebrtcPeers {
            peers: Slab::new(),
            by_id: HashMap::new(),
            by_source: HashMap::new(),
            timers: BinaryHeap::new(),
            next_serial: 0,
            crypto,
            cert,
            local_addrs,
            max_peers,
            epoch: now,
            outbox: Vec::new(),
            newly_connected: Vec::new(),
            changed: false,
            written: Vec::new(),
            ended: HashMap::new(),
            counters: vec![WebrtcCounters::default(); cameras],
        })
    }

    /// Answers a browser's offer (WHEP, OctoPrint) with a new peer for
    /// `camera`. `profile` is the camera's `profile-level-id`, if known.
    pub fn answer_offer(
        &mut self,
        camera: usize,
        offer_sdp: &str,
        summary: &OfferSummary,
        profile: Option<u32>,
        now: Instant,
    ) -> Result<NewPeer, PeerError> {
        self.check_room()?;
        if summary.h264.is_empty() {
            return Err(PeerError::new(
                400,
                "the offer takes no H.264 with packetization-mode=1",
            ));
        }
        // camloop only sends: a video section offered sendrecv is answered
        // sendonly, audio is refused (str0m answers what the offer asks
        // for, so the offer it reads says so).
        let offer_text = only_receiving(offer_sdp);
        let offer = SdpOffer::from_sdp_string(&offer_text)
            .map_err(|e| PeerError::new(400, format!("SDP: {e}")))?;
        let mut rtc = self.new_rtc(now);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::new(400, format!("offer: {e}")))?;
        let sdp = with_rejected_formats(&answer.to_sdp_string(), &offer_text);
        let key = self.insert(rtc, camera, None, now);
        // str0m names the sections in events only once media can flow;
        // the answer names them now.
        self.peers[key].video_mids = video_mids(&sdp);
        self.find_video(key, profile);
        if self.peers[key].video.is_none() {
            self.forget(key);
            return Err(PeerError::new(400, "no video section camloop can send to"));
        }
        self.drive(key, now);
        let peer = self
            .peers
            .get(key)
            .ok_or_else(|| PeerError::new(400, "the offer could not be answered"))?;
        Ok(NewPeer {
            id: peer.id.clone(),
            etag: peer.etag.clone(),
            sdp,
        })
    }

    /// Makes the server's offer for a new peer of `camera`
    /// (camera-streamer's `request`); the browser answers later.
    pub fn make_offer(&mut self, camera: usize, now: Instant) -> Result<NewPeer, PeerError> {
        self.check_room()?;
        let mut rtc = self.new_rtc(now);
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| PeerError::new(500, "no offer to make"))?;
        let key = self.insert(rtc, camera, Some(pending), now);
        self.peers[key].video_mids.push(mid);
        let peer = &self.peers[key];
        Ok(NewPeer {
            id: peer.id.clone(),
            etag: peer.etag.clone(),
            sdp: offer.to_sdp_string(),
        })
    }

    /// The browser's answer to the server's offer of peer `id`.
    pub fn accept_answer(
        &mut self,
        id: &str,
        answer_sdp: &str,
        profile: Option<u32>,
        now: Instant,
    ) -> Result<(), PeerError> {
        let key = self.key_of(id)?;
        // Read first: an answer that is not SDP leaves the offer standing.
        let answer = SdpAnswer::from_sdp_string(answer_sdp)
            .map_err(|e| PeerError::new(400, format!("SDP: {e}")))?;
        let pending = self.peers[key]
            .pending_offer
            .take()
            .ok_or_else(|| PeerError::new(400, "this session has its answer already"))?;
        if let Err(e) = self.peers[key].rtc.sdp_api().accept_answer(pending, answer) {
            self.forget(key);
            return Err(PeerError::new(400, format!("answer: {e}")));
        }
        self.find_video(key, profile);
        self.drive(key, now);
        Ok(())
    }

    /// Remote ICE candidates for peer `id` (trickle ICE). camloop is
    /// ICE-lite and answers the browser's checks, so they are only
    /// informative; one str0m cannot read (an mDNS `.local` name) is
    /// skipped.
    pub fn add_candidates<'a>(
        &mut self,
        id: &str,
        candidates: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) -> Result<(), PeerError> {
        let key = self.key_of(id)?;
        for text in candidates {
            let text = text.strip_prefix("a=").unwrap_or(text);
            if let Ok(candidate) = Candidate::from_sdp_string(text) {
                self.peers[key].rtc.add_remote_candidate(candidate);
            }
        }
        self.drive(key, now);
        Ok(())
    }

    /// Whether peer `id` exists and its `ETag` is `etag`-matched by
    /// `if_match` (WHEP `PATCH`).
    pub fn etag_of(&self, id: &str) -> Option<&str> {
        let key = *self.by_id.get(id)?;
        Some(&self.peers[key].etag)
    }

    /// Frees peer `id` (WHEP `DELETE`); false if there is none, nor one
    /// its browser closed a moment ago.
    pub fn remove(&mut self, id: &str, now: Instant) -> bool {
        self.ended
            .retain(|_, ended_at| now < *ended_at + CONNECT_TIMEOUT);
        if self.ended.remove(id).is_some() {
            return true;
        }
        match self.by_id.get(id) {
            Some(&key) => {
                self.forget(key);
                self.ended.remove(id);
                true
            }
            None => false,
        }
    }

    /// Frees every peer of `camera` (its stream cannot come: its encoder
    /// cannot start); returns how many.
    pub fn remove_camera(&mut self, camera: usize) -> usize {
        let keys: Vec<usize> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.camera == camera)
            .map(|(key, _)| key)
            .collect();
        for &key in &keys {
            self.forget(key);
        }
        keys.len()
    }

    /// A datagram from `source` arrived at `destination` (one of the local
    /// addresses).
    pub fn receive(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) {
        let Ok(contents) = bytes.try_into() else {
            return; // not STUN, DTLS or (S)RTP: nothing str0m would take
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let key = match self.by_source.get(&source) {
            Some(&key) => key,
            // A new source: a browser's first STUN check, which names its
            // peer by the ICE credentials; str0m's `accepts` reads them.
            None => match self.peers.iter().find(|(_, p)| p.rtc.accepts(&input)) {
                Some((key, _)) => {
                    self.by_source.insert(source, key);
                    self.peers[key].sources.push(source);
                    key
                }
                None => return,
            },
        };
        if let Err(e) = self.peers[key].rtc.handle_input(input) {
            log::debug!("webrtc peer {}: input: {e}", self.peers[key].id);
        }
        self.drive(key, now);
    }

    /// The earliest moment a peer needs its timeout handled (the heap's
    /// head, stale or not: waking early for a stale entry is harmless).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Handles every timeout due by `now`, and frees the peers whose time
    /// to connect is over.
    pub fn run_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, key, serial))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(key).filter(|p| p.serial == serial) else {
                continue; // the peer is gone
            };
            if peer.phase == Phase::Connecting && now >= peer.created_at + CONNECT_TIMEOUT {
                log::info!(
                    "webrtc peer {}: not connected after {} s, freed",
                    peer.id,
                    CONNECT_TIMEOUT.as_secs()
                );
                self.forget(key);
                continue;
            }
            if peer.timeout_at.is_some_and(|due| due <= now) {
                peer.timeout_at = None;
                if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                    log::debug!("webrtc peer {}: timeout: {e}", peer.id);
                }
                self.drive(key, now);
            }
        }
    }

    /// Sends a camera's new access units to its connected peers: every one,
    /// or none until the next IDR for a peer that has none yet or whose
    /// camera's stream had a gap.
    pub fn send_access_units(&mut self, camera: usize, units: &[SharedAu], now: Instant) {
        if units.is_empty() || !self.peers.iter().any(|(_, p)| p.camera == camera) {
            return;
        }
        let shared: Vec<(Arc<[u8]>, &SharedAu)> =
            units.iter().map(|au| (media_bytes(au), au)).collect();
        let keys: Vec<usize> = self
            .peers
            .iter()
            .filter(|(_, p)| p.camera == camera && p.phase == Phase::Connected)
            .map(|(key, _)| key)
            .collect();
        let mut taken = vec![0u64; shared.len()];
        for key in keys {
            for (index, (bytes, au)) in shared.iter().enumerate() {
                if self.write(key, au, bytes) {
                    taken[index] += 1;
                }
            }
            self.drive(key, now);
        }
        for ((_, au), peers) in shared.iter().zip(taken) {
            if peers > 0 {
                self.written.push((au.ready_at, au.keyframe, peers));
            }
        }
    }

    /// Sends newly connected peers their camera's GOP cache at once, with
    /// the frames' own timestamps: the picture shows without waiting for
    /// the next IDR. `gop` gives a camera's cached access units.
    pub fn start_new_peers<'a>(&mut self, gop: impl Fn(usize) -> &'a [SharedAu], now: Instant) {
        for key in std::mem::take(&mut self.newly_connected) {
            let Some(peer) = self.peers.get(key) else {
                continue;
            };
            let units = gop(peer.camera);
            for au in units {
                if self.write(key, au, &media_bytes(au)) {
                    // Like RTSP's: the GOP cache counts with the IDRs,
                    // timed from now (its units are old by design).
                    self.written.push((now, true, 1));
                }
            }
            self.drive(key, now);
        }
    }

    /// The access units handed to peers since the last call: (ready at,
    /// an IDR or the GOP cache, how many peers).
    pub fn take_written(&mut self) -> Vec<(Instant, bool, u64)> {
        std::mem::take(&mut self.written)
    }

    /// Datagrams the peers want sent, in order.
    pub fn take_outbox(&mut self) -> Vec<Datagram> {
        std::mem::take(&mut self.outbox)
    }

    /// Whether a peer came or went since the last call (the cameras'
    /// demand must be told again).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn check_room(&self) -> Result<(), PeerError> {
        if self.peers.len() >= self.max_peers {
            return Err(PeerError::new(
                503,
                format!(
                    "{} WebRTC peers already (--webrtc-max-peers)",
                    self.max_peers
                ),
            ));
        }
        Ok(())
    }

    fn new_rtc(&self, now: Instant) -> Rtc {
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(self.crypto.clone())
            .set_dtls_cert(self.cert.clone())
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .set_send_buffer_video(SEND_BUFFER_PACKETS)
            .set_stats_interval(Some(Duration::from_secs(1)))
            // Only the extensions camloop uses: the mid (bundling) and
            // abs-capture-time. str0m's default map would also take the
            // offer's transport-wide congestion control, whose feedback
            // (every peer, several times a second) only feeds a bandwidth
            // estimate camloop does not make: it relays the camera's rate.
            .clear_extension_map()
            .set_extension(MID_ID, Extension::RtpMid)
            .set_extension(ABS_CAPTURE_TIME_ID, Extension::AbsoluteCaptureTime)
            .build(now);
        for &addr in &self.local_addrs {
            if let Ok(candidate) = Candidate::host(addr, "udp") {
                rtc.add_local_candidate(candidate);
            }
        }
        rtc
    }

    fn insert(
        &mut self,
        rtc: Rtc,
        camera: usize,
        pending_offer: Option<SdpPendingOffer>,
        now: Instant,
    ) -> usize {
        let serial = self.next_serial;
        self.next_serial += 1;
        let id = peer_id();
        let etag = format!("\"{}\"", &peer_id()[..8]);
        let key = self.peers.insert(Peer {
            id: id.clone(),
            etag,
            serial,
            rtc,
            camera,
            phase: Phase::Connecting,
            created_at: now,
            pending_offer,
            video_mids: Vec::new(),
            video: None,
            timeout_at: None,
            waiting_for_idr: true,
            sources: Vec::new(),
            nacks_seen: 0,
            keyframe_requests_seen: 0,
        });
        self.by_id.insert(id, key);
        self.timers
            .push(Reverse((now + CONNECT_TIMEOUT, key, serial)));
        if let Some(counters) = self.counters.get_mut(camera) {
            counters.connecting += 1;
        }
        self.changed = true;
        key
    }

    /// Frees a peer and everything that names it but its id, which a
    /// `DELETE` may still name for a while.
    fn forget(&mut self, key: usize) {
        let Some(peer) = self.peers.try_remove(key) else {
            return;
        };
        self.by_id.remove(&peer.id);
        let now = Instant::now();
        if self.ended.len() >= MAX_ENDED_IDS {
            self.ended
                .retain(|_, ended_at| now < *ended_at + CONNECT_TIMEOUT);
        }
        if self.ended.len() < MAX_ENDED_IDS {
            self.ended.insert(peer.id.clone(), now);
        }
        for source in &peer.sources {
            self.by_source.remove(source);
        }
        if let Some(counters) = self.counters.get_mut(peer.camera) {
            match peer.phase {
                Phase::Connecting => counters.connecting -= 1,
                Phase::Connected => counters.connected -= 1,
            }
        }
        self.changed = true;
    }

    fn key_of(&self, id: &str) -> Result<usize, PeerError> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| PeerError::new(404, format!("no WebRTC session {id}")))
    }

    /// Finds the video section the camera goes to and its payload type:
    /// H.264 with `packetization-mode=1` of the camera's profile, else
    /// `42e01f`, else any H.264 with mode 1.
    fn find_video(&mut self, key: usize, profile: Option<u32>) {
        let peer = &mut self.peers[key];
        for mid in peer.video_mids.clone() {
            let Some(writer) = peer.rtc.writer(mid) else {
                continue;
            };
            let formats: Vec<(Pt, u32)> = writer
                .payload_params()
                .filter(|p| {
                    let spec = p.spec();
                    spec.codec == Codec::H264 && spec.format.packetization_mode == Some(1)
                })
                .map(|p| (p.pt(), p.spec().format.profile_level_id.unwrap_or(0)))
                .collect();
            let same_profile = |wanted: u32| {
                // profile_idc and the constraint flags; any level.
                formats.iter().find(|(_, id)| id >> 8 == wanted >> 8)
            };
            let chosen = profile
                .and_then(same_profile)
                .or_else(|| same_profile(FALLBACK_PROFILE_LEVEL_ID))
                .or(formats.first());
            if let Some(&(pt, _)) = chosen {
                peer.video = Some((mid, pt));
                return;
            }
        }
    }

    /// Hands one access unit to a peer's writer; false if the peer skips
    /// it (it waits for an IDR) or cannot take it.
    fn write(&mut self, key: usize, au: &SharedAu, bytes: &Arc<[u8]>) -> bool {
        let epoch = self.epoch;
        let Some(peer) = self.peers.get_mut(key) else {
            return false;
        };
        if au.follows_gap && !au.keyframe {
            peer.waiting_for_idr = true;
        }
        if peer.waiting_for_idr && !au.keyframe {
            return false;
        }
        peer.waiting_for_idr = false;
        let Some((mid, pt)) = peer.video else {
            return false;
        };
        let Some(writer) = peer.rtc.writer(mid) else {
            return false;
        };
        let since_epoch = au.started_at.saturating_duration_since(epoch);
        let ticks = since_epoch.as_micros() as u64 * 90 / 1000;
        let capture_time = UNIX_EPOCH + Duration::from_micros(au.started_unix_us);
        let result = writer
            .abs_capture_time(AbsCaptureTime {
                capture_time,
                clock_offset: None,
            })
            .write(
                pt,
                au.started_at,
                MediaTime::new(ticks, Frequency::NINETY_KHZ),
                bytes.clone(),
            );
        match result {
            Ok(()) => true,
            Err(e) => {
                log::debug!("webrtc peer {}: write: {e}", peer.id);
                false
            }
        }
    }

    /// Takes everything a peer has to say: datagrams to the outbox,
    /// events handled, and its next timeout into the heap.
    fn drive(&mut self, key: usize, now: Instant) {
        let mut due_timeouts = 0;
        loop {
            let Some(peer) = self.peers.get_mut(key) else {
                return;
            };
            let output = match peer.rtc.poll_output() {
                Ok(output) => output,
                Err(e) => {
                    log::info!("webrtc peer {}: {e}; freed", peer.id);
                    self.forget(key);
                    return;
                }
            };
            match output {
                Output::Transmit(transmit) => {
                    let camera = peer.camera;
                    if let Some(counters) = self.counters.get_mut(camera) {
                        counters.packets_sent += 1;
                        counters.bytes_sent += transmit.contents.len() as u64;
                    }
                    self.outbox.push(Datagram {
                        to: transmit.destination,
                        from: transmit.source,
                        bytes: transmit.contents.into(),
                        camera,
                    });
                }
                // A timeout already due is handled now: str0m's pacer lets
                // out one packet per timeout (without bandwidth estimation
                // it asks for one at once after every send), so leaving it
                // to the heap would send a GOP cache one packet per loop
                // iteration. Bounded, in case str0m keeps asking.
                Output::Timeout(at) if at <= now && due_timeouts < MAX_DUE_TIMEOUTS_PER_DRIVE => {
                    due_timeouts += 1;
                    peer.timeout_at = None;
                    if let Err(e) = peer.rtc.handle_input(Input::Timeout(now)) {
                        log::debug!("webrtc peer {}: timeout: {e}", peer.id);
                    }
                }
                Output::Timeout(at) => {
                    let at = at.clamp(now, now + MAX_TIMEOUT);
                    if peer.timeout_at != Some(at) {
                        peer.timeout_at = Some(at);
                        self.timers.push(Reverse((at, key, peer.serial)));
                    }
                    return;
                }
                Output::Event(event) => {
                    if !self.on_event(key, event) {
                        return;
                    }
                }
            }
        }
    }

    /// Handles one event of peer `key`; false if the peer was freed.
    fn on_event(&mut self, key: usize, event: Event) -> bool {
        let peer = &mut self.peers[key];
        let counters = self.counters.get_mut(peer.camera);
        match event {
            Event::Connected if peer.phase == Phase::Connecting => {
                peer.phase = Phase::Connected;
                if let Some(counters) = counters {
                    counters.connecting -= 1;
                    counters.connected += 1;
                }
                log::info!("webrtc peer {} connected", peer.id);
                self.newly_connected.push(key);
                self.changed = true;
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                log::info!("webrtc peer {}: ICE consent lost, freed", peer.id);
                self.forget(key);
                return false;
            }
            Event::MediaEgressStats(stats) => {
                if let Some(counters) = counters {
                    counters.nacks += stats.nacks.saturating_sub(peer.nacks_seen);
                    let requests = stats.plis + stats.firs;
                    counters.keyframe_requests +=
                        requests.saturating_sub(peer.keyframe_requests_seen);
                }
                peer.nacks_seen = peer.nacks_seen.max(stats.nacks);
                peer.keyframe_requests_seen =
                    peer.keyframe_requests_seen.max(stats.plis + stats.firs);
            }
            Event::Closed => {
                log::info!("webrtc peer {}: closed by its browser, freed", peer.id);
                self.forget(key);
                return false;
            }
            _ => {}
        }
        true
    }

    /// Counts a datagram of `camera`'s peers the kernel would not take.
    pub fn count_dropped(&mut self, camera: usize) {
        if let Some(counters) = self.counters.get_mut(camera) {
            counters.packets_dropped += 1;
        }
    }
}

/// One access unit as a peer's writer takes it: the Annex-B bytes, with
/// the SPS and PPS in front of an IDR that does not carry its own (a
/// browser starting there needs them).
fn media_bytes(au: &SharedAu) -> Arc<[u8]> {
    let prefix = if au.keyframe {
        au.parameter_sets_prefix()
    } else {
        Vec::new()
    };
    if prefix.is_empty() {
        return Arc::from(&au.data[..]);
    }
    let mut bytes = prefix;
    bytes.extend_from_slice(&au.data);
    Arc::from(bytes)
}

/// The offer as camloop answers it: every `sendrecv` becomes `recvonly`
/// (camloop sends only: the answer then says `sendonly`), and audio
/// sections are answered by str0m with no codec (rejected) since only
/// H.264 is enabled.
fn only_receiving(sdp: &str) -> String {
    sdp.replace("a=sendrecv", "a=recvonly")
}

/// str0m refuses a section it has no codec for (audio: camloop has none)
/// with `m=audio 0 UDP/TLS/RTP/SAVPF` and no format, which browsers reject
/// ("Invalid value"); RFC 3264 §6 wants a refused section to list a
/// format all the same. Each such line gets the first format of the
/// offer's section at the same position.
fn with_rejected_formats(answer: &str, offer: &str) -> String {
    let mut offered = offer.lines().filter(|line| line.starts_with("m="));
    let mut fixed = String::with_capacity(answer.len() + 16);
    for line in answer.split_inclusive('\n') {
        let Some(media) = line.trim_end().strip_prefix("m=") else {
            fixed.push_str(line);
            continue;
        };
        let offered_line = offered.next().unwrap_or("");
        let fields: Vec<&str> = media.split_whitespace().collect();
        let first_offered = offered_line.split_whitespace().nth(3);
        match (fields.as_slice(), first_offered) {
            ([kind, "0", proto], Some(format)) => {
                fixed.push_str(&format!("m={kind} 0 {proto} {format}\r\n"));
            }
            _ => fixed.push_str(line),
        }
    }
    fixed
}

/// The `a=mid` of every video section an answer sends on (not refused
/// with port 0, not `recvonly` or `inactive`).
fn video_mids(answer: &str) -> Vec<Mid> {
    let mut mids = Vec::new();
    for section in answer.split("\nm=").skip(1) {
        let sends = !section.contains("a=recvonly") && !section.contains("a=inactive");
        if !section.starts_with("video ") || section.starts_with("video 0 ") || !sends {
            continue;
        }
        let mid = section
            .lines()
            .find_map(|line| line.trim_end().strip_prefix("a=mid:"));
        mids.extend(mid.map(Mid::from));
    }
    mids
}

/// A new session id: 16 random hex digits.
fn peer_id() -> String {
    let bytes: [u8; 8] = crate::sys::random_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=sendonly\r\n\
        m=audio 0 UDP/TLS/RTP/SAVPF\r\na=mid:1\r\na=inactive\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 102\r\na=mid:2\r\n";

    #[test]
    fn a_refused_section_gets_the_offers_first_format() {
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=mid:0\r\n\
                     m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=mid:1\r\n\
                     m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\n";
        let fixed = with_rejected_formats(ANSWER, offer);
        assert!(
            fixed.contains("\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\n"),
            "{fixed}"
        );
        assert!(
            fixed.contains("\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n"),
            "kept: {fixed}"
        );
        assert!(
            fixed.contains("\r\nm=video 0 UDP/TLS/RTP/SAVPF 102\r\n"),
            "had one: {fixed}"
        );
        assert_eq!(fixed.len(), ANSWER.len() + " 111".len());
    }

    #[test]
    fn only_video_sections_that_send_are_the_cameras() {
        assert_eq!(video_mids(ANSWER), vec![Mid::from("0")]);
        let recvonly = ANSWER.replace("a=sendonly", "a=recvonly");
        assert!(video_mids(&recvonly).is_empty());
    }

    #[test]
    fn sendrecv_is_read_as_recvonly_so_the_answer_sends_only() {
        assert_eq!(
            only_receiving("m=video 9 X 96\r\na=sendrecv\r\nm=audio 9 X 0\r\na=sendrecv\r\n"),
            "m=video 9 X 96\r\na=recvonly\r\nm=audio 9 X 0\r\na=recvonly\r\n"
        );
    }

    #[test]
    fn a_peer_never_connected_is_freed_by_its_deadline_from_the_heap() {
        let start = Instant::now();
        let local = "127.0.0.1:50000".parse().unwrap();
        let mut peers = WebrtcPeers::new(vec![local], 2, 1, start).unwrap();
        let offer = peers.make_offer(0, start).unwrap();
        assert!(offer.sdp.contains("a=sendonly"), "{}", offer.sdp);
        assert!(
            offer.sdp.contains("127.0.0.1 50000 typ host"),
            "{}",
            offer.sdp
        );
        assert_eq!(peers.counters[0].connecting, 1);
        assert!(peers.take_changed());
        // The heap's head is never later than the connect deadline.
        let deadline = peers.next_deadline().unwrap();
        assert!(deadline <= start + CONNECT_TIMEOUT);
        peers.run_timers(start + CONNECT_TIMEOUT - Duration::from_millis(1));
        assert_eq!(peers.counters[0].connecting, 1, "not yet");
        peers.run_timers(start + CONNECT_TIMEOUT);
        assert_eq!(peers.counters[0].connecting, 0, "freed at its deadline");
        assert!(peers.take_changed());
        assert!(peers.etag_of(&offer.id).is_none());
        assert_eq!(
            peers
                .accept_answer(&offer.id, "v=0", None, start)
                .unwrap_err()
                .status,
            404
        );
    }

    #[test]
    fn the_peer_limit_counts_every_peer() {
        let now = Instant::now();
        let local = "127.0.0.1:50000".parse().unwrap();
        let mut peers = WebrtcPeers::new(vec![local], 2, 1, now).unwrap();
        let first = peers.make_offer(0, now).unwrap();
        peers.make_offer(0, now).unwrap();
        assert_eq!(peers.make_offer(0, now).unwrap_err().status, 503);
        assert!(peers.remove(&first.id, now));
        assert!(!peers.remove(&first.id, now));
        assert!(peers.make_offer(0, now).is_ok());
    }
}
