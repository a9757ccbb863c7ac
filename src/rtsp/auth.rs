//! RTSP authentication against camloop's `--token`, sans-IO: the challenge
//! a `401` carries, the check of a client's `Authorization`, and the
//! client's side of both, for the load tool and the tests.
//!
//! This module owns HTTP authentication as RTSP uses it (RFC 2326 §12.5
//! refers to RFC 2617): the Basic scheme, where the password is the token,
//! and the Digest scheme with MD5, where the token never crosses the wire.
//! There is one secret and no list of users, so any user name is accepted
//! and the token is the password, as for HTTP
//! ([`crate::http::response::AUTH_CHALLENGE`]). A 401 offers both schemes,
//! Digest first: ffmpeg and GStreamer answer Digest whenever it is offered,
//! and Basic is there for clients that know nothing else.
//!
//! Real clients answer a Digest challenge in two forms, and both are
//! accepted: RFC 2617's with `qop=auth`, `nc` and `cnonce` (ffmpeg), and
//! RFC 2069's without them (GStreamer, even when the challenge offers
//! `qop="auth"`). The nonce belongs to one connection: drawn when it opens
//! ([`new_nonce`]) and checked on each of its requests. So `nc` is not
//! tracked: replaying a header on the connection that earned it gains
//! nothing, and on any other connection its nonce is stale.

use std::fmt;
use std::fmt::Write as _;

use base64::Engine as _;
use md5::{Digest as _, Md5};

use crate::http::request::parse_basic_password;
use crate::text::constant_time_eq;

/// The protection space of every challenge: the same one as HTTP's, so a
/// client that stores credentials per realm needs the token once.
pub const REALM: &str = "camloop";

/// Random bytes in a nonce: 128 bits, which no client guesses.
pub const NONCE_BYTES: usize = 16;

/// The `nc` of [`digest_authorization`]'s answers: the first request under
/// a nonce.
const FIRST_NONCE_COUNT: &str = "00000001";

/// A fresh nonce for a new connection: [`NONCE_BYTES`] random bytes
/// ([`crate::sys::random_bytes`]) as lowercase hex.
pub fn new_nonce() -> String {
    lower_hex(&crate::sys::random_bytes::<NONCE_BYTES>())
}

/// The two `WWW-Authenticate` values of a 401, Digest first: clients that
/// take the first scheme they know then take the one that keeps the token
/// off the wire. `algorithm=MD5` is the default and could go, but saying it
/// costs nothing and ffmpeg and GStreamer both accept it.
pub fn challenge_headers(nonce: &str) -> [String; 2] {
    [
        format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", qop=\"auth\", algorithm=MD5"),
        format!("Basic realm=\"{REALM}\""),
    ]
}

/// Why a request's credentials are refused, for one log line; the answer
/// is a 401 with the connection's challenge whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// A scheme other than Basic or Digest (Bearer, say).
    WrongScheme,
    /// Credentials that cannot be read (the reason is for logs).
    Malformed(&'static str),
    /// A Digest answer without this parameter.
    MissingParameter(&'static str),
    /// Basic credentials whose password is not the token.
    WrongPassword,
    /// A Digest answer whose `response` is not the one the token gives: a
    /// wrong password, or a response computed for another method.
    BadResponse,
    /// A Digest answer to another nonce than the connection's: an answer
    /// from an earlier connection, or made up.
    StaleNonce,
    /// A Digest answer whose `uri` is not the request's URL: an answer
    /// computed for another request.
    UriMismatch,
    /// A Digest answer for another realm than [`REALM`].
    WrongRealm,
    /// A Digest algorithm other than MD5 (`MD5-sess`, `SHA-256`).
    UnsupportedAlgorithm,
    /// A Digest `qop` other than `auth` (`auth-int`).
    UnsupportedQop,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::Missing => write!(f, "no credentials"),
            AuthFailure::WrongScheme => write!(f, "a scheme other than Digest or Basic"),
            AuthFailure::Malformed(reason) => write!(f, "malformed credentials: {reason}"),
            AuthFailure::MissingParameter(name) => write!(f, "Digest without {name}"),
            AuthFailure::WrongPassword => write!(f, "Basic with a wrong password"),
            AuthFailure::BadResponse => {
                write!(f, "Digest with a wrong response (wrong password?)")
            }
            AuthFailure::StaleNonce => write!(f, "Digest with another connection's nonce"),
            AuthFailure::UriMismatch => write!(f, "Digest for another URL than the request's"),
            AuthFailure::WrongRealm => write!(f, "Digest for another realm than {REALM}"),
            AuthFailure::UnsupportedAlgorithm => {
                write!(f, "Digest with an algorithm other than MD5")
            }
            AuthFailure::UnsupportedQop => write!(f, "Digest with a qop other than auth"),
        }
    }
}

