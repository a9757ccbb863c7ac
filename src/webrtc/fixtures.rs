//! What the clients send, written out once for the tests of every file
//! here (and, as the same bytes, in `fuzz/corpus/webrtc_signalling/`).
//! Browser SDP is long; these keep the lines that matter to camloop and
//! enough of the rest to look like the real thing.

/// Mainsail's WHEP offer, from Chromium: video and audio, both
/// `sendrecv`, H.264 in several profiles and both packetization modes
/// between VP8, VP9 and AV1, each with its RTX format. Shortened to
/// the formats and attributes of interest, CRLF as sent.
pub const MAINSAIL_CHROMIUM_OFFER: &str = "v=0\r\n\
    o=- 4215775240449105457 2 IN IP4 127.0.0.1\r\n\
    s=-\r\n\
    t=0 0\r\n\
    a=group:BUNDLE 0 1\r\n\
    a=extmap-allow-mixed\r\n\
    a=msid-semantic: WMS\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 98 99 45 46\r\n\
    c=IN IP4 0.0.0.0\r\n\
    a=rtcp:9 IN IP4 0.0.0.0\r\n\
    a=ice-ufrag:6hSq\r\n\
    a=ice-pwd:Ue3Xl5kbGEnqa2jJwwAvCZ3v\r\n\
    a=ice-options:trickle\r\n\
    a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
    a=setup:actpass\r\n\
    a=mid:0\r\n\
    a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\r\n\
    a=sendrecv\r\n\
    a=msid:- 8f3d0c1e-3b9a-4d7e-a6f2-0c1b2a3d4e5f\r\n\
    a=rtcp-mux\r\n\
    a=rtcp-rsize\r\n\
    a=rtpmap:96 VP8/90000\r\n\
    a=rtcp-fb:96 nack pli\r\n\
    a=rtpmap:97 rtx/90000\r\n\
    a=fmtp:97 apt=96\r\n\
    a=rtpmap:102 H264/90000\r\n\
    a=rtcp-fb:102 nack pli\r\n\
    a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
    a=rtpmap:103 rtx/90000\r\n\
    a=fmtp:103 apt=102\r\n\
    a=rtpmap:104 H264/90000\r\n\
    a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
    a=rtpmap:105 rtx/90000\r\n\
    a=fmtp:105 apt=104\r\n\
    a=rtpmap:106 H264/90000\r\n\
    a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
    a=rtpmap:107 rtx/90000\r\n\
    a=fmtp:107 apt=106\r\n\
    a=rtpmap:108 H264/90000\r\n\
    a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
    a=rtpmap:109 rtx/90000\r\n\
    a=fmtp:109 apt=108\r\n\
    a=rtpmap:127 H264/90000\r\n\
    a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
    a=rtpmap:125 rtx/90000\r\n\
    a=fmtp:125 apt=127\r\n\
    a=rtpmap:39 H264/90000\r\n\
    a=fmtp:39 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
    a=rtpmap:40 rtx/90000\r\n\
    a=fmtp:40 apt=39\r\n\
    a=rtpmap:98 VP9/90000\r\n\
    a=fmtp:98 profile-id=0\r\n\
    a=rtpmap:99 rtx/90000\r\n\
    a=fmtp:99 apt=98\r\n\
    a=rtpmap:45 AV1/90000\r\n\
    a=rtpmap:46 rtx/90000\r\n\
    a=fmtp:46 apt=45\r\n\
    a=ssrc-group:FID 1932473301 3463307542\r\n\
    a=ssrc:1932473301 cname:n2nDqfAkYUa0mGTE\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
    c=IN IP4 0.0.0.0\r\n\
    a=rtcp:9 IN IP4 0.0.0.0\r\n\
    a=ice-ufrag:6hSq\r\n\
    a=ice-pwd:Ue3Xl5kbGEnqa2jJwwAvCZ3v\r\n\
    a=ice-options:trickle\r\n\
    a=setup:actpass\r\n\
    a=mid:1\r\n\
    a=sendrecv\r\n\
    a=rtcp-mux\r\n\
    a=rtpmap:111 opus/48000/2\r\n\
    a=fmtp:111 minptime=10;useinbandfec=1\r\n\
    a=rtpmap:63 red/48000/2\r\n\
    a=rtpmap:9 G722/8000\r\n\
    a=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:13 CN/8000\r\n\
    a=rtpmap:110 telephone-event/48000\r\n\
    a=rtpmap:126 telephone-event/8000\r\n";

