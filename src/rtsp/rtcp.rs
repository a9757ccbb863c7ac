//! RTCP (RFC 3550 §6), sans-IO: the sender reports camloop sends beside
//! its RTP packets, the receiver reports its clients send back, and the
//! walk through a compound packet that reads them.
//!
//! This module owns the bytes of RTCP as camloop speaks it: a sender report
//! (SR) that ties an RTP timestamp to the wall clock, so a client can put
//! the camera's pictures on a timeline (and lip-sync them, were there
//! sound), followed in the same compound packet by the SDES chunk with a
//! CNAME that every compound packet must carry (§6.1). Receivers' report
//! blocks (loss, jitter) are not read: to the server, a client's RTCP only
//! says that the client is still there. When to send a report, and the
//! wall clock its [`ntp_timestamp`] comes from, are the caller's.
//!
//! Over RTSP's interleaved TCP, RTP and RTCP have channels of their own;
//! [`is_rtcp`] still tells them apart by their bytes (RFC 5761 §4), for a
//! client that sends RTCP on the RTP channel, or anything else.

use std::fmt;

/// RTP and RTCP version 2, in the top two bits of the first byte.
const VERSION_BITS: u8 = 2 << 6;
/// The version field of the first byte.
const VERSION_MASK: u8 = 0xC0;
/// The first byte's 5-bit count: report blocks of an SR or RR, chunks of an
/// SDES.
const COUNT_MASK: u8 = 0x1F;

/// Packet type of a sender report (§6.4.1).
pub const SENDER_REPORT: u8 = 200;
/// Packet type of a receiver report (§6.4.2).
pub const RECEIVER_REPORT: u8 = 201;
/// Packet type of source description items (§6.5).
pub const SOURCE_DESCRIPTION: u8 = 202;
/// Packet type of a goodbye (§6.6).
pub const GOODBYE: u8 = 203;

/// SDES item type of the end of a chunk's items.
const SDES_END: u8 = 0;
/// SDES item type of the canonical name (§6.5.1).
const SDES_CNAME: u8 = 1;

/// Longest CNAME: an SDES item's length is one byte.
pub const MAX_CNAME_BYTES: usize = 255;

/// Every RTCP packet's header: first byte, packet type, length.
pub const RTCP_HEADER_BYTES: usize = 4;
/// A sender report without report blocks: header, SSRC, NTP timestamp
/// (8), RTP timestamp, packet count, octet count.
const SENDER_REPORT_BYTES: usize = 28;
/// A receiver report without report blocks: header and SSRC.
const RECEIVER_REPORT_BYTES: usize = 8;

/// Seconds from the NTP epoch (1900-01-01) to the Unix one (1970-01-01):
/// 70 years, 17 of them leap.
const NTP_UNIX_OFFSET_SECS: u64 = (70 * 365 + 17) * 86_400;

/// The 64-bit NTP timestamp (RFC 3550 §4) of a wall-clock time given in
/// microseconds since the Unix epoch: whole seconds since 1900 in the high
/// 32 bits, the fraction of a second in 1/2³² in the low 32. The seconds
/// wrap in 2036 as NTP's own do; receivers use only differences and the
/// middle 32 bits, which do not care.
pub fn ntp_timestamp(unix_us: u64) -> u64 {
    let seconds = unix_us / 1_000_000 + NTP_UNIX_OFFSET_SECS;
    let fraction = ((unix_us % 1_000_000) << 32) / 1_000_000;
    (seconds << 32) | fraction
}

/// What a sender report says about one RTP stream, as written by
/// [`sender_report`] and read by [`parse_compound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// The stream's SSRC ([`super::Packetizer::ssrc`]).
    pub ssrc: u32,
    /// The wall-clock time of the report ([`ntp_timestamp`]).
    pub ntp_timestamp: u64,
    /// The same instant on the stream's RTP clock: the pair is what lets a
    /// receiver map RTP timestamps to wall-clock time.
    pub rtp_timestamp: u32,
    /// RTP packets sent so far ([`super::Packetizer::packet_count`]).
    pub packet_count: u32,
    /// RTP payload bytes sent so far ([`super::Packetizer::octet_count`]).
    pub octet_count: u32,
}