impl std::error::Error for AuthFailure {}

/// Checks a request's `Authorization` header (`None` when it has none)
/// against `token`: Basic with the token as password (any user name), or
/// Digest MD5 answering the connection's `nonce`, with or without `qop`,
/// for this `method` and `request_url` (the URL of the request line,
/// exactly as sent). The response digest is compared in constant time.
///
/// ```
/// use camloop::rtsp::auth::{challenge_headers, digest_authorization, new_nonce, verify};
///
/// let nonce = new_nonce(); // when the connection opens
/// let [digest, _basic] = challenge_headers(&nonce); // in the 401
/// let url = "rtsp://127.0.0.1:8554/door";
/// // The client answers with any user name and the token as password.
/// let answer = digest_authorization(&digest, "DESCRIBE", url, "me", "s3cret", "0a4f113b");
/// let answer = answer.expect("a Digest challenge");
/// assert_eq!(verify(Some(&answer), "DESCRIBE", url, "s3cret", &nonce), Ok(()));
/// assert!(verify(Some(&answer), "DESCRIBE", url, "guess", &nonce).is_err());
/// ```
pub fn verify(
    authorization: Option<&str>,
    method: &str,
    request_url: &str,
    token: &str,
    nonce: &str,
) -> Result<(), AuthFailure> {
    let value = authorization.ok_or(AuthFailure::Missing)?.trim();
    let (scheme, credentials) = split_scheme(value);
    if scheme.eq_ignore_ascii_case("Basic") {
        let password = parse_basic_password(value.as_bytes()).ok_or(AuthFailure::Malformed(
            "Basic without base64 of user:password",
        ))?;
        if constant_time_eq(token.as_bytes(), password.as_bytes()) {
            Ok(())
        } else {
            Err(AuthFailure::WrongPassword)
        }
    } else if scheme.eq_ignore_ascii_case("Digest") {
        verify_digest(credentials, method, request_url, token, nonce)
    } else {
        Err(AuthFailure::WrongScheme)
    }
}

/// [`verify`] for the Digest scheme, `credentials` being what follows the
/// word `Digest`.
fn verify_digest(
    credentials: &str,
    method: &str,
    request_url: &str,
    token: &str,
    nonce: &str,
) -> Result<(), AuthFailure> {
    let params = DigestParams::parse(credentials).map_err(AuthFailure::Malformed)?;
    let required = |name: &'static str| params.get(name).ok_or(AuthFailure::MissingParameter(name));
    let (username, realm, client_nonce, uri, response) = (
        required("username")?,
        required("realm")?,
        required("nonce")?,
        required("uri")?,
        required("response")?,
    );
    if params
        .get("algorithm")
        .is_some_and(|algorithm| !algorithm.eq_ignore_ascii_case("MD5"))
    {
        return Err(AuthFailure::UnsupportedAlgorithm);
    }
    if realm != REALM {
        return Err(AuthFailure::WrongRealm);
    }
    if client_nonce != nonce {
        return Err(AuthFailure::StaleNonce);
    }
    // As sent: a client computes its answer from the URL it wrote, and one
    // answering another request's URL answers another request.
    if uri != request_url {
        return Err(AuthFailure::UriMismatch);
    }
    let qop = match params.get("qop") {
        None => None,
        Some("auth") => Some(QopAuth {
            nc: required("nc")?,
            cnonce: required("cnonce")?,
        }),
        Some(_) => return Err(AuthFailure::UnsupportedQop),
    };
    let expected = digest_response(&digest_ha1(username, REALM, token), nonce, method, uri, qop);
    // Hex digits of either case are the same digest.
    if constant_time_eq(
        expected.as_bytes(),
        response.to_ascii_lowercase().as_bytes(),
    ) {
        Ok(())
    } else {
        Err(AuthFailure::BadResponse)
    }
}

