//! WebRTC signalling on the HTTP port: the requests of WHEP,
//! camera-streamer's JSON and OctoPrint's offer, turned into calls on the
//! server's [`WebrtcPeers`] and answered.
//!
//! What the bodies mean is read by the sans-IO [`crate::webrtc`] module;
//! the peers themselves are [`super::webrtc_peers`]. This module only
//! joins the two and says what each outcome is on the wire (status,
//! content type, `Location` and `ETag`); the HTTP session writes it out.

use std::time::Instant;

use super::core::Core;
use super::webrtc_peers::{NewPeer, PeerError, WebrtcPeers};
use crate::http::request::RequestHead;
use crate::http::response::CONTENT_TYPE_JSON;
use crate::http::Route;
use crate::webrtc::whep::CONTENT_TYPE_SDP;
use crate::webrtc::{
    answer_json, check_offer, empty_json, etag_matches, offer_json, parse_trickle_fragment,
    parse_webrtc_message, whep_location, whep_route, SignallingError, WebrtcMessage,
};

/// The answer to one signalling request.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// The body's type (none for 204).
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// `Location` and `ETag` of a new WHEP session.
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn json(status: u16, body: String) -> Self {
        Reply {
            status,
            content_type: CONTENT_TYPE_JSON,
            body,
            headers: Vec::new(),
        }
    }

    fn status(status: u16) -> Self {
        Reply::json(status, String::new())
    }

    fn error(status: u16, reason: &str) -> Self {
        Reply::json(
            status,
            crate::http::response::error_json(&format!("webrtc: {reason}")),
        )
    }
}

impl From<SignallingError> for Reply {
    fn from(error: SignallingError) -> Self {
        Reply::json(error.status(), error.error_json())
    }
}

impl From<PeerError> for Reply {
    fn from(error: PeerError) -> Self {
        Reply::error(error.status, &error.reason)
    }
}

/// Answers a request on a WebRTC route for camera `camera`.
pub fn handle(
    route: Route,
    head: &RequestHead,
    camera: usize,
    core: &mut Core,
    now: Instant,
) -> Reply {
    let served = &core.cameras[camera];
    if !served.camera.is_present() {
        return Reply::error(503, "this camera has no source");
    }
    // An MJPEG camera's video comes from its encoder: if that cannot
    // start, say so now rather than connect a peer no frame will reach.
    if let Some(error) = served.encoder_start_error() {
        let creating = matches!(route, Route::WhepEndpoint | Route::WebrtcSignal);
        if creating {
            return Reply::error(
                503,
                &format!("the camera's H.264 encoder cannot start: {error}"),
            );
        }
    }
    let profile = core.cameras[camera]
        .camera
        .parameter_sets()
        .and_then(|sets| profile_level_id(&sets.sps));
    let Some(peers) = core.webrtc.as_mut() else {
        return Reply::error(
            503,
            "WebRTC is off (--webrtc off, or its socket is not bound)",
        );
    };
    let result = match route {
        Route::WhepEndpoint => whep_offer(peers, head, camera, profile, now),
        Route::WhepPatch => whep_patch(peers, head, now),
        Route::WhepDelete => whep_delete(peers, head, now),
        Route::WebrtcSignal => json_message(peers, head, camera, profile, now),
        _ => Err(Reply::status(404)),
    };
    result.unwrap_or_else(|reply| reply)
}

/// `POST …/whep`: the browser's offer, answered `201` with the SDP, the
/// session's relative `Location` and its `ETag`.
fn whep_offer(
    peers: &mut WebrtcPeers,
    head: &RequestHead,
    camera: usize,
    profile: Option<u32>,
    now: Instant,
) -> Result<Reply, Reply> {
    let sdp = answered_offer(peers, &head.body, camera, profile, now)?;
    Ok(Reply {
        status: 201,
        content_type: CONTENT_TYPE_SDP,
        headers: vec![("Location", whep_location(&sdp.id)), ("ETag", sdp.etag)],
        body: sdp.sdp,
    })
}

/// `PATCH …/whep/<id>`: trickle-ICE candidates (`If-Match` the session's
/// `ETag` or `*`; none is taken as `*`).
fn whep_patch(peers: &mut WebrtcPeers, head: &RequestHead, now: Instant) -> Result<Reply, Reply> {
    let id = session_id(head)?;
    let etag = peers
        .etag_of(&id)
        .ok_or_else(|| Reply::error(404, &format!("no WebRTC session {id}")))?;
    if let Some(if_match) = &head.if_match {
        if !etag_matches(if_match, etag) {
            return Err(Reply::error(412, "If-Match is not this session's ETag"));
        }
    }
    let fragment = parse_trickle_fragment(&head.body)?;
    let lines = fragment.candidates.iter().map(|c| c.candidate.as_str());
    peers.add_candidates(&id, lines, now)?;
    Ok(Reply::status(204))
}

/// `DELETE …/whep/<id>`: the session ends now.
fn whep_delete(peers: &mut WebrtcPeers, head: &RequestHead, now: Instant) -> Result<Reply, Reply> {
    let id = session_id(head)?;
    if peers.remove(&id, now) {
        log::info!("webrtc peer {id}: deleted by its client");
        Ok(Reply::status(200))
    } else {
        Err(Reply::error(404, &format!("no WebRTC session {id}")))
    }
}

/// `POST …/webrtc`: camera-streamer's `request`, `answer` and
/// `remote_candidate`, and OctoPrint's `offer`.
fn json_message(
    peers: &mut WebrtcPeers,
    head: &RequestHead,
    camera: usize,
    profile: Option<u32>,
    now: Instant,
) -> Result<Reply, Reply> {
    let reply = match parse_webrtc_message(&head.body)? {
        WebrtcMessage::Request { .. } => {
            let offer = peers.make_offer(camera, now)?;
            offer_json(&offer.sdp, &offer.id)
        }
        WebrtcMessage::Offer { sdp } => {
            let answer = answered_offer(peers, sdp.as_bytes(), camera, profile, now)?;
            answer_json(&answer.sdp)
        }
        WebrtcMessage::Answer { id, sdp } => {
            peers.accept_answer(&id, &sdp, profile, now)?;
            empty_json().to_string()
        }
        WebrtcMessage::RemoteCandidates { id, candidates } => {
            let lines = candidates.iter().map(|c| c.candidate.as_str());
            peers.add_candidates(&id, lines, now)?;
            empty_json().to_string()
        }
    };
    Ok(Reply::json(200, reply))
}

/// A browser's offer, checked and answered by a new peer.
fn answered_offer(
    peers: &mut WebrtcPeers,
    offer: &[u8],
    camera: usize,
    profile: Option<u32>,
    now: Instant,
) -> Result<NewPeer, Reply> {
    let summary = check_offer(offer)?;
    let text = std::str::from_utf8(offer).map_err(|_| Reply::error(400, "SDP is not UTF-8"))?;
    let peer = peers.answer_offer(camera, text, &summary, profile, now)?;
    log::info!("webrtc peer {} made for camera {camera}", peer.id);
    Ok(peer)
}

/// The session id a WHEP session path names.
fn session_id(head: &RequestHead) -> Result<String, Reply> {
    whep_route(&head.path)
        .and_then(|route| route.resource)
        .ok_or_else(|| Reply::status(404))
}

/// The `profile-level-id` of an SPS (its three bytes after the NAL
/// header), as str0m writes it: `0x42e01f`.
fn profile_level_id(sps: &[u8]) -> Option<u32> {
    let bytes = sps.get(1..4)?;
    Some(u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]))
}
