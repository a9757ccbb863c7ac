//! WHEP, the WebRTC-HTTP Egress Protocol (draft-ietf-wish-whep), sans-IO:
//! the paths, the `If-Match` check and the trickle-ICE fragments.
//!
//! A WHEP viewer speaks plain HTTP to one endpoint, `…/whep`:
//!
//! | request                                   | answer                          |
//! |-------------------------------------------|---------------------------------|
//! | `OPTIONS …/whep`                          | `204`                           |
//! | `POST …/whep`, `application/sdp` offer    | `201`, the SDP answer, `ETag`, `Location: whep/<id>` |
//! | `PATCH …/whep/<id>`, [`CONTENT_TYPE_TRICKLE_ICE`], `If-Match` | `204`       |
//! | `DELETE …/whep/<id>`                      | `200`                           |
//!
//! This module owns what those requests say: which camera and which
//! session a path names ([`whep_route`]), whether a `PATCH`'s `If-Match`
//! names the session's current ICE state ([`etag_matches`]), and the ICE
//! candidates, credentials and end of candidates in its body
//! ([`parse_trickle_fragment`], RFC 8840). The offer a `POST` carries is
//! [`super::offer`]'s.
//!
//! Mainsail posts to its stream URL plus `/` (if missing) plus `whep`, so
//! `/webcam/whep`, and offers video and audio, `sendrecv`. Fluidd offers
//! video only, `recvonly`, trickles with `If-Match: *`, and sends `DELETE`
//! when the viewer closes.

use super::{
    camera_in_prefix, check_candidate, check_mid, is_peer_id, path_segments, Candidate,
    SignallingError, MAX_BODY_BYTES, MAX_CANDIDATES_PER_MESSAGE,
};

/// The content type of an SDP offer (`POST`) and answer (`201`).
pub const CONTENT_TYPE_SDP: &str = "application/sdp";

/// The content type of a `PATCH` body: a trickle-ICE SDP fragment
/// (RFC 8840 §9.1).
pub const CONTENT_TYPE_TRICKLE_ICE: &str = "application/trickle-ice-sdpfrag";

/// Longest `a=ice-ufrag` or `a=ice-pwd` value (RFC 8839 §5.4).
pub const MAX_ICE_CREDENTIAL_BYTES: usize = 256;

/// What a WHEP path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhepRoute {
    /// The camera's name, or `None` for the default camera.
    pub camera: Option<String>,
    /// The session (the "WHEP resource") of a `PATCH` or `DELETE`, or
    /// `None` for the endpoint itself (`OPTIONS`, `POST`).
    pub resource: Option<String>,
}

/// Which camera and session a WHEP request path names, or `None` for a
/// path that is not WHEP's (a 404).
///
/// `…/whep` is the endpoint and `…/whep/<id>` a session, where `<id>` is
/// a session id ([`super::is_peer_id`]); in front of them, `…/cam/NAME`
/// names camera `NAME` and anything else (nothing, or a reverse proxy's
/// prefix: `/webcam/whep`) the default camera. Empty segments are
/// skipped (`/webcam//whep/`). The path is the one without its query
/// ([`crate::http::request::RequestHead::path`]); a query left on is
/// ignored. So Mainsail's URL for a stream with a token,
/// `/?token=Twhep` (it appends `whep` after the query), is the path `/`:
/// no route.
///
/// A last segment `whep` is always the endpoint, so a session id is never
/// `whep`, and `/cam/whep/whep` is camera `whep`'s endpoint.
///
/// ```
/// use camloop::webrtc::whep_route;
///
/// let route = whep_route("/cam/door/whep/0a1b2c3d").unwrap();
/// assert_eq!(route.camera.as_deref(), Some("door"));
/// assert_eq!(route.resource.as_deref(), Some("0a1b2c3d"));
/// assert_eq!(whep_route("/webcam/whep").unwrap().camera, None);
/// ```
pub fn whep_route(path: &str) -> Option<WhepRoute> {
    let segments = path_segments(path);
    let (prefix, resource) = match segments.as_slice() {
        [prefix @ .., "whep"] => (prefix, None),
        [prefix @ .., "whep", id] if is_peer_id(id) => (prefix, Some((*id).to_owned())),
        _ => return None,
    };
    Some(WhepRoute {
        camera: camera_in_prefix(prefix)?,
        resource,
    })
}

