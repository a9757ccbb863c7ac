//! RTP packets of H.264 (RFC 6184): one access unit in, the packets that
//! carry it out.
//!
//! This module owns the RTP fixed header (RFC 3550 §5.1), the choice between
//! a single NAL unit packet and FU-A fragments (RFC 6184 §5.6, §5.8), the
//! marker bit, the sequence numbers of one stream and the 90 kHz clock. It
//! never touches a socket or reads a clock: the caller gives the AU, its RTP
//! timestamp ([`rtp_timestamp`] from the AU's monotonic time) and a place for
//! the packets. Each AU is packetised once per camera and the packets are
//! shared by every viewer; what differs per viewer (the `$` interleave
//! header with its channel) is added when writing.
//!
//! Packetisation mode 1 (non-interleaved) is what the SDP announces: NAL
//! units go out in decoding order, each either whole or as FU-A fragments.
//! STAP-A aggregation is not used, so SPS and PPS each take a small packet of
//! their own; clients accept that and it keeps one rule per NAL unit.

use std::time::Instant;

use crate::h264::nal::nal_units;

/// Default largest RTP payload, in bytes: under a 1500-byte Ethernet MTU
/// with room for IP (20), UDP (8), RTP (12) and tunnels, the value
/// GStreamer and live555 use too.
pub const DEFAULT_RTP_MTU_BYTES: usize = 1400;

/// Smallest `max_payload_bytes` a [`Packetizer`] accepts: an FU-A fragment
/// needs two bytes (FU indicator and FU header) plus at least one byte of
/// its NAL unit.
pub const MIN_RTP_MTU_BYTES: usize = 3;

/// Length of the RTP fixed header without CSRCs or extensions, which
/// camloop never sends.
pub const RTP_HEADER_BYTES: usize = 12;

/// The RTP clock rate of video (RFC 6184 §8.2.1): 90 kHz.
pub const RTP_CLOCK_HZ: u64 = 90_000;

/// The payload type camloop announces for H.264: the first dynamic one
/// (RFC 3551 §6), bound to `H264/90000` by the SDP's `a=rtpmap`.
pub const DYNAMIC_PAYLOAD_TYPE: u8 = 96;

// The bits of the fixed header and of FU-A, shared with the receiving side
// ([`super::depacketize`]) so that both read one definition.

/// RTP version 2, in the top two bits of the first header byte.
pub(crate) const RTP_VERSION_BITS: u8 = 2 << 6;
/// The version field of the first header byte.
pub(crate) const VERSION_MASK: u8 = 0xC0;
/// First header byte: padding octets end the packet, the last one counting
/// them.
pub(crate) const PADDING_BIT: u8 = 0x20;
/// First header byte: a header extension follows the CSRCs.
pub(crate) const EXTENSION_BIT: u8 = 0x10;
/// First header byte: how many CSRCs follow the fixed header.
pub(crate) const CSRC_COUNT_MASK: u8 = 0x0F;
/// The marker bit of the second header byte: the AU's last packet.
pub(crate) const MARKER_BIT: u8 = 0x80;
/// The payload type, the rest of the second header byte.
pub(crate) const PAYLOAD_TYPE_MASK: u8 = 0x7F;
/// The NAL unit type RFC 6184 gives FU-A fragments (§5.8).
pub const FU_A: u8 = 28;
/// FU header bit: the first fragment of a NAL unit.
pub(crate) const FU_START_BIT: u8 = 0x80;
/// FU header bit: the last fragment of a NAL unit.
pub(crate) const FU_END_BIT: u8 = 0x40;
/// `forbidden_zero_bit` and `nal_ref_idc` of a NAL unit header, which the FU
/// indicator keeps (§5.8).
pub(crate) const F_NRI_MASK: u8 = 0xE0;
/// `nal_unit_type` of a NAL unit header, which the FU header keeps.
pub(crate) const TYPE_MASK: u8 = 0x1F;

/// The packetiser of one RTP stream (one camera): its SSRC, payload type,
/// size limit, and the sequence number of the next packet.
#[derive(Debug, Clone)]
pub struct Packetizer {
    ssrc: u32,
    payload_type: u8,
    max_payload_bytes: usize,
    next_seq: u16,
    packet_count: u32,
    octet_count: u32,
}