/// Fluidd's WHEP offer, from Firefox: video only, `recvonly`; every
/// `a=fmtp` comes before the `a=rtpmap`s, and the H.264 format of
/// packetization mode 0 (97) says no mode at all.
pub const FLUIDD_FIREFOX_OFFER: &str = "v=0\r\n\
    o=mozilla...THIS_IS_SDPARTA-128.0 5127279785113218436 0 IN IP4 0.0.0.0\r\n\
    s=-\r\n\
    t=0 0\r\n\
    a=fingerprint:sha-256 2E:1B:A0:35:9C:7D:56:9F:F4:C1:8E:27:0B:60:DA:93:5F:1A:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9\r\n\
    a=group:BUNDLE 0\r\n\
    a=ice-options:trickle\r\n\
    a=msid-semantic:WMS *\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98 123 122 119\r\n\
    c=IN IP4 0.0.0.0\r\n\
    a=recvonly\r\n\
    a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
    a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1\r\n\
    a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1\r\n\
    a=fmtp:120 max-fs=12288;max-fr=60\r\n\
    a=fmtp:124 apt=120\r\n\
    a=fmtp:121 max-fs=12288;max-fr=60\r\n\
    a=fmtp:125 apt=121\r\n\
    a=fmtp:127 apt=126\r\n\
    a=fmtp:98 apt=97\r\n\
    a=fmtp:119 apt=122\r\n\
    a=ice-pwd:4b3a0c2e9d1f8a7b6c5d4e3f2a1b0c9d\r\n\
    a=ice-ufrag:8d1a2b3c\r\n\
    a=mid:0\r\n\
    a=rtcp-fb:126 nack pli\r\n\
    a=rtcp-mux\r\n\
    a=rtpmap:120 VP8/90000\r\n\
    a=rtpmap:124 rtx/90000\r\n\
    a=rtpmap:121 VP9/90000\r\n\
    a=rtpmap:125 rtx/90000\r\n\
    a=rtpmap:126 H264/90000\r\n\
    a=rtpmap:127 rtx/90000\r\n\
    a=rtpmap:97 H264/90000\r\n\
    a=rtpmap:98 rtx/90000\r\n\
    a=rtpmap:123 ulpfec/90000\r\n\
    a=rtpmap:122 red/90000\r\n\
    a=rtpmap:119 rtx/90000\r\n\
    a=setup:actpass\r\n\
    a=ssrc:2399482156 cname:{4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8}\r\n";

/// OctoPrint's offer, from Chromium, sent once gathering is complete:
/// video and audio, both `recvonly`, the candidates in the SDP.
pub const OCTOPRINT_CHROMIUM_OFFER: &str = "v=0\r\n\
    o=- 1690001234567890123 2 IN IP4 127.0.0.1\r\n\
    s=-\r\n\
    t=0 0\r\n\
    a=group:BUNDLE 0 1\r\n\
    a=extmap-allow-mixed\r\n\
    a=msid-semantic: WMS\r\n\
    m=video 56143 UDP/TLS/RTP/SAVPF 96 97 102 103 106 107\r\n\
    c=IN IP4 192.168.1.20\r\n\
    a=rtcp:9 IN IP4 0.0.0.0\r\n\
    a=candidate:3037413245 1 udp 2122260223 192.168.1.20 56143 typ host generation 0 network-id 1 network-cost 10\r\n\
    a=candidate:4137209477 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active generation 0 network-id 1 network-cost 10\r\n\
    a=end-of-candidates\r\n\
    a=ice-ufrag:Hk8f\r\n\
    a=ice-pwd:6QmI3bWq0kX2rYpZ1vT9sN4c\r\n\
    a=ice-options:trickle\r\n\
    a=fingerprint:sha-256 A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90:A1:B2:C3:D4:E5:F6:07:18:29:3A:4B:5C:6D:7E:8F:90\r\n\
    a=setup:actpass\r\n\
    a=mid:0\r\n\
    a=recvonly\r\n\
    a=rtcp-mux\r\n\
    a=rtcp-rsize\r\n\
    a=rtpmap:96 VP8/90000\r\n\
    a=rtpmap:97 rtx/90000\r\n\
    a=fmtp:97 apt=96\r\n\
    a=rtpmap:102 H264/90000\r\n\
    a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
    a=rtpmap:103 rtx/90000\r\n\
    a=fmtp:103 apt=102\r\n\
    a=rtpmap:106 H264/90000\r\n\
    a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
    a=rtpmap:107 rtx/90000\r\n\
    a=fmtp:107 apt=106\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\n\
    c=IN IP4 0.0.0.0\r\n\
    a=rtcp:9 IN IP4 0.0.0.0\r\n\
    a=ice-ufrag:Hk8f\r\n\
    a=ice-pwd:6QmI3bWq0kX2rYpZ1vT9sN4c\r\n\
    a=ice-options:trickle\r\n\
    a=setup:actpass\r\n\
    a=mid:1\r\n\
    a=recvonly\r\n\
    a=rtcp-mux\r\n\
    a=rtpmap:111 opus/48000/2\r\n\
    a=fmtp:111 minptime=10;useinbandfec=1\r\n\
    a=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:8 PCMA/8000\r\n";

/// WHEP's trickle example (draft-ietf-wish-whep §4.3.1), as a browser
/// writes it.
pub const WHEP_TRICKLE: &str = "a=ice-ufrag:EsAw\r\n\
    a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r\n\
    m=audio 9 RTP/AVP 0\r\n\
    a=mid:0\r\n\
    a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n\
    a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n\
    a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1\r\n\
    a=candidate:2154773085 1 tcp 1518214911 198.51.100.2 9 typ host tcptype active generation 0 ufrag EsAw network-id 2\r\n\
    a=end-of-candidates\r\n";

/// Fluidd's PATCH for one candidate (video only, mid 0), LF only.
pub const FLUIDD_TRICKLE: &str = "a=ice-ufrag:0Ws4\n\
    a=ice-pwd:ZsyKAdGQ8WQq5/7sDhHOqrUn\n\
    m=video 9 UDP/TLS/RTP/SAVPF 0\n\
    a=mid:0\n\
    a=candidate:2982134577 1 udp 2113937151 3f8e6c2a-5b1d-4c3e-9f2a-7d6b5e4c3b2a.local 54321 typ host generation 0 ufrag 0Ws4 network-cost 999\n";
