//! camera-streamer's WebRTC signalling, JSON posted to `…/webrtc`, and
//! OctoPrint's one-shot offer at the same path: the messages read, the
//! replies built.
//!
//! camera-streamer's exchange (Mainsail's and Fluidd's "WebRTC
//! (camera-streamer)" camera type) has the server offer:
//!
//! | client posts                                   | server answers                  |
//! |------------------------------------------------|---------------------------------|
//! | `{"type":"request","iceServers":…,"keepAlive":true}` | [`offer_json`]: `{"type":"offer","sdp":…,"id":…,"iceServers":[]}` |
//! | `{"type":"answer","id":…,"sdp":…}`             | [`empty_json`]: `{}`            |
//! | `{"type":"remote_candidate","id":…,"candidates":[…]}` | `{}`                     |
//!
//! OctoPrint's (`webrtc://HOST:8080/webrtc` as its stream URL, which it
//! turns into `POST /webrtc`) has the browser offer, once its gathering
//! is complete, so it needs one round trip and no trickling:
//!
//! | client posts                                   | server answers                  |
//! |------------------------------------------------|---------------------------------|
//! | `{"type":"offer","sdp":…}`                     | [`answer_json`]: `{"type":"answer","sdp":…}` |
//!
//! Messages are told apart by their body alone: Mainsail posts with no
//! `Content-Type`, and a browser's `fetch` of a string says `text/plain`.
//! Fields a message does not use (`keepAlive`, a candidate's
//! `usernameFragment`, whatever a later client adds) are ignored.
//!
//! `serde_json` reads the JSON into private wire shapes, then every value
//! the server will use is checked here, so the server gets
//! [`WebrtcMessage`]s it can act on without looking again. The replies are
//! written with [`push_json_string`], the escaper of every JSON body
//! camloop sends.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{
    camera_in_prefix, check_candidate, check_mid, is_peer_id, path_segments, Candidate,
    SignallingError, MAX_BODY_BYTES, MAX_CANDIDATES_PER_MESSAGE,
};
use crate::http::response::push_json_string;

/// A client's message, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebrtcMessage {
    /// `{"type":"request"}`: camera-streamer's first message, asking the
    /// server for an offer (answered with [`offer_json`] and a new
    /// session id).
    Request {
        /// Whether the client sent ICE servers (STUN or TURN) of its own:
        /// a non-empty `iceServers` array. `null`, `[]` and no field at
        /// all are `false`; Mainsail sends them every other attempt.
        ice_servers_given: bool,
    },
    /// `{"type":"offer","sdp":…}`: OctoPrint's browser's offer (answered
    /// with [`answer_json`]); see [`super::check_offer`].
    Offer {
        /// The SDP offer, not empty.
        sdp: String,
    },
    /// `{"type":"answer","id":…,"sdp":…}`: the browser's answer to the
    /// server's offer for session `id` (answered with [`empty_json`]).
    Answer {
        /// The session id the offer carried ([`super::is_peer_id`]).
        id: String,
        /// The SDP answer, not empty.
        sdp: String,
    },
    /// `{"type":"remote_candidate","id":…,"candidates":[…]}`: the
    /// browser's ICE candidates for session `id` (answered with
    /// [`empty_json`]). They may arrive before the answer: the browser
    /// gathers as soon as it has set the server's offer, and posts each
    /// candidate at once, racing its own answer.
    RemoteCandidates {
        /// The session id ([`super::is_peer_id`]).
        id: String,
        /// At most [`MAX_CANDIDATES_PER_MESSAGE`], each checked; browsers
        /// send one per message.
        candidates: Vec<Candidate>,
    },
}

/// The messages as they are on the wire. `type` picks the variant; fields
/// not listed are skipped by serde.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireMessage {
    Request {
        /// Anything in the array: camloop does not use the servers.
        #[serde(default, rename = "iceServers")]
        ice_servers: Option<Vec<IgnoredAny>>,
    },
    Offer {
        sdp: String,
    },
    Answer {
        id: String,
        sdp: String,
    },
    RemoteCandidate {
        id: String,
        candidates: Vec<WireCandidate>,
    },
}

