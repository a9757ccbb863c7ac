//! The receiving side of [`super::rtp`], sans-IO: RTP packets of H.264 in,
//! whole access units out, and a count of what was lost on the way.
//!
//! This module owns reading an RTP header (RFC 3550 §5.1, CSRCs, header
//! extension and padding included) and the three RFC 6184 packet kinds of
//! packetisation mode 1: single NAL unit packets, STAP-A aggregates (which
//! camloop does not send but other servers do) and FU-A fragments. The
//! server receives no RTP; this is for the load tool, which counts what a
//! viewer gets, and for the tests that check what the server sent.
//!
//! An access unit ends with its marker bit, or when the timestamp changes
//! without one (a sender that leaves the marker out). One is handed on only
//! if every packet of it is known to have arrived. After a sequence gap
//! neither the AU in progress nor the one the next packet belongs to can be
//! known whole: the lost packets may be the end of the one or the start of
//! the other (or both, or whole AUs between them). So both are discarded,
//! and the next AU handed on has `follows_gap`, as after a gap in the
//! Annex-B splitter ([`crate::h264::AccessUnit::follows_gap`]). A malformed
//! packet discards its AU the same way.

use std::ops::RangeInclusive;

use super::rtp::{
    CSRC_COUNT_MASK, EXTENSION_BIT, FU_A, FU_END_BIT, FU_START_BIT, F_NRI_MASK, MARKER_BIT,
    PADDING_BIT, PAYLOAD_TYPE_MASK, RTP_HEADER_BYTES, RTP_VERSION_BITS, TYPE_MASK, VERSION_MASK,
};
use crate::h264::nal::{nal_unit_type, IDR_SLICE, START_CODE};
use crate::h264::DEFAULT_MAX_AU_BYTES;

/// The NAL unit type RFC 6184 gives STAP-A aggregation packets (§5.7.1):
/// several NAL units of one timestamp, each after its 16-bit size.
pub const STAP_A: u8 = 24;

/// The types (in a payload's first byte) of a single NAL unit packet:
/// H.264's NAL unit types 1 to 23 (RFC 6184 §5.6). 0 is undefined, 24 to
/// 31 are RTP's own packet kinds.
const SINGLE_NAL_TYPES: RangeInclusive<u8> = 1..=23;

/// Sequence numbers ahead of the expected one by less than this are taken
/// as packets lost; the other half of the 16-bit circle as packets behind
/// (a duplicate, a late one, a sender that started over).
const SEQUENCE_AHEAD_LIMIT: u16 = 0x8000;

/// The fields of an RTP header ([`parse_rtp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// The marker bit: for H.264, the last packet of an access unit.
    pub marker: bool,
    /// The payload type (7 bits).
    pub payload_type: u8,
    /// The packet's sequence number, counting up by one per packet and
    /// wrapping.
    pub sequence_number: u16,
    /// The 90 kHz timestamp of the packet's access unit.
    pub timestamp: u32,
    /// The stream's synchronisation source.
    pub ssrc: u32,
}

/// The header and payload of an RTP packet: the payload starts after the
/// fixed header, the CSRCs and any header extension, and ends before any
/// padding. `None` for a version other than 2, or fields that point past
/// the end of the packet.
pub fn parse_rtp(packet: &[u8]) -> Option<(RtpHeader, &[u8])> {
    let fixed = packet.get(..RTP_HEADER_BYTES)?;
    if fixed[0] & VERSION_MASK != RTP_VERSION_BITS {
        return None;
    }
    let word =
        |at: usize| u32::from_be_bytes([fixed[at], fixed[at + 1], fixed[at + 2], fixed[at + 3]]);
    let header = RtpHeader {
        marker: fixed[1] & MARKER_BIT != 0,
        payload_type: fixed[1] & PAYLOAD_TYPE_MASK,
        sequence_number: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: word(4),
        ssrc: word(8),
    };
    let mut start = RTP_HEADER_BYTES + 4 * usize::from(fixed[0] & CSRC_COUNT_MASK);
    if fixed[0] & EXTENSION_BIT != 0 {
        // 16 bits the profile defines, 16 bits of length in 32-bit words,
        // then the words (§5.3.1).
        let extension = packet.get(start..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([extension[2], extension[3]]));
    }
    let mut end = packet.len();
    if fixed[0] & PADDING_BIT != 0 {
        // The last byte counts the padding, itself included: never zero.
        let padding = usize::from(packet[end - 1]);
        if padding == 0 {
            return None;
        }
        end = end.checked_sub(padding)?;
    }
    Some((header, packet.get(start..end)?))
}