/// `HA1` of RFC 2617 §3.2.2.2 with MD5: `MD5(username:realm:password)` in
/// lowercase hex.
pub fn digest_ha1(username: &str, realm: &str, password: &str) -> String {
    md5_hex(&[username, realm, password])
}

/// The `nc` (nonce count, 8 hex digits) and `cnonce` (the client's nonce)
/// of a Digest answer with `qop=auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QopAuth<'a> {
    /// How many requests the client has sent with this nonce, this one
    /// included, as 8 hex digits.
    pub nc: &'a str,
    /// The client's nonce.
    pub cnonce: &'a str,
}

/// The `response` of a Digest answer (RFC 2617 §3.2.2.1), lowercase hex,
/// from `ha1` ([`digest_ha1`]) and `HA2 = MD5(method:uri)`:
/// `MD5(HA1:nonce:nc:cnonce:auth:HA2)` with `qop=auth`, and RFC 2069's
/// `MD5(HA1:nonce:HA2)` without.
pub fn digest_response(
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<QopAuth<'_>>,
) -> String {
    let ha2 = md5_hex(&[method, uri]);
    match qop {
        Some(QopAuth { nc, cnonce }) => md5_hex(&[ha1, nonce, nc, cnonce, "auth", &ha2]),
        None => md5_hex(&[ha1, nonce, &ha2]),
    }
}

/// A client's `Authorization` value for Basic: `base64(user:password)`
/// (RFC 7617).
pub fn basic_authorization(user: &str, password: &str) -> String {
    let credentials = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// A client's `Authorization` value answering the Digest `challenge` (a
/// `WWW-Authenticate` value) for a `method` request to `uri`: with
/// `qop=auth`, `nc=00000001` and `cnonce` when the challenge offers
/// `qop` `auth`, in RFC 2069's form otherwise; `opaque` is sent back when
/// there is one. `None` when the challenge is not Digest MD5 or lacks its
/// realm or nonce.
///
/// `nc` is always 1, as for the first request under a nonce: camloop does
/// not track it, and a client of a server that does would count up.
pub fn digest_authorization(
    challenge: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
) -> Option<String> {
    let (scheme, params) = split_scheme(challenge);
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let params = DigestParams::parse(params).ok()?;
    let (realm, nonce) = (params.get("realm")?, params.get("nonce")?);
    if params
        .get("algorithm")
        .is_some_and(|algorithm| !algorithm.eq_ignore_ascii_case("MD5"))
    {
        return None;
    }
    // A server may offer several, `qop="auth,auth-int"`.
    let offers_auth = params
        .get("qop")
        .is_some_and(|qop| qop.split(',').any(|offer| offer.trim() == "auth"));
    let qop = offers_auth.then_some(QopAuth {
        nc: FIRST_NONCE_COUNT,
        cnonce,
    });
    let response = digest_response(&digest_ha1(user, realm, password), nonce, method, uri, qop);
    let mut answer = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\"",
        quoted(user),
        quoted(realm),
        quoted(nonce),
        quoted(uri),
    );
    // Writing to a String cannot fail.
    if let Some(QopAuth { nc, cnonce }) = qop {
        let _ = write!(answer, ", qop=auth, nc={nc}, cnonce={}", quoted(cnonce));
    }
    if let Some(opaque) = params.get("opaque") {
        let _ = write!(answer, ", opaque={}", quoted(opaque));
    }
    Some(answer)
}

/// The scheme of a credentials or challenge value, and what follows it.
fn split_scheme(value: &str) -> (&str, &str) {
    value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""))
}

/// The `name=value` parameters of a Digest challenge or answer
/// (RFC 2617 §3.2.1, §3.2.2), values unquoted.
struct DigestParams {
    params: Vec<(String, String)>,
}