/// A browser's `RTCIceCandidate` as `JSON.stringify` writes it (its
/// `toJSON`: `candidate`, `sdpMid`, `sdpMLineIndex`, `usernameFragment`).
#[derive(Deserialize)]
struct WireCandidate {
    candidate: String,
    #[serde(default, rename = "sdpMid")]
    sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    sdp_m_line_index: Option<u16>,
}

/// Reads the body of a `POST …/webrtc`: one of the messages above, by its
/// `type`, whatever the `Content-Type` said.
///
/// ```
/// use camloop::webrtc::{parse_webrtc_message, WebrtcMessage};
///
/// let body = br#"{"type":"request","iceServers":null,"keepAlive":true}"#;
/// assert_eq!(
///     parse_webrtc_message(body),
///     Ok(WebrtcMessage::Request { ice_servers_given: false })
/// );
/// ```
pub fn parse_webrtc_message(body: &[u8]) -> Result<WebrtcMessage, SignallingError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(SignallingError::TooLarge);
    }
    // serde also reads a struct, and an internally tagged enum, from an
    // array of its fields (`["request"]`). Clients send objects; anything
    // else is refused up front. (Inside a message the quirk is harmless:
    // the values are checked all the same.)
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(SignallingError::Invalid("not a JSON object"));
    }
    // serde_json holds nesting to 128 levels, so no body overflows the
    // stack, and the body bound caps what it builds.
    let wire: WireMessage =
        serde_json::from_slice(body).map_err(|error| SignallingError::json(&error))?;
    Ok(match wire {
        WireMessage::Request { ice_servers } => WebrtcMessage::Request {
            ice_servers_given: ice_servers.is_some_and(|servers| !servers.is_empty()),
        },
        WireMessage::Offer { sdp } => WebrtcMessage::Offer {
            sdp: checked_sdp(sdp)?,
        },
        WireMessage::Answer { id, sdp } => WebrtcMessage::Answer {
            id: checked_id(id)?,
            sdp: checked_sdp(sdp)?,
        },
        WireMessage::RemoteCandidate { id, candidates } => {
            if candidates.len() > MAX_CANDIDATES_PER_MESSAGE {
                return Err(SignallingError::TooManyCandidates);
            }
            WebrtcMessage::RemoteCandidates {
                id: checked_id(id)?,
                candidates: candidates
                    .into_iter()
                    .map(checked_candidate)
                    .collect::<Result<_, _>>()?,
            }
        }
    })
}

fn checked_id(id: String) -> Result<String, SignallingError> {
    if is_peer_id(&id) {
        Ok(id)
    } else {
        Err(SignallingError::Invalid("invalid id"))
    }
}

fn checked_sdp(sdp: String) -> Result<String, SignallingError> {
    if sdp.is_empty() {
        Err(SignallingError::Invalid("empty sdp"))
    } else {
        Ok(sdp)
    }
}

fn checked_candidate(wire: WireCandidate) -> Result<Candidate, SignallingError> {
    check_candidate(&wire.candidate)?;
    if let Some(mid) = &wire.sdp_mid {
        check_mid(mid)?;
    }
    Ok(Candidate {
        candidate: wire.candidate,
        sdp_mid: wire.sdp_mid,
        sdp_m_line_index: wire.sdp_m_line_index,
    })
}

/// What a `…/webrtc` path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebrtcRoute {
    /// The camera's name, or `None` for the default camera.
    pub camera: Option<String>,
}