/// One access unit put back together ([`Depacketizer::push`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAu {
    /// The AU in Annex-B form, a 4-byte start code before each NAL unit:
    /// what [`super::Packetizer::packetize`] takes.
    pub data: Vec<u8>,
    /// The RTP timestamp of its packets.
    pub timestamp: u32,
    /// It holds an IDR slice (NAL unit type 5): a decoder can start here.
    pub keyframe: bool,
    /// An AU or part of one was discarded just before this one (a sequence
    /// gap, a malformed packet): the pictures after it may refer to one that
    /// never came, so a decoder waits for the next keyframe.
    pub follows_gap: bool,
}

/// The receiver of one RTP stream of H.264: packets in, in arrival order,
/// whole access units out. Packets are taken as one stream whatever their
/// SSRC and payload type; a caller with several streams keeps one
/// depacketiser each.
///
/// The first packet is taken to start an AU, as it does from any RTSP
/// server after `PLAY`.
///
/// ```
/// use camloop::rtsp::depacketize::Depacketizer;
/// use camloop::rtsp::Packetizer;
///
/// // An SPS and an IDR slice, in Annex-B form.
/// let au = [0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1F, 0, 0, 0, 1, 0x65, 0x88, 0x84];
/// let mut packets = Vec::new();
/// Packetizer::new(0x1234, 96, 1400, 0).packetize(&au, 3000, &mut packets);
///
/// let mut depacketizer = Depacketizer::new();
/// let mut received = Vec::new();
/// for packet in &packets {
///     received.extend(depacketizer.push(packet));
/// }
/// assert_eq!(received.len(), 1);
/// assert_eq!(received[0].data, au);
/// assert!(received[0].keyframe);
/// ```
#[derive(Debug, Default)]
pub struct Depacketizer {
    /// The AU whose packets are coming in, once one of them has.
    current: Option<PartialAu>,
    /// The sequence number the next packet should have.
    expected_sequence_number: Option<u16>,
    /// An AU was discarded since the last one handed on.
    follows_gap: bool,
    /// The AUs a call to `push` completed, at most two.
    ready: Vec<ReceivedAu>,
    lost_packets: u64,
    gaps: u64,
    discarded_aus: u64,
    malformed_packets: u64,
}

/// An access unit whose packets are coming in.
#[derive(Debug)]
struct PartialAu {
    timestamp: u32,
    /// Annex-B bytes so far; emptied once the AU is damaged.
    data: Vec<u8>,
    keyframe: bool,
    /// Inside a NAL unit sent as FU-A fragments: its end has not come yet.
    in_fragment: bool,
    /// A packet of it is lost or malformed, or it grew past
    /// [`DEFAULT_MAX_AU_BYTES`]: it will be discarded.
    damaged: bool,
}