/// The `Location` of a new session: `whep/<id>`, relative, so that it
/// resolves against the URL the client posted to (RFC 3986 §5.2: it
/// replaces the last segment, `whep`) whatever prefix a reverse proxy
/// added in front: `/webcam/whep` gives `/webcam/whep/<id>`.
pub fn whep_location(id: &str) -> String {
    format!("whep/{id}")
}

/// Whether an `If-Match` header value names the entity tag `etag` (the
/// session's current `ETag`), so that a `PATCH` goes ahead (else `412`).
///
/// `*` matches any tag (Fluidd sends it); otherwise the value is a comma
/// list of entity tags, each quoted (`"abc"`, which may itself hold a
/// comma) or, leniently, bare (`abc`). `etag` may be given quoted or
/// bare. Weak tags (`W/"abc"`) match their strong form: RFC 9110 §13.1.1
/// wants the strong comparison for `If-Match`, but the tag here names an
/// ICE session rather than the bytes of a representation, and a proxy
/// that compresses the answer (nginx's gzip) turns its `ETag` weak, which
/// the client then echoes. A malformed element (an unclosed quote)
/// matches nothing.
///
/// ```
/// use camloop::webrtc::etag_matches;
///
/// assert!(etag_matches("*", "\"e1\""));
/// assert!(etag_matches("\"e0\", W/\"e1\"", "\"e1\""));
/// assert!(!etag_matches("\"e0\"", "\"e1\""));
/// ```
pub fn etag_matches(if_match: &str, etag: &str) -> bool {
    let ours = match entity_tags(etag).next() {
        Some(Tag::Opaque(ours)) => ours,
        _ => return false,
    };
    entity_tags(if_match).any(|tag| match tag {
        Tag::Any => true,
        Tag::Opaque(theirs) => theirs == ours,
        Tag::Malformed => false,
    })
}

/// One element of an `If-Match` list.
#[derive(Debug, PartialEq, Eq)]
enum Tag<'a> {
    /// `*`.
    Any,
    /// An entity tag's opaque part, without `W/` and quotes.
    Opaque(&'a str),
    /// An element that is neither.
    Malformed,
}

/// The elements of a comma list of entity tags (RFC 9110 §8.8.3), read
/// left to right once. Commas inside quotes belong to the tag.
fn entity_tags(list: &str) -> impl Iterator<Item = Tag<'_>> {
    let mut rest = list;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return None;
        }
        let unweakened = rest
            .strip_prefix("W/")
            .or_else(|| rest.strip_prefix("w/"))
            .unwrap_or(rest);
        if let Some(quoted) = unweakened.strip_prefix('"') {
            let Some(close) = quoted.find('"') else {
                rest = "";
                return Some(Tag::Malformed);
            };
            let after = &quoted[close + 1..];
            let element_end = after.find(',').unwrap_or(after.len());
            rest = &after[element_end..];
            // Anything between the closing quote and the comma spoils it.
            return Some(if after[..element_end].trim().is_empty() {
                Tag::Opaque(&quoted[..close])
            } else {
                Tag::Malformed
            });
        }
        let element_end = unweakened.find(',').unwrap_or(unweakened.len());
        let element = unweakened[..element_end].trim();
        rest = &unweakened[element_end..];
        Some(match element {
            "*" => Tag::Any,
            // `W/` and nothing after it.
            "" => Tag::Malformed,
            bare if bare.contains(['"', ' ', '\t']) => Tag::Malformed,
            bare => Tag::Opaque(bare),
        })
    })
}

/// What a `PATCH`'s trickle-ICE fragment says (RFC 8840 §4.4, §9).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrickleFragment {
    /// `a=ice-ufrag`: the ICE username fragment the candidates belong to.
    /// A new one (with a new password) is an ICE restart.
    pub ice_ufrag: Option<String>,
    /// `a=ice-pwd`: the ICE password that goes with it.
    pub ice_pwd: Option<String>,
    /// The `a=candidate` lines in order, without `a=`, each with the
    /// `a=mid` of the media section it appeared in.
    pub candidates: Vec<Candidate>,
    /// `a=end-of-candidates`: the client's gathering is done.
    pub end_of_candidates: bool,
}