/// Which camera a `POST …/webrtc` is for, or `None` for a path that is
/// not this endpoint: `/webrtc` (OctoPrint's) and `/cam/NAME/webrtc`,
/// also behind a reverse proxy's prefix (`/webcam/webrtc`), by the rule
/// of [`super::whep_route`]. A path can be both this endpoint and a WHEP
/// session (`/whep/webrtc`: session `webrtc`, or this endpoint behind a
/// prefix `whep`); the method tells them apart, `POST` here, `PATCH` and
/// `DELETE` there.
///
/// ```
/// use camloop::webrtc::webrtc_route;
///
/// assert_eq!(webrtc_route("/cam/door/webrtc").unwrap().camera.as_deref(), Some("door"));
/// assert_eq!(webrtc_route("/webrtc").unwrap().camera, None);
/// assert_eq!(webrtc_route("/webrtc/x"), None);
/// ```
pub fn webrtc_route(path: &str) -> Option<WebrtcRoute> {
    match path_segments(path).as_slice() {
        [prefix @ .., "webrtc"] => Some(WebrtcRoute {
            camera: camera_in_prefix(prefix)?,
        }),
        _ => None,
    }
}

/// The reply to a `request`: the server's SDP offer and the session `id`
/// the client's answer and candidates will name.
/// `{"type":"offer","sdp":"v=0…","id":"…","iceServers":[]}`; the empty
/// `iceServers` tells the browser to use no STUN or TURN server of the
/// server's choosing.
pub fn offer_json(sdp: &str, id: &str) -> String {
    let mut json = String::with_capacity(sdp.len() + id.len() + 64);
    json.push_str("{\"type\":\"offer\",\"sdp\":");
    push_json_string(&mut json, sdp);
    json.push_str(",\"id\":");
    push_json_string(&mut json, id);
    json.push_str(",\"iceServers\":[]}");
    json
}

/// The reply to OctoPrint's `offer`: `{"type":"answer","sdp":"v=0…"}`.
pub fn answer_json(sdp: &str) -> String {
    let mut json = String::with_capacity(sdp.len() + 32);
    json.push_str("{\"type\":\"answer\",\"sdp\":");
    push_json_string(&mut json, sdp);
    json.push('}');
    json
}