impl Depacketizer {
    /// A receiver that has seen no packet yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next packet in arrival order and returns the AUs it
    /// completed: none, usually; one at a marker bit; two when the packet
    /// both changes the timestamp (ending an AU whose marker the sender
    /// left out) and has the marker bit. Any bytes are taken: what is not
    /// an RTP packet of H.264 is counted as malformed.
    pub fn push(&mut self, packet: &[u8]) -> impl Iterator<Item = ReceivedAu> + '_ {
        self.receive(packet);
        self.ready.drain(..)
    }

    /// Packets known lost: the sum of the gaps in sequence numbers (a
    /// packet whose header cannot be read counts here too, once the next
    /// one shows its number missing).
    pub fn lost_packets(&self) -> u64 {
        self.lost_packets
    }

    /// How many times a packet's sequence number was not the expected one:
    /// packets lost, or a packet behind (duplicated, late, or a sender that
    /// started over), which loses nothing but discards all the same.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Access units discarded: touched by a gap, a malformed packet, a
    /// fragmented NAL unit without its end, or over
    /// [`DEFAULT_MAX_AU_BYTES`].
    pub fn discarded_aus(&self) -> u64 {
        self.discarded_aus
    }

    /// Packets that are not RTP of H.264 mode 1: a header that cannot be
    /// read, an empty payload, an undefined or unsupported packet kind
    /// (STAP-B, MTAP, FU-B, reserved types), an FU-A out of order, a
    /// STAP-A whose sizes do not add up. Packets of an AU already damaged
    /// are not read: after a lost FU-A start, the fragments that follow
    /// are the loss's doing, not the sender's.
    pub fn malformed_packets(&self) -> u64 {
        self.malformed_packets
    }

    fn receive(&mut self, packet: &[u8]) {
        let Some((header, payload)) = parse_rtp(packet) else {
            self.malformed_packets += 1;
            return;
        };
        let gap = match self.expected_sequence_number {
            Some(expected) if expected != header.sequence_number => {
                self.gaps += 1;
                let ahead = header.sequence_number.wrapping_sub(expected);
                if ahead < SEQUENCE_AHEAD_LIMIT {
                    self.lost_packets += u64::from(ahead);
                }
                if let Some(au) = &mut self.current {
                    au.damaged = true;
                }
                true
            }
            _ => false,
        };
        self.expected_sequence_number = Some(header.sequence_number.wrapping_add(1));
        if self
            .current
            .as_ref()
            .is_some_and(|au| au.timestamp != header.timestamp)
        {
            self.finish();
        }
        // After a gap a new AU may have lost its first packets: it starts
        // damaged.
        let au = self.current.get_or_insert_with(|| PartialAu {
            timestamp: header.timestamp,
            data: Vec::new(),
            keyframe: false,
            in_fragment: false,
            damaged: gap,
        });
        if !au.damaged {
            let well_formed = au.add(payload);
            // A marker in the middle of a fragmented NAL unit cuts it short.
            if !well_formed || (header.marker && au.in_fragment) {
                self.malformed_packets += 1;
                au.damaged = true;
            }
            if au.data.len() > DEFAULT_MAX_AU_BYTES {
                au.damaged = true;
            }
            if au.damaged {
                au.data = Vec::new();
            }
        }
        if header.marker {
            self.finish();
        }
    }

    /// Ends the current AU: handed on if whole, discarded if not.
    fn finish(&mut self) {
        let Some(au) = self.current.take() else {
            return;
        };
        if au.damaged || au.in_fragment {
            self.discarded_aus += 1;
            self.follows_gap = true;
            return;
        }
        self.ready.push(ReceivedAu {
            data: au.data,
            timestamp: au.timestamp,
            keyframe: au.keyframe,
            follows_gap: std::mem::take(&mut self.follows_gap),
        });
    }
}

impl PartialAu {
    /// Adds the NAL units (or the fragment of one) of a packet's payload;
    /// false if the payload is malformed.
    fn add(&mut self, payload: &[u8]) -> bool {
        let Some((&first, rest)) = payload.split_first() else {
            return false;
        };
        let kind = nal_unit_type(first);
        // Only an FU-A may come between the fragments of a NAL unit.
        if self.in_fragment && kind != FU_A {
            return false;
        }
        match kind {
            kind if SINGLE_NAL_TYPES.contains(&kind) => {
                self.push_nal_unit(payload);
                true
            }
            STAP_A => self.add_aggregate(rest),
            FU_A => self.add_fragment(first, rest),
            // 0, and STAP-B, MTAP16, MTAP24 and FU-B (interleaved mode
            // only), and 30 and 31 (reserved).
            _ => false,
        }
    }