/// Reads the body of a trickle-ICE `PATCH` (RFC 8840, the
/// `application/trickle-ice-sdpfrag` shown in WHEP's §4.3.1):
///
/// ```text
/// a=ice-ufrag:EsAw
/// a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y
/// m=audio 9 RTP/AVP 0
/// a=mid:0
/// a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0
/// a=end-of-candidates
/// ```
///
/// Lines end in CRLF or LF. The ICE credentials may be at session or at
/// media level (the first pair counts, a second that differs is an
/// error); a candidate takes the `a=mid` of its section. Every other
/// line (`m=`, `a=ice-options`, `a=group`) is passed over, but every line
/// must look like SDP (`x=…`), so that a JSON or HTML body is told apart
/// from a fragment with nothing in it. Bounded by [`MAX_BODY_BYTES`] and
/// [`MAX_CANDIDATES_PER_MESSAGE`].
pub fn parse_trickle_fragment(body: &[u8]) -> Result<TrickleFragment, SignallingError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(SignallingError::TooLarge);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| SignallingError::Invalid("SDP fragment is not UTF-8"))?;
    let mut fragment = TrickleFragment::default();
    let mut mid: Option<&str> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        if !is_sdp_line(line) {
            return Err(SignallingError::Invalid("not an SDP fragment"));
        }
        if line.starts_with("m=") {
            mid = None;
        } else if let Some(value) = line.strip_prefix("a=mid:") {
            check_mid(value)?;
            mid = Some(value);
        } else if let Some(value) = line.strip_prefix("a=ice-ufrag:") {
            set_credential(&mut fragment.ice_ufrag, value, "conflicting ice-ufrag")?;
        } else if let Some(value) = line.strip_prefix("a=ice-pwd:") {
            set_credential(&mut fragment.ice_pwd, value, "conflicting ice-pwd")?;
        } else if line == "a=end-of-candidates" {
            fragment.end_of_candidates = true;
        } else if let Some(attribute) = line.strip_prefix("a=") {
            if attribute.starts_with("candidate:") {
                if fragment.candidates.len() == MAX_CANDIDATES_PER_MESSAGE {
                    return Err(SignallingError::TooManyCandidates);
                }
                check_candidate(attribute)?;
                fragment.candidates.push(Candidate {
                    candidate: attribute.to_owned(),
                    sdp_mid: mid.map(str::to_owned),
                    // A fragment's m-lines are placeholders (RFC 8840
                    // §4.4): sections are named by mid, not position.
                    sdp_m_line_index: None,
                });
            }
        }
    }
    Ok(fragment)
}

/// `x=…`: a lowercase letter, then `=` (RFC 8866 §5).
fn is_sdp_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_lowercase() && bytes[1] == b'='
}