/// A compound packet of a sender report (PT 200, no report blocks: camloop
/// receives no RTP) and an SDES with the sender's CNAME. `cname` is cut to
/// [`MAX_CNAME_BYTES`], at a character boundary.
///
/// ```
/// use camloop::rtsp::rtcp::{ntp_timestamp, parse_compound, sender_report};
/// use camloop::rtsp::rtcp::{RtcpPacket, SenderInfo};
///
/// let info = SenderInfo {
///     ssrc: 0x1234,
///     ntp_timestamp: ntp_timestamp(1_700_000_000_000_000),
///     rtp_timestamp: 90_000,
///     packet_count: 10,
///     octet_count: 12_000,
/// };
/// let packet = sender_report(&info, "camloop@door");
/// assert_eq!(packet.len() % 4, 0);
/// assert_eq!(parse_compound(&packet).unwrap()[0], RtcpPacket::SenderReport(info));
/// ```
pub fn sender_report(info: &SenderInfo, cname: &str) -> Vec<u8> {
    let mut packet = Vec::with_capacity(SENDER_REPORT_BYTES + 12 + cname.len());
    push_header(&mut packet, 0, SENDER_REPORT, SENDER_REPORT_BYTES);
    packet.extend_from_slice(&info.ssrc.to_be_bytes());
    packet.extend_from_slice(&info.ntp_timestamp.to_be_bytes());
    packet.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    packet.extend_from_slice(&info.packet_count.to_be_bytes());
    packet.extend_from_slice(&info.octet_count.to_be_bytes());
    push_cname(&mut packet, info.ssrc, cname);
    packet
}

/// A compound packet of an empty receiver report (PT 201, no report
/// blocks) and an SDES with `cname`: what a client that reports no
/// reception statistics sends, for the load tool and the tests.
pub fn receiver_report(ssrc: u32, cname: &str) -> Vec<u8> {
    let mut packet = Vec::with_capacity(RECEIVER_REPORT_BYTES + 12 + cname.len());
    push_header(&mut packet, 0, RECEIVER_REPORT, RECEIVER_REPORT_BYTES);
    packet.extend_from_slice(&ssrc.to_be_bytes());
    push_cname(&mut packet, ssrc, cname);
    packet
}

/// The header of a packet `total_bytes` long (a multiple of 4): its length
/// field counts 32-bit words minus one, so that zero is a header alone.
fn push_header(packet: &mut Vec<u8>, count: u8, packet_type: u8, total_bytes: usize) {
    debug_assert!(total_bytes % 4 == 0 && count <= COUNT_MASK);
    // The packets written here are at most a few hundred bytes.
    let words = (total_bytes / 4 - 1) as u16;
    packet.push(VERSION_BITS | count);
    packet.push(packet_type);
    packet.extend_from_slice(&words.to_be_bytes());
}

/// An SDES packet with one chunk: `ssrc`, a CNAME item, then the END item
/// and the zeros up to the next 32-bit boundary (§6.5: at least one zero
/// ends the items, so a chunk that would end on a boundary gets four).
fn push_cname(packet: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let mut end = cname.len().min(MAX_CNAME_BYTES);
    while !cname.is_char_boundary(end) {
        end -= 1;
    }
    let cname = &cname.as_bytes()[..end];
    // SSRC, item type and length, the name, then one END byte at least.
    let items_bytes = 4 + 2 + cname.len() + 1;
    let chunk_bytes = items_bytes.next_multiple_of(4);
    push_header(
        packet,
        1,
        SOURCE_DESCRIPTION,
        RTCP_HEADER_BYTES + chunk_bytes,
    );
    packet.extend_from_slice(&ssrc.to_be_bytes());
    // `end` is at most 255.
    packet.extend_from_slice(&[SDES_CNAME, end as u8]);
    packet.extend_from_slice(cname);
    packet.resize(packet.len() + chunk_bytes - items_bytes + 1, SDES_END);
}