impl Packetizer {
    /// A stream whose first packet will have sequence number `first_seq`
    /// (RFC 3550 wants it random, like `ssrc`; the caller draws both).
    /// Payloads are at most `max_payload_bytes`, the RTP header not counted.
    ///
    /// # Panics
    ///
    /// If `max_payload_bytes` is under [`MIN_RTP_MTU_BYTES`] or
    /// `payload_type` does not fit RTP's 7 bits: the flag parser refuses
    /// such values, so getting one here is a bug.
    pub fn new(ssrc: u32, payload_type: u8, max_payload_bytes: usize, first_seq: u16) -> Self {
        assert!(
            max_payload_bytes >= MIN_RTP_MTU_BYTES,
            "RTP payloads of {max_payload_bytes} bytes cannot carry an FU-A fragment"
        );
        assert!(payload_type < 128, "RTP payload types have 7 bits");
        Packetizer {
            ssrc,
            payload_type,
            max_payload_bytes,
            next_seq: first_seq,
            packet_count: 0,
            octet_count: 0,
        }
    }

    /// The SSRC of every packet, for the `Transport` reply and RTCP.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will have: `RTP-Info`'s `seq`.
    pub fn next_sequence_number(&self) -> u16 {
        self.next_seq
    }

    /// Packets made so far, wrapping like RTCP's sender packet count.
    pub fn packet_count(&self) -> u32 {
        self.packet_count
    }

    /// Payload bytes made so far (RTP headers not counted), wrapping like
    /// RTCP's sender octet count (RFC 3550 §6.4.1).
    pub fn octet_count(&self) -> u32 {
        self.octet_count
    }

    /// Appends to `out` the packets of one access unit: `au` in Annex-B form
    /// ([`crate::h264::AccessUnit::data`]), all stamped `rtp_timestamp`. A
    /// NAL unit of at most `max_payload_bytes` goes whole in one packet,
    /// a longer one in FU-A fragments; the AU's last packet has the marker
    /// bit. An AU without NAL units gives no packet. Returns how many
    /// packets were appended.
    pub fn packetize(&mut self, au: &[u8], rtp_timestamp: u32, out: &mut Vec<Vec<u8>>) -> usize {
        let first = out.len();
        for nal in nal_units(au) {
            if nal.len() <= self.max_payload_bytes {
                out.push(self.packet(rtp_timestamp, &[], nal));
                continue;
            }
            let header = nal[0];
            let fu_indicator = (header & F_NRI_MASK) | FU_A;
            let mut fragments = nal[1..].chunks(self.max_payload_bytes - 2).peekable();
            let mut start = FU_START_BIT;
            while let Some(fragment) = fragments.next() {
                let end = if fragments.peek().is_none() {
                    FU_END_BIT
                } else {
                    0
                };
                let fu_header = start | end | (header & TYPE_MASK);
                out.push(self.packet(rtp_timestamp, &[fu_indicator, fu_header], fragment));
                start = 0;
            }
        }
        if let Some(last) = out[first..].last_mut() {
            last[1] |= MARKER_BIT;
        }
        out.len() - first
    }