    /// A whole NAL unit, after a start code.
    fn push_nal_unit(&mut self, nal: &[u8]) {
        self.keyframe |= nal_unit_type(nal[0]) == IDR_SLICE;
        self.data.extend_from_slice(&START_CODE);
        self.data.extend_from_slice(nal);
    }

    /// The NAL units of a STAP-A after its header byte: each a 16-bit size,
    /// then that many bytes, at least one, to the end of the payload.
    fn add_aggregate(&mut self, mut units: &[u8]) -> bool {
        if units.is_empty() {
            return false;
        }
        while let Some((size, rest)) = units.split_first_chunk::<2>() {
            let size = usize::from(u16::from_be_bytes(*size));
            let Some(nal) = rest.get(..size).filter(|nal| !nal.is_empty()) else {
                return false;
            };
            if !SINGLE_NAL_TYPES.contains(&nal_unit_type(nal[0])) {
                return false;
            }
            self.push_nal_unit(nal);
            units = &rest[size..];
        }
        // A single byte left over is not a size.
        units.is_empty()
    }

    /// One FU-A fragment, `fragment` being what follows the FU indicator:
    /// the FU header, then at least one byte of the NAL unit. The start
    /// fragment rebuilds the NAL unit header from the indicator's F and NRI
    /// bits and the FU header's type (RFC 6184 §5.8).
    fn add_fragment(&mut self, indicator: u8, fragment: &[u8]) -> bool {
        let Some((&fu_header, bytes)) = fragment.split_first() else {
            return false;
        };
        let (start, end) = (fu_header & FU_START_BIT != 0, fu_header & FU_END_BIT != 0);
        let nal_type = fu_header & TYPE_MASK;
        if bytes.is_empty() {
            return false;
        }
        if start {
            // A NAL unit in one fragment must go whole instead (§5.8).
            if self.in_fragment || end || !SINGLE_NAL_TYPES.contains(&nal_type) {
                return false;
            }
            self.keyframe |= nal_type == IDR_SLICE;
            self.data.extend_from_slice(&START_CODE);
            self.data.push((indicator & F_NRI_MASK) | nal_type);
        } else if !self.in_fragment {
            // A middle or an end without its start.
            return false;
        }
        self.data.extend_from_slice(bytes);
        self.in_fragment = !end;
        true
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rtsp::rtp::tests::{annex_b, any_nal_unit, nal_unit};
    use crate::rtsp::rtp::{Packetizer, DYNAMIC_PAYLOAD_TYPE, MIN_RTP_MTU_BYTES};

    const SPS: [u8; 4] = [0x67, 0x42, 0xC0, 0x1F];
    const PPS: [u8; 4] = [0x68, 0xCE, 0x3C, 0x80];

    /// The packets of `aus`, one after another 3000 ticks (30 fps) apart.
    fn packets(aus: &[Vec<u8>], max_payload_bytes: usize, first_seq: u16) -> Vec<Vec<u8>> {
        let mut packetizer =
            Packetizer::new(0xCAFE, DYNAMIC_PAYLOAD_TYPE, max_payload_bytes, first_seq);
        let mut packets = Vec::new();
        for (i, au) in aus.iter().enumerate() {
            packetizer.packetize(au, 3000 * i as u32, &mut packets);
        }
        packets
    }

    fn receive(depacketizer: &mut Depacketizer, packets: &[Vec<u8>]) -> Vec<ReceivedAu> {
        let mut received = Vec::new();
        for packet in packets {
            received.extend(depacketizer.push(packet));
        }
        received
    }

    /// An RTP packet with any header bits: `first` is the first byte.
    fn rtp(first: u8, marker: bool, seq: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![first, (u8::from(marker) << 7) | DYNAMIC_PAYLOAD_TYPE];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&0xCAFE_u32.to_be_bytes());
        packet.extend_from_slice(payload);
        packet
    }