/// Sets an ICE credential once: 1 to [`MAX_ICE_CREDENTIAL_BYTES`] of
/// `ice-char` (`A-Z a-z 0-9 + /`, RFC 8839 §5.4). The same value again is
/// fine (session and media level may both say it).
fn set_credential(
    slot: &mut Option<String>,
    value: &str,
    conflict: &'static str,
) -> Result<(), SignallingError> {
    let is_ice_char = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    if value.is_empty() || value.len() > MAX_ICE_CREDENTIAL_BYTES || !value.bytes().all(is_ice_char)
    {
        return Err(SignallingError::Invalid("invalid ICE credential"));
    }
    match slot {
        Some(seen) if seen != value => Err(SignallingError::Invalid(conflict)),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value.to_owned());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::fixtures::{FLUIDD_TRICKLE, WHEP_TRICKLE};
    use super::*;

    fn route(camera: Option<&str>, resource: Option<&str>) -> Option<WhepRoute> {
        Some(WhepRoute {
            camera: camera.map(str::to_owned),
            resource: resource.map(str::to_owned),
        })
    }

    /// Resolves a relative reference of one or more segments against a
    /// path, as a browser does a `Location` (RFC 3986 §5.2.3: everything
    /// after the base's last `/` is replaced).
    fn resolve(base: &str, reference: &str) -> String {
        let directory = &base[..base.rfind('/').map_or(0, |at| at + 1)];
        format!("{directory}{reference}")
    }

    #[test]
    fn paths_as_whep_clients_use_them() {
        for (path, expected) in [
            // The endpoint a POST goes to.
            ("/whep", route(None, None)),
            ("/cam/door/whep", route(Some("door"), None)),
            // Mainsail: its stream URL, `/`, `whep`.
            ("/webcam/whep", route(None, None)),
            ("/webcam/cam/door/whep", route(Some("door"), None)),
            ("/whep/", route(None, None)),
            ("//whep", route(None, None)),
            // The session a PATCH or DELETE goes to.
            (
                "/whep/0a1b2c3d4e5f6071",
                route(None, Some("0a1b2c3d4e5f6071")),
            ),
            (
                "/cam/door/whep/0a1b2c3d4e5f6071",
                route(Some("door"), Some("0a1b2c3d4e5f6071")),
            ),
            (
                "/webcam/whep/0a1b2c3d4e5f6071",
                route(None, Some("0a1b2c3d4e5f6071")),
            ),
            // A query the caller left on is not part of the path.
            ("/whep?token=T", route(None, None)),
            (
                "/cam/door/whep/01ab?token=T",
                route(Some("door"), Some("01ab")),
            ),
            // The last `whep` is the endpoint: camera `whep`, camera `cam`.
            ("/cam/whep/whep", route(Some("whep"), None)),
            ("/cam/cam/whep", route(Some("cam"), None)),
            ("/cam/door/whep/cam", route(Some("door"), Some("cam"))),
        ] {
            assert_eq!(whep_route(path), expected, "{path}");
        }
    }

    #[test]
    fn mainsails_token_url_is_no_route() {
        // Mainsail appends `whep` after the query of a stream URL with a
        // token: the HTTP reader makes that path `/`, query `token=Twhep`.
        assert_eq!(whep_route("/"), None);
        assert_eq!(whep_route("/?token=Twhep"), None);
        assert_eq!(whep_route("/webcam/?token=Twhep"), None);
    }

    #[test]
    fn paths_that_are_not_whep() {
        for path in [
            "",
            "/",
            "/whepx",
            "/WHEP",
            "/webrtc",
            "/stream.mjpg",
            "/cam/whep",
            "/cam//whep",
            "/whep/0a1b/extra",
            "/whep/not%20an%20id",
            "/whep/a.b",
        ] {
            assert_eq!(whep_route(path), None, "{path}");
        }
        let too_long = format!("/whep/{}", "a".repeat(super::super::MAX_PEER_ID_BYTES + 1));
        assert_eq!(whep_route(&too_long), None);
    }

    #[test]
    fn the_location_resolves_to_the_session_under_any_prefix() {
        assert_eq!(whep_location("0a1b2c3d"), "whep/0a1b2c3d");
        for (posted, camera) in [
            ("/whep", None),
            ("/whep/", None),
            ("/webcam/whep", None),
            ("/cam/door/whep", Some("door")),
            ("/printer/cam/door/whep", Some("door")),
        ] {
            let session = resolve(posted, &whep_location("0a1b2c3d"));
            assert_eq!(
                whep_route(&session),
                route(camera, Some("0a1b2c3d")),
                "{posted} -> {session}"
            );
        }
    }

    #[test]
    fn if_match_as_clients_send_it() {
        let etag = "\"7f3a9c01\"";
        // Fluidd.
        assert!(etag_matches("*", etag));
        assert!(etag_matches(" * ", etag));
        // The ETag echoed, quoted or not, and our own given bare.
        assert!(etag_matches("\"7f3a9c01\"", etag));
        assert!(etag_matches("7f3a9c01", etag));
        assert!(etag_matches("\"7f3a9c01\"", "7f3a9c01"));
        // Through a compressing proxy.
        assert!(etag_matches("W/\"7f3a9c01\"", etag));
        assert!(etag_matches("\"7f3a9c01\"", "W/\"7f3a9c01\""));
        // Lists.
        assert!(etag_matches("\"0000\", \"7f3a9c01\"", etag));
        assert!(etag_matches("\"0000\",W/\"7f3a9c01\",", etag));
        assert!(etag_matches("\"a,b\", \"7f3a9c01\"", etag));
        assert!(etag_matches("\"a,b\"", "\"a,b\""));
    }

    #[test]
    fn if_match_that_does_not_match() {
        let etag = "\"7f3a9c01\"";
        for if_match in [
            "",
            " , ",
            "\"7f3a9c02\"",
            "\"7F3A9C01\"",
            "\"7f3a9c01",
            "\"7f3a9c0\"1\"",
            "\"7f3a9c01\" x",
            "\"\"",
            "\"0000\", \"a,7f3a9c01\"",
            "**",
            "\"*\"",
            "W/",
            "W/ , w/",
        ] {
            assert!(!etag_matches(if_match, etag), "{if_match:?}");
        }
        // A malformed ETag of our own matches nothing but `*`.
        assert!(!etag_matches("\"x", "\"x"));
        assert!(!etag_matches("", ""));
        assert!(!etag_matches("W/", "\"\""));
    }

    #[test]
    fn the_whep_example_fragment() {
        let fragment = parse_trickle_fragment(WHEP_TRICKLE.as_bytes()).unwrap();
        assert_eq!(fragment.ice_ufrag.as_deref(), Some("EsAw"));
        assert_eq!(
            fragment.ice_pwd.as_deref(),
            Some("bP+XJMM09aR8AiX1jdukzR6Y")
        );
        assert!(fragment.end_of_candidates);
        assert_eq!(fragment.candidates.len(), 4);
        assert_eq!(
            fragment.candidates[0],
            Candidate {
                candidate: "candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host \
                            generation 0 ufrag EsAw network-id 1"
                    .into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: None,
            }
        );
        assert!(fragment.candidates[3]
            .candidate
            .starts_with("candidate:2154773085 1 tcp"));
    }

    #[test]
    fn fluidds_fragment_for_one_candidate() {
        let fragment = parse_trickle_fragment(FLUIDD_TRICKLE.as_bytes()).unwrap();
        assert_eq!(fragment.ice_ufrag.as_deref(), Some("0Ws4"));
        assert_eq!(fragment.candidates.len(), 1);
        assert_eq!(
            fragment.candidates[0].candidate,
            "candidate:2982134577 1 udp 2113937151 3f8e6c2a-5b1d-4c3e-9f2a-7d6b5e4c3b2a.local \
             54321 typ host generation 0 ufrag 0Ws4 network-cost 999"
        );
        assert_eq!(fragment.candidates[0].sdp_mid.as_deref(), Some("0"));
        assert!(!fragment.end_of_candidates);
    }

    #[test]
    fn fragments_with_credentials_at_both_levels_or_only_an_end() {
        let end = parse_trickle_fragment(b"a=end-of-candidates\r\n").unwrap();
        assert_eq!(
            end,
            TrickleFragment {
                end_of_candidates: true,
                ..TrickleFragment::default()
            }
        );
        assert_eq!(
            parse_trickle_fragment(b"").unwrap(),
            TrickleFragment::default()
        );
        // RFC 8840 §4.4's shape: session-level options and group, then a
        // section per mid; the same credentials at media level again.
        let two_sections = "a=ice-options:trickle\r\na=group:BUNDLE 0 1\r\n\
            m=video 9 RTP/AVP 0\r\na=mid:0\r\na=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
            a=candidate:1 1 UDP 2130706431 192.0.2.1 5000 typ host\r\n\
            m=audio 9 RTP/AVP 0\r\na=ice-ufrag:EsAw\r\n\
            a=candidate:2 1 UDP 2130706431 192.0.2.1 5002 typ host\r\n";
        let fragment = parse_trickle_fragment(two_sections.as_bytes()).unwrap();
        assert_eq!(fragment.ice_ufrag.as_deref(), Some("EsAw"));
        let mids: Vec<_> = fragment
            .candidates
            .iter()
            .map(|c| c.sdp_mid.as_deref())
            .collect();
        assert_eq!(mids, [Some("0"), None], "a mid is its section's only");
    }

    #[test]
    fn fragments_that_are_refused() {
        let invalid = |body: &[u8]| match parse_trickle_fragment(body) {
            Err(SignallingError::Invalid(reason)) => reason,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
        };
        assert_eq!(
            invalid(b"a=candidate:1 1 udp 1 \xff 1 typ host"),
            "SDP fragment is not UTF-8"
        );
        assert_eq!(
            invalid(br#"{"candidate":"candidate:1"}"#),
            "not an SDP fragment"
        );
        assert_eq!(
            invalid(b"a=ice-ufrag:EsAw\r\n\r\nhello\r\n"),
            "not an SDP fragment"
        );
        assert_eq!(invalid(b"a=ice-ufrag:Es Aw"), "invalid ICE credential");
        assert_eq!(invalid(b"a=ice-pwd:"), "invalid ICE credential");
        assert_eq!(
            invalid(b"a=ice-ufrag:EsAw\na=ice-ufrag:Other"),
            "conflicting ice-ufrag"
        );
        assert_eq!(
            invalid(b"a=ice-pwd:abcd\na=ice-pwd:efgh"),
            "conflicting ice-pwd"
        );
        assert_eq!(invalid(b"a=candidate:"), "not a candidate:");
        assert_eq!(
            invalid(b"a=mid:\na=candidate:1 1 udp 1 h 1 typ host"),
            "invalid mid"
        );
        assert_eq!(
            invalid(b"a=candidate:1 1 udp 1 h 1 typ host\rx"),
            "control character in a candidate"
        );

        let mut many = String::new();
        for i in 0..=MAX_CANDIDATES_PER_MESSAGE {
            many.push_str(&format!(
                "a=candidate:{i} 1 udp 1 192.0.2.1 {i} typ host\r\n"
            ));
        }
        assert_eq!(
            parse_trickle_fragment(many.as_bytes()),
            Err(SignallingError::TooManyCandidates)
        );
        let last_line = many.trim_end().rfind('\n').unwrap() + 1;
        assert_eq!(
            parse_trickle_fragment(&many.as_bytes()[..last_line])
                .unwrap()
                .candidates
                .len(),
            MAX_CANDIDATES_PER_MESSAGE
        );
        let mut huge = b"a=end-of-candidates\r\n".to_vec();
        huge.resize(MAX_BODY_BYTES + 1, b'\n');
        assert_eq!(
            parse_trickle_fragment(&huge),
            Err(SignallingError::TooLarge)
        );
        huge.truncate(MAX_BODY_BYTES);
        assert!(parse_trickle_fragment(&huge).is_ok());
    }

    proptest! {
        #[test]
        fn any_bytes_are_a_fragment_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(fragment) = parse_trickle_fragment(&bytes) {
                prop_assert!(fragment.candidates.len() <= MAX_CANDIDATES_PER_MESSAGE);
                for candidate in &fragment.candidates {
                    prop_assert!(candidate.candidate.starts_with("candidate:"));
                }
            }
        }

        #[test]
        fn any_sdp_like_lines_are_a_fragment_or_an_error(
            lines in prop::collection::vec("(a=(candidate|ice-ufrag|ice-pwd|mid|end-of-candidates)?:?|m=)[ -~]{0,20}", 0..20)
        ) {
            let body = lines.join("\r\n");
            let _ = parse_trickle_fragment(body.as_bytes());
        }

        #[test]
        fn any_path_routes_and_a_route_written_out_routes_back(path in "[/a-z0-9?_.-]{0,40}|(/[a-z]{1,5}){0,3}/(cam/[a-z]{1,5}/)?whep(/[a-z0-9]{1,8})?") {
            if let Some(route) = whep_route(&path) {
                let mut canonical = match &route.camera {
                    Some(name) => format!("/cam/{name}/whep"),
                    None => "/whep".to_owned(),
                };
                if let Some(id) = &route.resource {
                    canonical = resolve(&canonical, &whep_location(id));
                }
                prop_assert_eq!(whep_route(&canonical), Some(route), "{}", canonical);
            }
        }

        #[test]
        fn any_if_match_is_read_and_a_tag_matches_itself(if_match in "[ -~]{0,40}", opaque in "[!#-~]{0,12}") {
            let _ = etag_matches(&if_match, "\"x\"");
            let _ = etag_matches("\"x\"", &if_match);
            let quoted = format!("\"{opaque}\"");
            prop_assert!(etag_matches(&quoted, &quoted));
            let weak = format!("W/{quoted}");
            prop_assert!(etag_matches(&weak, &quoted));
            let listed = format!("\"other\" ,{quoted}");
            prop_assert!(etag_matches(&listed, &quoted));
            prop_assert!(etag_matches("*", &quoted));
        }
    }
}