impl DigestParams {
    /// Reads `name=token` and `name="quoted string"` pairs separated by
    /// commas, with any spaces around `=` and `,` and empty list elements
    /// (`a=1,,b=2`), as RFC 7230 §7 allows. Names are kept lowercase: they
    /// are case-insensitive. A quoted string may hold commas, and `\x` in
    /// one stands for `x`. A name given twice is an error: which one the
    /// client meant cannot be known.
    fn parse(text: &str) -> Result<Self, &'static str> {
        let mut params: Vec<(String, String)> = Vec::new();
        let separators = |c: char| c == ',' || c.is_ascii_whitespace();
        let mut rest = text.trim_start_matches(separators);
        while !rest.is_empty() {
            let name_end = rest
                .find(|c: char| c == '=' || separators(c))
                .unwrap_or(rest.len());
            let name = rest[..name_end].to_ascii_lowercase();
            if name.is_empty() {
                return Err("a parameter without a name");
            }
            rest = rest[name_end..]
                .trim_start()
                .strip_prefix('=')
                .ok_or("a parameter without a value")?
                .trim_start();
            let value = if let Some(quoted) = rest.strip_prefix('"') {
                let (value, after) = unquote(quoted)?;
                rest = after;
                value
            } else {
                let end = rest.find(separators).unwrap_or(rest.len());
                if end == 0 {
                    return Err("a parameter without a value");
                }
                let value = rest[..end].to_owned();
                rest = &rest[end..];
                value
            };
            if params.iter().any(|(known, _)| *known == name) {
                return Err("a parameter given twice");
            }
            params.push((name, value));
            rest = rest.trim_start();
            if !rest.is_empty() && !rest.starts_with(',') {
                return Err("parameters not separated by commas");
            }
            rest = rest.trim_start_matches(separators);
        }
        Ok(DigestParams { params })
    }

    /// The value of parameter `name` (lowercase).
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The content of a quoted string whose opening quote is already read, and
/// what follows its closing quote.
fn unquote(text: &str) -> Result<(String, &str), &'static str> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            _ => value.push(c),
        }
    }
    Err("a quoted string without its closing quote")
}

/// `text` as a quoted string: in quotes, with `"` and `\` escaped.
fn quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// MD5 of `parts` joined by `:`, in lowercase hex: how RFC 2617 writes
/// every digest it takes.
fn md5_hex(parts: &[&str]) -> String {
    let mut md5 = Md5::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            md5.update(b":");
        }
        md5.update(part.as_bytes());
    }
    lower_hex(&md5.finalize())
}