    /// Three AUs: an IDR with its parameter sets, a large P (fragmented at
    /// the 100-byte payload limit), a small P.
    fn three_aus() -> Vec<Vec<u8>> {
        vec![
            annex_b(&[SPS.to_vec(), PPS.to_vec(), nal_unit(0x65, &[0xAA; 150])]),
            annex_b(&[nal_unit(0x41, &[0xBB; 250])]),
            annex_b(&[nal_unit(0x41, &[0xCC; 20])]),
        ]
    }

    #[test]
    fn a_header_with_csrcs_an_extension_and_padding() {
        let mut packet = rtp(0x80 | 0x20 | 0x10 | 2, true, 7, 3000, &[]);
        packet.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // two CSRCs
        packet.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // one word
        packet.extend_from_slice(&[0x41, 0xE0]); // the payload
        packet.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let (header, payload) = parse_rtp(&packet).expect("a valid packet");
        assert_eq!(
            header,
            RtpHeader {
                marker: true,
                payload_type: DYNAMIC_PAYLOAD_TYPE,
                sequence_number: 7,
                timestamp: 3000,
                ssrc: 0xCAFE,
            }
        );
        assert_eq!(payload, [0x41, 0xE0]);
        let plain = rtp(0x80, false, 8, 0, &[0x41]);
        assert_eq!(
            parse_rtp(&plain).map(|(h, p)| (h.marker, p)),
            Some((false, &[0x41][..]))
        );
        assert_eq!(parse_rtp(&rtp(0x80, false, 8, 0, &[])).unwrap().1, [0u8; 0]);
    }

    #[test]
    fn headers_that_point_past_the_packet_are_refused() {
        let packet = |first: u8, tail: &[u8]| rtp(first, false, 1, 0, tail);
        for (bad, why) in [
            (packet(0x40, &[0x41]), "version 1"),
            (packet(0x80, &[])[..11].to_vec(), "short of a fixed header"),
            (packet(0x81, &[0x41, 0, 0]), "a CSRC past the end"),
            (
                packet(0x90, &[0xBE, 0xDE, 0]),
                "an extension header past the end",
            ),
            (
                packet(0x90, &[0xBE, 0xDE, 0, 2, 1, 2, 3, 4]),
                "extension words past the end",
            ),
            (packet(0xA0, &[0x41, 0]), "zero padding"),
            (packet(0xA0, &[0x41, 3]), "padding past the payload"),
            (packet(0xA0, &[]), "padding counted in the header"),
        ] {
            assert_eq!(parse_rtp(&bad), None, "{why}");
        }
        // Padding that takes the whole payload leaves an empty one.
        assert_eq!(parse_rtp(&packet(0xA0, &[0, 2])).unwrap().1, [0u8; 0]);
    }