/// One packet of a compound packet, as far as camloop reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket {
    /// A sender report's sender info; its report blocks are not read.
    SenderReport(SenderInfo),
    /// A receiver report's sender; its report blocks are not read.
    ReceiverReport {
        /// The SSRC of the receiver that sent it.
        ssrc: u32,
    },
    /// Any other packet: SDES, BYE, APP, feedback (RFC 4585).
    Other {
        /// Its packet type.
        packet_type: u8,
    },
}

/// Why bytes are not a compound RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpError {
    /// No packet at all, or bytes after the last packet too few for a
    /// header.
    Truncated,
    /// A version other than 2: not RTCP as RFC 3550 defines it.
    Version(u8),
    /// A packet whose length runs past the end of the bytes.
    PastEnd,
    /// A sender or receiver report too short for its fixed part.
    ShortReport(u8),
}

impl fmt::Display for RtcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtcpError::Truncated => write!(f, "RTCP cut short"),
            RtcpError::Version(version) => write!(f, "RTCP version {version}, not 2"),
            RtcpError::PastEnd => write!(f, "an RTCP length past the end of the packet"),
            RtcpError::ShortReport(packet_type) => {
                write!(f, "an RTCP report (type {packet_type}) too short")
            }
        }
    }
}

impl std::error::Error for RtcpError {}

/// The packets of a compound packet, walked by their length fields. Every
/// packet must be version 2 and lie whole within `bytes`; an SR or RR must
/// be long enough for its fixed part. Padding needs no reading: a packet's
/// length covers it. Empty bytes are [`RtcpError::Truncated`].
pub fn parse_compound(bytes: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if bytes.is_empty() {
        return Err(RtcpError::Truncated);
    }
    let mut packets = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(&[first, packet_type, length_high, length_low]) = rest.get(..RTCP_HEADER_BYTES)
        else {
            return Err(RtcpError::Truncated);
        };
        if first & VERSION_MASK != VERSION_BITS {
            return Err(RtcpError::Version(first >> 6));
        }
        let total_bytes = 4 * (usize::from(u16::from_be_bytes([length_high, length_low])) + 1);
        let packet = rest.get(..total_bytes).ok_or(RtcpError::PastEnd)?;
        rest = &rest[total_bytes..];
        let word = |at: usize| {
            u32::from_be_bytes([packet[at], packet[at + 1], packet[at + 2], packet[at + 3]])
        };
        packets.push(match packet_type {
            SENDER_REPORT if total_bytes < SENDER_REPORT_BYTES => {
                return Err(RtcpError::ShortReport(packet_type))
            }
            SENDER_REPORT => RtcpPacket::SenderReport(SenderInfo {
                ssrc: word(4),
                ntp_timestamp: u64::from(word(8)) << 32 | u64::from(word(12)),
                rtp_timestamp: word(16),
                packet_count: word(20),
                octet_count: word(24),
            }),
            RECEIVER_REPORT if total_bytes < RECEIVER_REPORT_BYTES => {
                return Err(RtcpError::ShortReport(packet_type))
            }
            RECEIVER_REPORT => RtcpPacket::ReceiverReport { ssrc: word(4) },
            _ => RtcpPacket::Other { packet_type },
        });
    }
    Ok(packets)
}