/// `bytes` as lowercase hex, two digits each.
fn lower_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(2 * bytes.len());
    for byte in bytes {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TOKEN: &str = "s3cret";
    const NONCE: &str = "0123456789abcdef0123456789abcdef";
    const URL: &str = "rtsp://127.0.0.1:8554/door";

    fn describe(authorization: &str) -> Result<(), AuthFailure> {
        verify(Some(authorization), "DESCRIBE", URL, TOKEN, NONCE)
    }

    /// A client's answer to camloop's own Digest challenge.
    fn answer(challenge: &str, method: &str, uri: &str, password: &str) -> String {
        digest_authorization(challenge, method, uri, "viewer", password, "f00dcafe")
            .expect("a Digest MD5 challenge")
    }

    #[test]
    fn a_401_offers_digest_then_basic_in_the_realm_http_uses() {
        let [digest, basic] = challenge_headers(NONCE);
        assert_eq!(
            digest,
            "Digest realm=\"camloop\", nonce=\"0123456789abcdef0123456789abcdef\", \
             qop=\"auth\", algorithm=MD5"
        );
        assert_eq!(basic, "Basic realm=\"camloop\"");
        assert_eq!(basic, crate::http::response::AUTH_CHALLENGE.1);
    }

    #[test]
    fn nonces_are_fresh_lowercase_hex() {
        let nonce = new_nonce();
        assert_eq!(nonce.len(), 2 * NONCE_BYTES);
        assert!(
            nonce
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{nonce}"
        );
        assert_ne!(nonce, new_nonce());
        assert_eq!(lower_hex(&[0x00, 0x9F, 0xA0]), "009fa0");
    }

    /// RFC 2617 §3.5, the example every Digest implementation checks
    /// itself against: the challenge as the server sent it, the answer's
    /// response and opaque.
    #[test]
    fn the_rfc_2617_example() {
        let ha1 = digest_ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9");
        let qop = QopAuth {
            nc: "00000001",
            cnonce: "0a4f113b",
        };
        let nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
        assert_eq!(
            digest_response(&ha1, nonce, "GET", "/dir/index.html", Some(qop)),
            "6629fae49393a05397450978507c4ef1"
        );
        let challenge = "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let answer = digest_authorization(
            challenge,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
        );
        assert_eq!(
            answer.as_deref(),
            Some(
                "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
                 response=\"6629fae49393a05397450978507c4ef1\", qop=auth, nc=00000001, \
                 cnonce=\"0a4f113b\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
            )
        );
    }

    #[test]
    fn digest_round_trips_with_and_without_qop() {
        let [with_qop, _] = challenge_headers(NONCE);
        let without_qop = format!("Digest realm=\"camloop\", nonce=\"{NONCE}\"");
        for (challenge, has_qop) in [(with_qop.as_str(), true), (without_qop.as_str(), false)] {
            let authorization = answer(challenge, "DESCRIBE", URL, TOKEN);
            assert_eq!(
                authorization.contains("qop=auth"),
                has_qop,
                "{authorization}"
            );
            assert_eq!(describe(&authorization), Ok(()));
            assert_eq!(
                verify(Some(&authorization), "PLAY", URL, TOKEN, NONCE),
                Err(AuthFailure::BadResponse),
                "the method is part of the digest"
            );
        }
    }

    #[test]
    fn basic_takes_any_user_and_the_token_as_password() {
        // RFC 7617 §2's example.
        assert_eq!(
            basic_authorization("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(describe(&basic_authorization("anyone", TOKEN)), Ok(()));
        assert_eq!(describe(&basic_authorization("", TOKEN)), Ok(()));
        assert_eq!(
            describe(&basic_authorization("anyone", "s3cre")),
            Err(AuthFailure::WrongPassword)
        );
        assert_eq!(
            describe(&basic_authorization(TOKEN, "")),
            Err(AuthFailure::WrongPassword),
            "the user name is not the password"
        );
        for malformed in ["Basic", "Basic !!!", "Basic dXNlcg=="] {
            assert!(
                matches!(describe(malformed), Err(AuthFailure::Malformed(_))),
                "{malformed}"
            );
        }
    }

    #[test]
    fn a_wrong_password_uri_or_nonce_is_refused() {
        let [challenge, _] = challenge_headers(NONCE);
        assert_eq!(
            describe(&answer(&challenge, "DESCRIBE", URL, "s3cret!")),
            Err(AuthFailure::BadResponse)
        );
        let other_url = "rtsp://127.0.0.1:8554/yard";
        assert_eq!(
            describe(&answer(&challenge, "DESCRIBE", other_url, TOKEN)),
            Err(AuthFailure::UriMismatch)
        );
        let [stale, _] = challenge_headers("fedcba9876543210fedcba9876543210");
        assert_eq!(
            describe(&answer(&stale, "DESCRIBE", URL, TOKEN)),
            Err(AuthFailure::StaleNonce)
        );
        let other_realm = format!("Digest realm=\"elsewhere\", nonce=\"{NONCE}\"");
        assert_eq!(
            describe(&answer(&other_realm, "DESCRIBE", URL, TOKEN)),
            Err(AuthFailure::WrongRealm)
        );
    }

    /// What GStreamer's `rtspsrc` sends (RFC 2069's form, even to a
    /// challenge offering `qop`), for user `u` and token `s3cret`; the
    /// response from Python's `hashlib`, not from this module.
    #[test]
    fn gstreamer_s_answer() {
        let url = "rtsp://127.0.0.1:8554/";
        let authorization = format!(
            "Digest username=\"u\", realm=\"camloop\", nonce=\"{NONCE}\", uri=\"{url}\", \
             response=\"c24b6714eaad44e8a70b2b65ad9769d8\""
        );
        let check = |method, url| verify(Some(&authorization), method, url, TOKEN, NONCE);
        assert_eq!(check("DESCRIBE", url), Ok(()));
        assert_eq!(check("DESCRIBE", URL), Err(AuthFailure::UriMismatch));
        assert_eq!(check("OPTIONS", url), Err(AuthFailure::BadResponse));
        let client = digest_authorization(
            &format!("Digest realm=\"camloop\", nonce=\"{NONCE}\""),
            "DESCRIBE",
            url,
            "u",
            TOKEN,
            "unused",
        );
        assert_eq!(client, Some(authorization), "the same bytes as GStreamer");
    }

    /// What ffmpeg sends (`libavformat/httpauth.c`): RFC 2617's form with
    /// `algorithm` echoed and quoted, and `qop` quoted too; the response
    /// from Python's `hashlib`.
    #[test]
    fn ffmpeg_s_answer() {
        let authorization = format!(
            "Digest username=\"u\", realm=\"camloop\", nonce=\"{NONCE}\", uri=\"{URL}\", \
             response=\"d324c89f3c26f3060927bec9df9dfdf2\", algorithm=\"MD5\", qop=\"auth\", \
             cnonce=\"5a1d3f0c9e8b7a61\", nc=00000001"
        );
        assert_eq!(describe(&authorization), Ok(()));
        assert_eq!(
            describe(&authorization.replace("nc=00000001", "nc=00000002")),
            Err(AuthFailure::BadResponse),
            "nc is part of the digest"
        );
        assert_eq!(
            describe(&authorization.replace("d324c89f", "D324C89F")),
            Ok(()),
            "hex digits of either case"
        );
    }

    #[test]
    fn digest_parameters_are_read_robustly() {
        let ha1 = digest_ha1("a, \"b\"", REALM, TOKEN);
        let response = digest_response(&ha1, NONCE, "DESCRIBE", URL, None);
        // Odd spacing, an empty list element, upper-case names, an unknown
        // parameter, escapes and a comma in a quoted string.
        let authorization = format!(
            " digest  USERNAME = \"a, \\\"b\\\"\" ,, Realm=camloop,nonce=\"{NONCE}\" , \
             x-unknown=\"1,2\",uri=\"{URL}\",response={response}  "
        );
        assert_eq!(describe(&authorization), Ok(()));
    }

    #[test]
    fn what_is_refused_and_why() {
        let answer = |extra: &str| {
            let ha1 = digest_ha1("u", REALM, TOKEN);
            let response = digest_response(&ha1, NONCE, "DESCRIBE", URL, None);
            format!(
                "Digest username=\"u\", realm=\"camloop\", nonce=\"{NONCE}\", uri=\"{URL}\", \
                 response=\"{response}\"{extra}"
            )
        };
        assert_eq!(describe(&answer("")), Ok(()));
        for (authorization, failure) in [
            (answer(", algorithm=MD5"), Ok(())),
            (
                answer(", algorithm=SHA-256"),
                Err(AuthFailure::UnsupportedAlgorithm),
            ),
            (
                answer(", algorithm=MD5-sess"),
                Err(AuthFailure::UnsupportedAlgorithm),
            ),
            (answer(", qop=auth-int"), Err(AuthFailure::UnsupportedQop)),
            (
                answer(", qop=auth, cnonce=\"x\""),
                Err(AuthFailure::MissingParameter("nc")),
            ),
            (
                answer(", qop=auth, nc=00000001"),
                Err(AuthFailure::MissingParameter("cnonce")),
            ),
            (
                answer(", uri=\"x\""),
                Err(AuthFailure::Malformed("a parameter given twice")),
            ),
            (
                answer(", opaque=\"x"),
                Err(AuthFailure::Malformed(
                    "a quoted string without its closing quote",
                )),
            ),
            (
                answer(" opaque=x"),
                Err(AuthFailure::Malformed("parameters not separated by commas")),
            ),
            (
                answer(", =x"),
                Err(AuthFailure::Malformed("a parameter without a name")),
            ),
            (
                answer(", opaque="),
                Err(AuthFailure::Malformed("a parameter without a value")),
            ),
            (
                format!("Digest realm=\"camloop\", nonce=\"{NONCE}\""),
                Err(AuthFailure::MissingParameter("username")),
            ),
            (
                "Digest".to_owned(),
                Err(AuthFailure::MissingParameter("username")),
            ),
            ("Bearer s3cret".to_owned(), Err(AuthFailure::WrongScheme)),
            (TOKEN.to_owned(), Err(AuthFailure::WrongScheme)),
        ] {
            assert_eq!(describe(&authorization), failure, "{authorization}");
        }
        assert_eq!(
            verify(None, "DESCRIBE", URL, TOKEN, NONCE),
            Err(AuthFailure::Missing)
        );
    }

    #[test]
    fn a_client_answers_only_digest_md5_with_realm_and_nonce() {
        for challenge in [
            "Basic realm=\"camloop\"",
            "Basic realm=\"camloop\", nonce=\"n\"",
            "Digest realm=\"camloop\"",
            "Digest nonce=\"n\"",
            "Digest realm=\"camloop\", nonce=\"n\", algorithm=SHA-256",
            "Digest realm=\"camloop\", nonce=\"n",
            "Digest",
        ] {
            assert_eq!(
                digest_authorization(challenge, "DESCRIBE", URL, "u", TOKEN, "c"),
                None,
                "{challenge}"
            );
        }
        let auth_int_only =
            format!("Digest realm=\"camloop\", nonce=\"{NONCE}\", qop=\"auth-int\"");
        let answer = answer(&auth_int_only, "DESCRIBE", URL, TOKEN);
        assert!(!answer.contains("qop"), "{answer}");
        assert_eq!(describe(&answer), Ok(()));
    }

    #[test]
    fn every_failure_is_one_distinct_line() {
        let failures = [
            AuthFailure::Missing,
            AuthFailure::WrongScheme,
            AuthFailure::Malformed("why"),
            AuthFailure::MissingParameter("uri"),
            AuthFailure::WrongPassword,
            AuthFailure::BadResponse,
            AuthFailure::StaleNonce,
            AuthFailure::UriMismatch,
            AuthFailure::WrongRealm,
            AuthFailure::UnsupportedAlgorithm,
            AuthFailure::UnsupportedQop,
        ];
        let lines: Vec<String> = failures.iter().map(ToString::to_string).collect();
        for line in &lines {
            assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
            assert_eq!(lines.iter().filter(|other| *other == line).count(), 1);
        }
        assert_eq!(lines[2], "malformed credentials: why");
        assert_eq!(lines[3], "Digest without uri");
    }

    /// Every prefix of a valid answer is refused, and none makes a panic.
    #[test]
    fn a_cut_answer_is_refused() {
        let [challenge, _] = challenge_headers(NONCE);
        let whole = answer(&challenge, "DESCRIBE", URL, TOKEN);
        assert_eq!(describe(&whole), Ok(()));
        for end in 0..whole.len() {
            assert!(describe(&whole[..end]).is_err(), "{}", &whole[..end]);
        }
    }

    proptest! {
        #[test]
        fn any_user_and_password_round_trip(
            user in any::<String>(),
            password in any::<String>(),
            other in any::<String>(),
            qop in any::<bool>(),
        ) {
            let challenge = if qop {
                challenge_headers(NONCE)[0].clone()
            } else {
                format!("Digest realm=\"camloop\", nonce=\"{NONCE}\"")
            };
            let authorization =
                digest_authorization(&challenge, "SETUP", URL, &user, &password, "c").unwrap();
            prop_assert_eq!(verify(Some(&authorization), "SETUP", URL, &password, NONCE), Ok(()));
            let basic = basic_authorization(&user.replace(':', ""), &password);
            prop_assert_eq!(verify(Some(&basic), "SETUP", URL, &password, NONCE), Ok(()));
            if other != password {
                prop_assert_eq!(
                    verify(Some(&authorization), "SETUP", URL, &other, NONCE),
                    Err(AuthFailure::BadResponse)
                );
                prop_assert_eq!(
                    verify(Some(&basic), "SETUP", URL, &other, NONCE),
                    Err(AuthFailure::WrongPassword)
                );
            }
        }

        #[test]
        fn any_header_is_answered_without_a_panic(
            scheme in prop_oneof![Just("Digest "), Just("Basic "), Just("")],
            rest in prop_oneof!["[ -~]{0,200}", any::<String>()],
        ) {
            let header = format!("{scheme}{rest}");
            let _ = verify(Some(&header), "DESCRIBE", URL, TOKEN, NONCE);
            let _ = digest_authorization(&header, "DESCRIBE", URL, "u", TOKEN, "c");
        }
    }
}