    #[test]
    fn single_nal_units_and_fu_a_fragments_come_back_as_sent() {
        let aus = three_aus();
        let packets = packets(&aus, 100, 65534);
        assert!(packets.len() > 6, "the large P is fragmented");
        let mut depacketizer = Depacketizer::new();
        let received = receive(&mut depacketizer, &packets);
        assert_eq!(received.len(), 3);
        for (i, au) in received.iter().enumerate() {
            assert_eq!(au.data, aus[i]);
            assert_eq!(au.timestamp, 3000 * i as u32);
            assert_eq!(au.keyframe, i == 0);
            assert!(!au.follows_gap);
        }
        assert_eq!(
            (
                depacketizer.lost_packets(),
                depacketizer.gaps(),
                depacketizer.discarded_aus(),
                depacketizer.malformed_packets()
            ),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn a_stap_a_gives_its_nal_units() {
        let idr = nal_unit(0x65, &[0xAA; 10]);
        let mut stap = vec![0x78]; // NRI 3, type 24
        for nal in [&SPS[..], &PPS[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        let mut depacketizer = Depacketizer::new();
        assert_eq!(
            depacketizer.push(&rtp(0x80, false, 1, 90, &stap)).count(),
            0
        );
        let au: Vec<ReceivedAu> = depacketizer.push(&rtp(0x80, true, 2, 90, &idr)).collect();
        assert_eq!(
            au,
            [ReceivedAu {
                data: annex_b(&[SPS.to_vec(), PPS.to_vec(), idr]),
                timestamp: 90,
                keyframe: true,
                follows_gap: false,
            }]
        );
    }

    #[test]
    fn a_keyframe_in_a_stap_a_or_a_fragment_is_a_keyframe() {
        let idr = nal_unit(0x65, &[0xAA; 10]);
        let mut stap = vec![0x78];
        stap.extend_from_slice(&(idr.len() as u16).to_be_bytes());
        stap.extend_from_slice(&idr);
        let mut depacketizer = Depacketizer::new();
        let au: Vec<ReceivedAu> = depacketizer.push(&rtp(0x80, true, 1, 0, &stap)).collect();
        assert!(au[0].keyframe);
        let fragmented = packets(&[annex_b(&[idr])], 5, 2);
        let au = receive(&mut depacketizer, &fragmented);
        assert!(au[0].keyframe && fragmented.len() > 1);
        let p = packets(&[annex_b(&[nal_unit(0x41, &[1; 10])])], 5, 0);
        assert!(!receive(&mut Depacketizer::new(), &p)[0].keyframe);
    }

    #[test]
    fn a_timestamp_change_ends_an_au_without_its_marker() {
        let aus = three_aus();
        let mut packets = packets(&aus, 100, 0);
        for packet in &mut packets {
            packet[1] &= !MARKER_BIT;
        }
        let mut depacketizer = Depacketizer::new();
        let received = receive(&mut depacketizer, &packets);
        // The last AU has nothing after it to end it.
        assert_eq!(received.len(), 2);
        assert_eq!((&received[0].data, &received[1].data), (&aus[0], &aus[1]));
        // A one-packet AU with its marker, after one without: both at once.
        let last = rtp(0x80, true, packets.len() as u16, 9000, &[0x41, 1]);
        let both: Vec<ReceivedAu> = depacketizer.push(&last).collect();
        assert_eq!(both.len(), 2);
        assert_eq!((&both[0].data, both[0].timestamp), (&aus[2], 6000));
        assert_eq!(both[1].data, annex_b(&[vec![0x41, 1]]));
        assert_eq!(depacketizer.discarded_aus(), 0);
    }

    #[test]
    fn a_lost_packet_discards_its_au_and_the_next_au_follows_a_gap() {
        let aus = three_aus();
        let all = packets(&aus, 100, 65533);
        // The large P's first fragment (after SPS, PPS and the IDR's two)
        // is lost.
        let fragment = 4;
        assert_eq!(all[fragment][RTP_HEADER_BYTES..][..2], [0x5C, 0x81]);
        let mut lossy = all.clone();
        lossy.remove(fragment);
        let mut depacketizer = Depacketizer::new();
        let received = receive(&mut depacketizer, &lossy);
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].data, aus[0]);
        assert!(!received[0].follows_gap);
        assert_eq!(received[1].data, aus[2]);
        assert!(received[1].follows_gap);
        assert_eq!(depacketizer.lost_packets(), 1);
        assert_eq!(depacketizer.gaps(), 1);
        assert_eq!(depacketizer.discarded_aus(), 1);
        assert_eq!(
            depacketizer.malformed_packets(),
            0,
            "fragments whose start was lost"
        );
    }

    /// Losing an AU's marker packet loses the AU after it too: the packet
    /// after the gap cannot be known to be its AU's first.
    #[test]
    fn a_lost_last_packet_discards_the_next_au_too() {
        let mut aus = three_aus();
        aus.push(annex_b(&[nal_unit(0x41, &[0xDD; 20])]));
        let mut lossy = packets(&aus, 100, 10);
        // SPS, PPS, the IDR's two fragments: the last has the marker.
        assert_ne!(lossy[3][1] & MARKER_BIT, 0);
        lossy.remove(3);
        let mut depacketizer = Depacketizer::new();
        let received = receive(&mut depacketizer, &lossy);
        assert_eq!(received.len(), 2);
        assert_eq!(
            (&received[0].data, received[0].follows_gap),
            (&aus[2], true)
        );
        assert_eq!(
            (&received[1].data, received[1].follows_gap),
            (&aus[3], false)
        );
        assert_eq!(depacketizer.discarded_aus(), 2);
        assert_eq!(depacketizer.lost_packets(), 1);
    }

    #[test]
    fn a_packet_behind_is_a_gap_with_nothing_lost() {
        let aus = three_aus();
        let mut packets = packets(&aus, 100, 0);
        let duplicate = packets[1].clone();
        packets.insert(2, duplicate);
        let mut depacketizer = Depacketizer::new();
        let received = receive(&mut depacketizer, &packets);
        assert_eq!(depacketizer.gaps(), 1);
        assert_eq!(depacketizer.lost_packets(), 0);
        assert_eq!(
            depacketizer.discarded_aus(),
            1,
            "the AU with a packet twice"
        );
        let data: Vec<&Vec<u8>> = received.iter().map(|au| &au.data).collect();
        assert_eq!(data, [&aus[1], &aus[2]]);
        assert!(received[0].follows_gap);
    }

    #[test]
    fn malformed_payloads_are_counted_and_discard_their_au() {
        let fu_a_middle = [0x7C, 0x05, 1, 2];
        let fu_a_end = [0x7C, 0x45, 1, 2];
        let stap_past_end = [0x78, 0, 5, 0x67, 1];
        let stap_zero_size = [0x78, 0, 0];
        let stap_odd_byte = [0x78, 0, 1, 0x67, 0];
        let stap_of_fu_a = [0x78, 0, 2, 0x7C, 1];
        let fu_a_start_and_end = [0x7C, 0xC5, 1];
        let fu_a_empty = [0x7C, 0x85];
        let fu_a_of_fu_a = [0x7C, 0x9C, 1];
        for payload in [
            &[][..],
            &[0x00, 1],
            &[0x79, 1],
            &[0x7A, 1],
            &[0x7B, 1],
            &[0x7D, 0x85, 1],
            &[0x7E, 1],
            &[0x7F, 1],
            &[0x78],
            &fu_a_middle,
            &fu_a_end,
            &stap_past_end,
            &stap_zero_size,
            &stap_odd_byte,
            &stap_of_fu_a,
            &fu_a_start_and_end,
            &fu_a_empty,
            &fu_a_of_fu_a,
        ] {
            let mut depacketizer = Depacketizer::new();
            let good = rtp(0x80, false, 1, 0, &[0x41, 1]);
            assert_eq!(depacketizer.push(&good).count(), 0);
            // Without the marker, which would end a fragmented NAL unit
            // too early: the payload alone must be found malformed.
            let bad = rtp(0x80, false, 2, 0, payload);
            assert_eq!(depacketizer.push(&bad).count(), 0, "{payload:?}");
            assert_eq!(depacketizer.malformed_packets(), 1, "{payload:?}");
            let next: Vec<ReceivedAu> = depacketizer
                .push(&rtp(0x80, true, 3, 3000, &[0x41, 2]))
                .collect();
            assert_eq!(depacketizer.discarded_aus(), 1, "{payload:?}");
            assert!(next[0].follows_gap, "{payload:?}");
        }
    }

    #[test]
    fn a_nal_unit_between_fragments_or_a_marker_inside_one_is_malformed() {
        let start = rtp(0x80, false, 1, 0, &[0x7C, 0x85, 1]);
        let stap_a = [0x78, 0, 1, 0x41];
        for (next, marker) in [
            (&[0x41, 1][..], false),
            (&stap_a, false),
            (&[0x7C, 0x05, 2], true),
        ] {
            let mut depacketizer = Depacketizer::new();
            assert_eq!(depacketizer.push(&start).count(), 0);
            assert_eq!(depacketizer.push(&rtp(0x80, marker, 2, 0, next)).count(), 0);
            assert_eq!(depacketizer.malformed_packets(), 1, "{next:?}");
        }
        // A fragment without its end when the timestamp moves on.
        let mut depacketizer = Depacketizer::new();
        assert_eq!(depacketizer.push(&start).count(), 0);
        let next = rtp(0x80, true, 2, 3000, &[0x41, 1]);
        assert_eq!(depacketizer.push(&next).count(), 1);
        assert_eq!(depacketizer.discarded_aus(), 1);
    }

    #[test]
    fn a_header_that_cannot_be_read_is_malformed_and_its_number_lost() {
        let aus = three_aus();
        let mut packets = packets(&aus, 100, 0);
        packets[1][0] = 0x40; // version 1
        let mut depacketizer = Depacketizer::new();
        let received = receive(&mut depacketizer, &packets);
        assert_eq!(depacketizer.malformed_packets(), 1);
        assert_eq!(depacketizer.lost_packets(), 1);
        assert_eq!(received.len(), 2);
        assert!(received[0].follows_gap);
    }

    #[test]
    fn an_au_over_the_size_cap_is_discarded() {
        let huge = annex_b(&[nal_unit(0x41, &vec![0xEE; DEFAULT_MAX_AU_BYTES])]);
        let small = annex_b(&[nal_unit(0x41, &[1; 10])]);
        let packets = packets(&[huge, small.clone()], 60_000, 0);
        let mut depacketizer = Depacketizer::new();
        let received = receive(&mut depacketizer, &packets);
        assert_eq!(received.len(), 1);
        assert_eq!((&received[0].data, received[0].follows_gap), (&small, true));
        assert_eq!(depacketizer.discarded_aus(), 1);
        assert_eq!(depacketizer.malformed_packets(), 0);
    }

    /// Any packet at all: a valid header half the time, so that payloads
    /// get read, with a payload that starts like an RTP H.264 one.
    fn any_packet() -> impl Strategy<Value = Vec<u8>> {
        let valid = (
            0u8..0x40,
            any::<bool>(),
            0u16..8,
            0u32..3,
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(flags, marker, seq, timestamp, first, mut payload)| {
                payload.insert(0, first);
                rtp(0x80 | flags, marker, seq, timestamp * 3000, &payload)
            });
        prop_oneof![valid, prop::collection::vec(any::<u8>(), 0..60)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_au_round_trips_through_packetize_and_push(
            aus in prop::collection::vec(prop::collection::vec(any_nal_unit(), 1..6), 1..5),
            max_payload_bytes in MIN_RTP_MTU_BYTES..2000,
            first_seq in prop_oneof![any::<u16>(), 65500u16..],
        ) {
            let aus: Vec<Vec<u8>> = aus.iter().map(|nals| annex_b(nals)).collect();
            let mut depacketizer = Depacketizer::new();
            let received = receive(&mut depacketizer, &packets(&aus, max_payload_bytes, first_seq));
            prop_assert_eq!(received.len(), aus.len());
            for (i, (au, sent)) in received.iter().zip(&aus).enumerate() {
                prop_assert_eq!(&au.data, sent);
                prop_assert_eq!(au.timestamp, 3000 * i as u32);
                let idr = crate::h264::nal::nal_units(sent).any(|nal| nal_unit_type(nal[0]) == IDR_SLICE);
                prop_assert_eq!(au.keyframe, idr);
                prop_assert!(!au.follows_gap);
            }
            prop_assert_eq!(depacketizer.gaps() + depacketizer.discarded_aus() + depacketizer.malformed_packets(), 0);
        }

        #[test]
        fn any_packets_are_taken_without_a_panic(packets in prop::collection::vec(any_packet(), 0..30)) {
            let mut depacketizer = Depacketizer::new();
            for au in receive(&mut depacketizer, &packets) {
                prop_assert!(au.data.starts_with(&START_CODE), "{:?}", au.data);
            }
            prop_assert!(depacketizer.gaps() + depacketizer.malformed_packets() <= packets.len() as u64);
        }
    }
}