/// Whether `packet` is RTCP rather than RTP, by RFC 5761 §4's rule: version
/// 2 and a second byte of 192 to 223. RTCP's packet types 192-223 (SR, RR,
/// SDES, BYE, APP, feedback among them) are what RTP's marker bit and
/// payload types 64-95 would make, and RTP never uses those payload types.
pub fn is_rtcp(packet: &[u8]) -> bool {
    matches!(packet, [first, second, ..]
        if first & VERSION_MASK == VERSION_BITS && (192..=223).contains(second))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// 2001-09-09 01:46:40.5 UTC, a billion seconds and a half after 1970.
    const UNIX_US: u64 = 1_000_000_000_500_000;

    const INFO: SenderInfo = SenderInfo {
        ssrc: 1,
        ntp_timestamp: 2,
        rtp_timestamp: 3,
        packet_count: 4,
        octet_count: 5,
    };

    #[test]
    fn ntp_timestamps_count_from_1900_in_1_2_32_of_a_second() {
        // The Unix epoch in NTP (RFC 868's 2208988800).
        assert_eq!(ntp_timestamp(0), 2_208_988_800 << 32);
        assert_eq!(ntp_timestamp(0) >> 32, 0x83AA_7E80);
        assert_eq!(ntp_timestamp(UNIX_US), (3_208_988_800 << 32) | 0x8000_0000);
        assert_eq!(ntp_timestamp(250_000) & 0xFFFF_FFFF, 0x4000_0000);
        // One microsecond is 4294.97 units of 1/2³²: rounded down.
        assert_eq!(ntp_timestamp(1) & 0xFFFF_FFFF, 4294);
        assert_eq!(ntp_timestamp(999_999) & 0xFFFF_FFFF, 0xFFFF_EF39);
    }

    #[test]
    fn a_sender_report_byte_by_byte() {
        let info = SenderInfo {
            ssrc: 0x1122_3344,
            ntp_timestamp: ntp_timestamp(UNIX_US),
            rtp_timestamp: 0xDEAD_BEEF,
            packet_count: 3,
            octet_count: 1000,
        };
        #[rustfmt::skip]
        let expected = [
            // SR: V=2, RC=0, PT=200, length 6 (28 bytes).
            0x80, 200, 0, 6,
            0x11, 0x22, 0x33, 0x44, // SSRC
            0xBF, 0x45, 0x48, 0x80, // NTP seconds: 3208988800
            0x80, 0x00, 0x00, 0x00, // NTP fraction: one half
            0xDE, 0xAD, 0xBE, 0xEF, // RTP timestamp
            0, 0, 0, 3,             // packets
            0, 0, 0x03, 0xE8,       // octets: 1000
            // SDES: V=2, SC=1, PT=202, length 3 (16 bytes).
            0x81, 202, 0, 3,
            0x11, 0x22, 0x33, 0x44, // SSRC
            1, 3, b'c', b'a', b'm', // CNAME, 3 bytes
            0, 0, 0,                // END, then zeros to the boundary
        ];
        assert_eq!(sender_report(&info, "cam"), expected);
    }

    #[test]
    fn a_receiver_report_and_the_zeros_after_a_cname() {
        #[rustfmt::skip]
        let expected = [
            0x80, 201, 0, 1, 0, 0, 0, 7,
            // 4 + 2 + 2 bytes end on a boundary: four zeros after them.
            0x81, 202, 0, 3, 0, 0, 0, 7, 1, 2, b'a', b'b', 0, 0, 0, 0,
        ];
        assert_eq!(receiver_report(7, "ab"), expected);
        assert_eq!(
            parse_compound(&expected),
            Ok(vec![
                RtcpPacket::ReceiverReport { ssrc: 7 },
                RtcpPacket::Other {
                    packet_type: SOURCE_DESCRIPTION
                }
            ])
        );
    }

    #[test]
    fn a_long_cname_is_cut_at_a_character_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let packet = receiver_report(1, &long);
        let sdes = &packet[RECEIVER_REPORT_BYTES..];
        assert_eq!(sdes[9], 254, "127 two-byte characters");
        assert_eq!(&sdes[10..10 + 254], &long.as_bytes()[..254]);
        let ascii = "x".repeat(300);
        assert_eq!(receiver_report(1, &ascii)[RECEIVER_REPORT_BYTES + 9], 255);
    }

    /// An RR with one report block (24 bytes the parser steps over) and an
    /// SDES, as a client that has received packets sends them.
    #[test]
    fn a_receiver_report_with_a_report_block() {
        #[rustfmt::skip]
        let bytes = [
            0x81, 201, 0, 7, 0xAA, 0xBB, 0xCC, 0xDD,
            0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0,
            0x81, 202, 0, 2, 0xAA, 0xBB, 0xCC, 0xDD, 1, 1, b'x', 0,
        ];
        assert_eq!(
            parse_compound(&bytes),
            Ok(vec![
                RtcpPacket::ReceiverReport { ssrc: 0xAABB_CCDD },
                RtcpPacket::Other {
                    packet_type: SOURCE_DESCRIPTION
                }
            ])
        );
    }

    #[test]
    fn what_is_not_a_compound_packet() {
        let report = receiver_report(7, "ab");
        assert_eq!(parse_compound(&[]), Err(RtcpError::Truncated));
        assert_eq!(
            parse_compound(&report[..report.len() - 1]),
            Err(RtcpError::PastEnd)
        );
        let mut trailing = report.clone();
        trailing.extend_from_slice(&[0x80, 203]);
        assert_eq!(parse_compound(&trailing), Err(RtcpError::Truncated));
        let mut version_1 = report.clone();
        version_1[RECEIVER_REPORT_BYTES] = 0x41;
        assert_eq!(parse_compound(&version_1), Err(RtcpError::Version(1)));
        // An SR whose length says 24 bytes, and an RR with no room for its
        // SSRC.
        let mut short_sr = sender_report(&INFO, "");
        short_sr[3] = 5;
        assert_eq!(
            parse_compound(&short_sr[..24]),
            Err(RtcpError::ShortReport(SENDER_REPORT))
        );
        assert_eq!(
            parse_compound(&[0x80, 201, 0, 0]),
            Err(RtcpError::ShortReport(RECEIVER_REPORT))
        );
        // A BYE alone is a packet of its own kind.
        assert_eq!(
            parse_compound(&[0x81, 203, 0, 1, 0, 0, 0, 7]),
            Ok(vec![RtcpPacket::Other {
                packet_type: GOODBYE
            }])
        );
    }

    #[test]
    fn rtcp_is_told_from_rtp_by_its_second_byte() {
        let sr = sender_report(&INFO, "cam");
        assert!(is_rtcp(&sr));
        assert!(is_rtcp(&receiver_report(1, "")));
        assert!(is_rtcp(&[0x80, 192]) && is_rtcp(&[0x80, 223]));
        // RTP with payload type 96, with and without the marker bit.
        assert!(!is_rtcp(&[0x80, 96, 0, 1]) && !is_rtcp(&[0x80, 0x80 | 96, 0, 1]));
        assert!(!is_rtcp(&[0x80, 191]) && !is_rtcp(&[0x80, 224]));
        // Version 1, and too short to say.
        assert!(!is_rtcp(&[0x40, 200, 0, 6]));
        assert!(!is_rtcp(&[0x80]) && !is_rtcp(&[]));
    }

    proptest! {
        #[test]
        fn a_sender_report_reads_back(
            ssrc in any::<u32>(),
            ntp_timestamp in any::<u64>(),
            rtp_timestamp in any::<u32>(),
            packet_count in any::<u32>(),
            octet_count in any::<u32>(),
            cname in ".{0,300}",
        ) {
            let info = SenderInfo { ssrc, ntp_timestamp, rtp_timestamp, packet_count, octet_count };
            let packet = sender_report(&info, &cname);
            prop_assert_eq!(packet.len() % 4, 0);
            prop_assert!(is_rtcp(&packet));
            prop_assert_eq!(
                parse_compound(&packet),
                Ok(vec![
                    RtcpPacket::SenderReport(info),
                    RtcpPacket::Other { packet_type: SOURCE_DESCRIPTION },
                ])
            );
            // The CNAME is there, cut to at most 255 bytes, then zeros.
            let sdes = &packet[SENDER_REPORT_BYTES..];
            let cname_bytes = usize::from(sdes[9]);
            prop_assert!(cname.as_bytes().starts_with(&sdes[10..10 + cname_bytes]));
            // Cut at most 3 bytes short of the limit, back to a character.
            prop_assert!(cname_bytes <= MAX_CNAME_BYTES);
            prop_assert!(cname_bytes + 3 >= cname.len().min(MAX_CNAME_BYTES));
            prop_assert!(sdes[10 + cname_bytes..].iter().all(|&b| b == 0));
            prop_assert!(sdes.len() - 10 - cname_bytes >= 1);
        }

        #[test]
        fn any_bytes_are_read_without_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(packets) = parse_compound(&bytes) {
                prop_assert!(!packets.is_empty());
            }
            let _ = is_rtcp(&bytes);
        }
    }
}