    /// One packet without the marker bit: header, `prefix`, `payload`.
    fn packet(&mut self, rtp_timestamp: u32, prefix: &[u8], payload: &[u8]) -> Vec<u8> {
        let payload_bytes = prefix.len() + payload.len();
        let mut packet = Vec::with_capacity(RTP_HEADER_BYTES + payload_bytes);
        // V=2, no padding, no extension, no CSRC.
        packet.push(RTP_VERSION_BITS);
        packet.push(self.payload_type);
        packet.extend_from_slice(&self.next_seq.to_be_bytes());
        packet.extend_from_slice(&rtp_timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(prefix);
        packet.extend_from_slice(payload);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.packet_count = self.packet_count.wrapping_add(1);
        // A payload is at most a NAL unit, far under 4 GiB; the count wraps
        // as RTCP's does.
        self.octet_count = self.octet_count.wrapping_add(payload_bytes as u32);
        packet
    }
}

/// The RTP timestamp of instant `at` on a 90 kHz clock that reads `base` at
/// `start`, wrapping at 2³². Monotonic time only: the wall clock may jump
/// (NTP, or a Pi without an RTC setting its date after boot), and a jump
/// back would make timestamps go backwards. An `at` before `start` gives
/// `base`.
pub fn rtp_timestamp(start: Instant, base: u32, at: Instant) -> u32 {
    let elapsed_ns = at.saturating_duration_since(start).as_nanos();
    let ticks = elapsed_ns * u128::from(RTP_CLOCK_HZ) / 1_000_000_000;
    // Keeping the low 32 bits is the wrap RTP timestamps are made for.
    base.wrapping_add(ticks as u32)
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::h264::nal::START_CODE;
    use crate::rtsp::depacketize::{parse_rtp, Depacketizer, RtpHeader};

    /// One packet's header, read back; camloop sends the fixed header only.
    fn header(packet: &[u8]) -> RtpHeader {
        assert_eq!(packet[0], 0x80, "V=2, P=0, X=0, CC=0");
        parse_rtp(packet).expect("an RTP packet").0
    }

    /// A receiver's view: the AU the packets carry, checking that they make
    /// one whole AU and nothing else (fragments start, go on and end in
    /// order, the marker is on the last).
    fn depacketize(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut depacketizer = Depacketizer::new();
        let mut aus = Vec::new();
        for packet in packets {
            aus.extend(depacketizer.push(packet));
        }
        assert_eq!(depacketizer.malformed_packets(), 0);
        assert_eq!(aus.len(), 1, "one AU, ended by the last packet");
        aus.remove(0).data
    }

    /// NAL units in Annex-B form, 4-byte start codes, as an AU's data is.
    pub(in crate::rtsp) fn annex_b(nals: &[Vec<u8>]) -> Vec<u8> {
        nals.iter()
            .flat_map(|nal| START_CODE.iter().chain(nal.iter()).copied())
            .collect()
    }

    /// A NAL unit as an encoder writes one: header, then `body` with
    /// emulation prevention bytes wherever `00 00` is followed by a byte of
    /// at most 3, ending in a non-zero byte (the RBSP stop bit).
    pub(in crate::rtsp) fn nal_unit(header: u8, body: &[u8]) -> Vec<u8> {
        let mut nal = vec![header];
        let mut zeros = 0;
        for &byte in body {
            if zeros >= 2 && byte <= 3 {
                nal.push(3);
                zeros = 0;
            }
            nal.push(byte);
            zeros = if byte == 0 { zeros + 1 } else { 0 };
        }
        nal.push(0x80);
        nal
    }

    #[test]
    fn a_small_nal_unit_goes_whole_and_a_large_one_in_fu_a_fragments() {
        let sps = nal_unit(0x67, &[0x42, 0xC0, 0x1F]);
        let idr = nal_unit(0x65, &[0xAB; 20]);
        let au = annex_b(&[sps.clone(), idr.clone()]);
        let mut packetizer = Packetizer::new(0x1234_5678, 96, 10, 7);
        let mut packets = Vec::new();
        assert_eq!(packetizer.packetize(&au, 3000, &mut packets), 4);

        assert_eq!(&packets[0][RTP_HEADER_BYTES..], &sps[..]);
        // 21 bytes after the IDR header, 8 per fragment: 8 + 8 + 5.
        let fragments: Vec<&[u8]> = packets[1..]
            .iter()
            .map(|p| &p[RTP_HEADER_BYTES..])
            .collect();
        // FU indicator: F=0, NRI=3 from 0x65, type 28; FU header S/E + 5.
        assert_eq!(fragments[0][..2], [0x7C, 0x85]);
        assert_eq!(fragments[1][..2], [0x7C, 0x05]);
        assert_eq!(fragments[2][..2], [0x7C, 0x45]);
        assert_eq!(
            fragments.iter().map(|f| f.len()).collect::<Vec<_>>(),
            [10, 10, 7]
        );

        for (i, packet) in packets.iter().enumerate() {
            let header = header(packet);
            assert_eq!(header.sequence_number, 7 + i as u16);
            assert_eq!(header.timestamp, 3000);
            assert_eq!(header.ssrc, 0x1234_5678);
            assert_eq!(header.payload_type, 96);
            assert_eq!(header.marker, i == 3, "marker only on the AU's last packet");
        }
        assert_eq!(depacketize(&packets), au);
        assert_eq!(packetizer.next_sequence_number(), 11);
        assert_eq!(packetizer.packet_count(), 4);
        let payload_bytes: usize = packets.iter().map(|p| p.len() - RTP_HEADER_BYTES).sum();
        assert_eq!(packetizer.octet_count() as usize, payload_bytes);
    }

    #[test]
    fn fu_a_keeps_the_forbidden_bit_and_nal_ref_idc() {
        for header in [0x01, 0x21, 0x41, 0x65, 0xE5] {
            let au = annex_b(&[nal_unit(header, &[0x11; 30])]);
            let mut packets = Vec::new();
            Packetizer::new(1, 96, 8, 0).packetize(&au, 0, &mut packets);
            assert!(packets.len() > 1);
            for packet in &packets {
                assert_eq!(packet[RTP_HEADER_BYTES] & F_NRI_MASK, header & F_NRI_MASK);
                assert_eq!(packet[RTP_HEADER_BYTES] & TYPE_MASK, FU_A);
                let fu_header = packet[RTP_HEADER_BYTES + 1];
                assert_eq!(fu_header & TYPE_MASK, header & TYPE_MASK);
                assert_eq!(fu_header & 0x20, 0, "the FU header's R bit");
            }
            assert_eq!(depacketize(&packets), au);
        }
    }

    #[test]
    fn sequence_numbers_go_on_across_aus_and_wrap() {
        let mut packetizer = Packetizer::new(9, 96, DEFAULT_RTP_MTU_BYTES, 65534);
        let au = annex_b(&[nal_unit(0x41, &[1; 50]), nal_unit(0x41, &[2; 50])]);
        let mut packets = Vec::new();
        packetizer.packetize(&au, 0, &mut packets);
        packetizer.packetize(&au, 3000, &mut packets);
        let seqs: Vec<u16> = packets.iter().map(|p| header(p).sequence_number).collect();
        assert_eq!(seqs, [65534, 65535, 0, 1]);
        let markers: Vec<bool> = packets.iter().map(|p| header(p).marker).collect();
        assert_eq!(markers, [false, true, false, true]);
        assert_eq!(packetizer.next_sequence_number(), 2);
    }

    #[test]
    fn an_au_without_nal_units_gives_no_packet() {
        let mut packetizer = Packetizer::new(9, 96, DEFAULT_RTP_MTU_BYTES, 5);
        let mut packets = Vec::new();
        assert_eq!(packetizer.packetize(&[0, 0, 0, 1], 0, &mut packets), 0);
        assert_eq!(packetizer.packetize(&[], 0, &mut packets), 0);
        assert!(packets.is_empty());
        assert_eq!(packetizer.next_sequence_number(), 5);
    }

    #[test]
    #[should_panic(expected = "cannot carry an FU-A fragment")]
    fn a_payload_limit_too_small_for_fu_a_is_a_bug() {
        Packetizer::new(1, 96, MIN_RTP_MTU_BYTES - 1, 0);
    }

    #[test]
    fn rtp_timestamps_count_90_khz_from_the_base_and_wrap() {
        let start = Instant::now();
        assert_eq!(rtp_timestamp(start, 1000, start), 1000);
        let one_frame = start + Duration::from_nanos(33_366_667); // 1001/30000 s
        assert_eq!(rtp_timestamp(start, 1000, one_frame), 1000 + 3003);
        assert_eq!(
            rtp_timestamp(start, u32::MAX - 10, start + Duration::from_secs(1)),
            90_000 - 11
        );
        // 2³² ticks at 90 kHz is about 13.25 hours: the clock wraps, it does
        // not saturate.
        let wrap = Duration::from_secs((1u64 << 32) / RTP_CLOCK_HZ + 1);
        assert_eq!(
            rtp_timestamp(start, 0, start + wrap),
            ((wrap.as_secs() * RTP_CLOCK_HZ) % (1 << 32)) as u32
        );
        // An instant before the start is the start.
        let later = start + Duration::from_secs(5);
        assert_eq!(rtp_timestamp(later, 77, start), 77);
    }

    /// A random NAL unit: a header of type 1 to 23 with any `nal_ref_idc`,
    /// then up to 5000 bytes with plenty of zeros.
    pub(in crate::rtsp) fn any_nal_unit() -> impl Strategy<Value = Vec<u8>> {
        (
            0u8..4,
            1u8..24,
            prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..5000),
        )
            .prop_map(|(nri, nal_type, body)| nal_unit((nri << 5) | nal_type, &body))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_au_round_trips_within_the_payload_limit(
            aus in prop::collection::vec(prop::collection::vec(any_nal_unit(), 1..6), 1..4),
            max_payload_bytes in MIN_RTP_MTU_BYTES..2000,
            first_seq in any::<u16>(),
            ssrc in any::<u32>(),
        ) {
            let mut packetizer = Packetizer::new(ssrc, 96, max_payload_bytes, first_seq);
            let mut seq = first_seq;
            for (i, nals) in aus.iter().enumerate() {
                let au = annex_b(nals);
                // The generator makes what an Annex-B reader gives back.
                prop_assert_eq!(nal_units(&au).map(<[u8]>::to_vec).collect::<Vec<_>>(), nals.clone());
                let timestamp = 3000 * i as u32;
                let mut packets = Vec::new();
                let count = packetizer.packetize(&au, timestamp, &mut packets);
                prop_assert_eq!(count, packets.len());
                for (j, packet) in packets.iter().enumerate() {
                    prop_assert!(packet.len() - RTP_HEADER_BYTES <= max_payload_bytes);
                    let header = header(packet);
                    prop_assert_eq!(header.sequence_number, seq);
                    prop_assert_eq!(header.timestamp, timestamp);
                    prop_assert_eq!(header.ssrc, ssrc);
                    prop_assert_eq!(header.marker, j == packets.len() - 1);
                    seq = seq.wrapping_add(1);
                }
                prop_assert_eq!(depacketize(&packets), au);
            }
            prop_assert_eq!(packetizer.next_sequence_number(), seq);
        }
    }
}