/// The reply to an `answer` or a `remote_candidate`: `{}`. camera-streamer
/// answers these with an empty object, and its clients parse the reply as
/// JSON, so an empty body would not do.
pub fn empty_json() -> &'static str {
    "{}"
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::fixtures::OCTOPRINT_CHROMIUM_OFFER;
    use super::*;

    fn parse(body: &str) -> WebrtcMessage {
        parse_webrtc_message(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn refused(body: &[u8]) -> SignallingError {
        match parse_webrtc_message(body) {
            Err(error) => error,
            Ok(message) => panic!("{:?} parsed: {message:?}", String::from_utf8_lossy(body)),
        }
    }

    /// What a browser's `JSON.stringify` makes of a string.
    fn json_string(text: &str) -> String {
        let mut json = String::new();
        push_json_string(&mut json, text);
        json
    }

    #[test]
    fn camera_streamer_requests_as_mainsail_sends_them() {
        // With ICE servers one attempt, without the next.
        assert_eq!(
            parse(
                r#"{"type":"request","iceServers":[{"urls":["stun:stun.l.google.com:19302"]}],"keepAlive":true}"#
            ),
            WebrtcMessage::Request {
                ice_servers_given: true
            }
        );
        for body in [
            r#"{"type":"request","iceServers":null,"keepAlive":true}"#,
            r#"{"type":"request","keepAlive":true}"#,
            r#"{"type":"request","iceServers":[],"keepAlive":true}"#,
            r#"{"type":"request"}"#,
            // keepAlive of any type, and fields camloop has no use for.
            r#"{"type":"request","keepAlive":"yes","res":"1920x1080"}"#,
            " {\n  \"keepAlive\": true,\n  \"type\": \"request\"\n}\n",
        ] {
            assert_eq!(
                parse(body),
                WebrtcMessage::Request {
                    ice_servers_given: false
                },
                "{body}"
            );
        }
    }

    #[test]
    fn camera_streamer_answers() {
        let body = r#"{"type":"answer","id":"4d6a8f0e2b1c3a59","sdp":"v=0\r\no=- 7372894551361434126 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtpmap:102 H264/90000\r\n"}"#;
        let WebrtcMessage::Answer { id, sdp } = parse(body) else {
            panic!("not an answer");
        };
        assert_eq!(id, "4d6a8f0e2b1c3a59");
        assert!(sdp.starts_with("v=0\r\no=- 7372894551361434126"));
        assert!(sdp.ends_with("a=rtpmap:102 H264/90000\r\n"));
    }

    #[test]
    fn camera_streamer_remote_candidates() {
        // One per message, as RTCIceCandidate.toJSON() writes it.
        let body = r#"{"type":"remote_candidate","id":"4d6a8f0e2b1c3a59","candidates":[{"candidate":"candidate:2982134577 1 udp 2113937151 3f8e6c2a-5b1d-4c3e-9f2a-7d6b5e4c3b2a.local 54321 typ host generation 0 ufrag 0Ws4 network-cost 999","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"0Ws4"}]}"#;
        assert_eq!(
            parse(body),
            WebrtcMessage::RemoteCandidates {
                id: "4d6a8f0e2b1c3a59".into(),
                candidates: vec![Candidate {
                    candidate: "candidate:2982134577 1 udp 2113937151 \
                                3f8e6c2a-5b1d-4c3e-9f2a-7d6b5e4c3b2a.local 54321 typ host \
                                generation 0 ufrag 0Ws4 network-cost 999"
                        .into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                }],
            }
        );
        // Several at once, a null mid and index, the end of candidates
        // (Firefox's empty candidate), and `id` after the list.
        let body = r#"{"type":"remote_candidate","candidates":[
            {"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host","sdpMid":"0","sdpMLineIndex":0},
            {"candidate":"candidate:2 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active","sdpMid":null,"sdpMLineIndex":null},
            {"candidate":"","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"0Ws4"}
        ],"id":"4d6a8f0e2b1c3a59"}"#;
        let WebrtcMessage::RemoteCandidates { candidates, .. } = parse(body) else {
            panic!("not candidates");
        };
        assert_eq!(candidates.len(), 3);
        assert_eq!(candidates[1].sdp_mid, None);
        assert_eq!(candidates[1].sdp_m_line_index, None);
        assert!(!candidates[0].is_end_of_candidates());
        assert!(candidates[2].is_end_of_candidates());
        assert_eq!(
            parse(r#"{"type":"remote_candidate","id":"x","candidates":[]}"#),
            WebrtcMessage::RemoteCandidates {
                id: "x".into(),
                candidates: vec![]
            }
        );
    }

    #[test]
    fn octoprints_offer() {
        let body = r#"{"type":"offer","sdp":"v=0\r\no=- 1690001234567890123 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\nm=video 56143 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 192.168.1.20\r\na=candidate:3037413245 1 udp 2122260223 192.168.1.20 56143 typ host generation 0\r\na=end-of-candidates\r\na=mid:0\r\na=recvonly\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n"}"#;
        let WebrtcMessage::Offer { sdp } = parse(body) else {
            panic!("not an offer");
        };
        let offer = super::super::check_offer(sdp.as_bytes()).unwrap();
        assert!(offer.has_audio);
        assert_eq!(offer.h264.len(), 1);
        // The whole offer, as JSON.stringify sends it.
        let body = format!(
            r#"{{"type":"offer","sdp":{}}}"#,
            json_string(OCTOPRINT_CHROMIUM_OFFER)
        );
        assert_eq!(
            parse(&body),
            WebrtcMessage::Offer {
                sdp: OCTOPRINT_CHROMIUM_OFFER.into()
            }
        );
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        for (body, reason) in [
            (&b"{"[..], "EOF while parsing an object"),
            (b"{\"type\":\"request\"", "EOF while parsing an object"),
            (b"{type:request}", "key must be a string"),
            (b"{\"type\":\"request\"} {}", "trailing characters"),
            (b"{}", "missing field `type`"),
            (b"{\"type\":\"hello\"}", "unknown variant `hello`"),
            (b"{\"type\":\"Request\"}", "unknown variant `Request`"),
            (b"{\"type\":\"answer\",\"sdp\":\"v=0\"}", "missing field `id`"),
            (b"{\"type\":\"answer\",\"id\":7,\"sdp\":\"v=0\"}", "invalid type: integer"),
            (b"{\"type\":\"offer\"}", "missing field `sdp`"),
            (b"{\"type\":\"request\",\"iceServers\":\"stun:x\"}", "invalid type: string"),
            (b"{\"type\":\"remote_candidate\",\"id\":\"x\"}", "missing field `candidates`"),
            (
                b"{\"type\":\"remote_candidate\",\"id\":\"x\",\"candidates\":[{\"sdpMid\":\"0\"}]}",
                "missing field `candidate`",
            ),
            (
                b"{\"type\":\"remote_candidate\",\"id\":\"x\",\"candidates\":[{\"candidate\":\"\",\"sdpMLineIndex\":-1}]}",
                "invalid value: integer `-1`",
            ),
            (b"{\"type\":\"offer\",\"sdp\":\"v=0\xff\"}", "invalid unicode code point"),
        ] {
            let error = refused(body);
            let SignallingError::Json(text) = &error else {
                panic!("{body:?}: {error:?}");
            };
            assert!(text.starts_with(reason), "{}: {text}", String::from_utf8_lossy(body));
            assert_eq!(error.status(), 400);
            assert!(error.error_json().starts_with("{\"error\":\"webrtc: JSON: "));
        }
        for (body, reason) in [
            (&b""[..], "not a JSON object"),
            (b" \r\n", "not a JSON object"),
            (b"request", "not a JSON object"),
            (b"type=request", "not a JSON object"),
            (br#"["request"]"#, "not a JSON object"),
            (br#" ["answer","x","v=0"]"#, "not a JSON object"),
            (b"null", "not a JSON object"),
            (br#""{\"type\":\"request\"}""#, "not a JSON object"),
            (br#"{"type":"offer","sdp":""}"#, "empty sdp"),
            (br#"{"type":"answer","id":"x","sdp":""}"#, "empty sdp"),
            (br#"{"type":"answer","id":"","sdp":"v=0"}"#, "invalid id"),
            (br#"{"type":"answer","id":"../x","sdp":"v=0"}"#, "invalid id"),
            (
                br#"{"type":"remote_candidate","id":"x y","candidates":[]}"#,
                "invalid id",
            ),
            (
                br#"{"type":"remote_candidate","id":"x","candidates":[{"candidate":"candidate:1 1 udp 1 192.0.2.1 1 typ host\r\na=x"}]}"#,
                "control character in a candidate",
            ),
            (
                br#"{"type":"remote_candidate","id":"x","candidates":[{"candidate":"a=candidate:1 1 udp 1 192.0.2.1 1 typ host"}]}"#,
                "not a candidate:",
            ),
            (
                br#"{"type":"remote_candidate","id":"x","candidates":[{"candidate":"","sdpMid":""}]}"#,
                "invalid mid",
            ),
        ] {
            assert_eq!(
                refused(body),
                SignallingError::Invalid(reason),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn bounds_on_bodies_candidates_and_nesting() {
        let candidates = |n: usize| {
            let one = r#"{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host"}"#;
            format!(
                r#"{{"type":"remote_candidate","id":"x","candidates":[{}]}}"#,
                vec![one; n].join(",")
            )
        };
        assert!(parse_webrtc_message(candidates(MAX_CANDIDATES_PER_MESSAGE).as_bytes()).is_ok());
        assert_eq!(
            refused(candidates(MAX_CANDIDATES_PER_MESSAGE + 1).as_bytes()),
            SignallingError::TooManyCandidates
        );

        let padded = |length: usize| {
            let mut body = br#"{"type":"request"}"#.to_vec();
            body.resize(length, b' ');
            body
        };
        assert!(parse_webrtc_message(&padded(MAX_BODY_BYTES)).is_ok());
        assert_eq!(
            refused(&padded(MAX_BODY_BYTES + 1)),
            SignallingError::TooLarge
        );

        // Deeper than serde_json's 128 levels: an error, not a stack
        // overflow.
        let deep = format!(
            r#"{{"type":"request","iceServers":[{}{}]}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let SignallingError::Json(reason) = refused(deep.as_bytes()) else {
            panic!("not a JSON error");
        };
        assert!(reason.starts_with("recursion limit exceeded"), "{reason}");
    }

    #[test]
    fn the_replies_as_written() {
        assert_eq!(
            offer_json("v=0\r\ns=-\r\n", "4d6a8f0e2b1c3a59"),
            r#"{"type":"offer","sdp":"v=0\r\ns=-\r\n","id":"4d6a8f0e2b1c3a59","iceServers":[]}"#
        );
        assert_eq!(
            answer_json("v=0\r\na=x:\"q\"\\\r\n"),
            r#"{"type":"answer","sdp":"v=0\r\na=x:\"q\"\\\r\n"}"#
        );
        assert_eq!(empty_json(), "{}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(empty_json()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn routes_of_the_json_endpoint() {
        let camera = |path: &str| webrtc_route(path).map(|route| route.camera);
        assert_eq!(camera("/webrtc"), Some(None));
        assert_eq!(camera("/webrtc/"), Some(None));
        assert_eq!(camera("/webcam/webrtc"), Some(None));
        assert_eq!(camera("/webrtc?token=T"), Some(None));
        assert_eq!(camera("/cam/door/webrtc"), Some(Some("door".into())));
        assert_eq!(camera("/webcam/cam/door/webrtc"), Some(Some("door".into())));
        for path in [
            "",
            "/",
            "/webrtcx",
            "/webrtc/x",
            "/cam/webrtc",
            "/whep",
            "/?token=Twebrtc",
        ] {
            assert_eq!(camera(path), None, "{path}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_are_a_message_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            // As they are, and behind a `{`, so that serde_json reads them.
            let object = [&b"{"[..], &bytes].concat();
            for body in [&bytes, &object] {
                if let Err(error) = parse_webrtc_message(body) {
                    prop_assert!(error.status() == 400 || error.status() == 413);
                }
            }
        }

        #[test]
        fn any_json_like_text_is_a_message_or_an_error(
            text in r#"\{("(type|id|sdp|candidates|candidate|sdpMid|iceServers)":("(request|offer|answer|remote_candidate|x|0|candidate:1 1)"|null|\[|\{|\]|\}|0|-1|,)*,?)*\}?"#
        ) {
            let _ = parse_webrtc_message(text.as_bytes());
        }

        #[test]
        fn built_replies_parse_back(sdp in "\\PC{0,200}|[\\x00-\\x7f]{0,200}", id in "[A-Za-z0-9_-]{1,64}") {
            let offer: serde_json::Value = serde_json::from_str(&offer_json(&sdp, &id)).unwrap();
            prop_assert_eq!(
                offer,
                serde_json::json!({"type": "offer", "sdp": sdp, "id": id, "iceServers": []})
            );
            let answer: serde_json::Value = serde_json::from_str(&answer_json(&sdp)).unwrap();
            prop_assert_eq!(answer, serde_json::json!({"type": "answer", "sdp": sdp}));
            // An offer, read as OctoPrint's message, is the SDP again.
            if !sdp.is_empty() {
                prop_assert_eq!(
                    parse_webrtc_message(offer_json(&sdp, &id).as_bytes()),
                    Ok(WebrtcMessage::Offer { sdp: sdp.clone() })
                );
            }
        }
    }
}
