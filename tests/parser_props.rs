//! Property tests of the sans-IO control-protocol decoder (issue 3): the
//! requests it yields depend on the bytes and the framing, never on how
//! the bytes were cut into reads (line mode), and each read is one
//! message in raw mode.

use camloop::protocol::{
    parse_command, DecodeError, Decoder, Framing, Request, Terminator, MAX_LINE_BYTES,
    MAX_RAW_MESSAGE_BYTES,
};
use proptest::prelude::*;

/// One line's content (no `\n`): protocol words, free text, arbitrary
/// bytes, and now and then one near or over the length limit.
fn line_content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "ping", "PING", "stats", "c", "capture", "frame", "help", "exit", "quit",
            "", " ", "hello", "auth s3cret", "  ping  ",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        2 => "[ -~]{0,40}".prop_map(String::into_bytes),
        2 => prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..60),
        1 => (MAX_LINE_BYTES - 2..MAX_LINE_BYTES + 3).prop_map(|n| vec![b'y'; n]),
    ]
}

/// A stream of lines, each ending in `\n` or `\r\n`, maybe followed by an
/// unterminated tail.
fn line_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((line_content(), any::<bool>()), 0..40),
        prop::collection::vec(b'a'..=b'z', 0..10),
    )
        .prop_map(|(lines, tail)| {
            let mut stream = Vec::new();
            for (content, crlf) in lines {
                stream.extend(content);
                stream.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
            stream.extend(tail);
            stream
        })
}

/// Cuts `bytes` into reads whose sizes cycle through `sizes`.
fn cut<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut reads = Vec::new();
    let mut rest = bytes;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, after) = rest.split_at((*size).min(rest.len()));
        reads.push(read);
        rest = after;
    }
    reads
}

/// Feeds reads until the decoder refuses one, like the server does.
fn decode(framing: Framing, reads: &[&[u8]]) -> (Vec<Request>, Option<DecodeError>) {
    let mut decoder = Decoder::new(framing);
    let mut requests = Vec::new();
    for read in reads {
        if let Err(error) = decoder.feed(read, &mut requests) {
            return (requests, Some(error));
        }
    }
    (requests, None)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn line_mode_requests_do_not_depend_on_how_reads_split_the_stream(
        stream in line_stream(),
        sizes in prop::collection::vec(1usize..300, 1..20),
    ) {
        let whole = decode(Framing::Line, &[&stream]);
        let split = decode(Framing::Line, &cut(&stream, &sizes));
        prop_assert_eq!(&split, &whole);
        let byte_at_a_time = decode(Framing::Line, &cut(&stream, &[1]));
        prop_assert_eq!(&byte_at_a_time, &whole);
    }

    #[test]
    fn line_mode_gives_one_request_per_line_with_its_terminator(
        lines in prop::collection::vec((line_content(), any::<bool>()), 0..40),
        sizes in prop::collection::vec(1usize..300, 1..20),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (content, crlf) in &lines {
            stream.extend(content);
            stream.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            // A `\r` is dropped only right before the `\n`.
            let (text, terminator) = match (crlf, content.strip_suffix(b"\r")) {
                (true, _) => (&content[..], Terminator::CrLf),
                (false, Some(text)) => (text, Terminator::CrLf),
                (false, None) => (&content[..], Terminator::Lf),
            };
            if text.len() > MAX_LINE_BYTES {
                break; // refused; nothing after it is decoded
            }
            expected.push(Request { command: parse_command(text), terminator });
        }
        let (requests, error) = decode(Framing::Line, &cut(&stream, &sizes));
        prop_assert_eq!(error.is_some(), requests.len() < lines.len());
        prop_assert_eq!(requests, expected);
    }

    #[test]
    fn line_mode_holds_at_most_one_line_between_reads(
        stream in line_stream(),
        sizes in prop::collection::vec(1usize..3000, 1..20),
    ) {
        let mut decoder = Decoder::new(Framing::Line);
        let mut requests = Vec::new();
        for read in cut(&stream, &sizes) {
            if decoder.feed(read, &mut requests).is_err() {
                break;
            }
            prop_assert!(decoder.buffered_bytes() <= MAX_LINE_BYTES + 1);
        }
    }

    #[test]
    fn raw_mode_treats_each_read_as_one_message(
        reads in prop::collection::vec(
            prop::collection::vec(any::<u8>(), 1..=MAX_RAW_MESSAGE_BYTES),
            1..20,
        ),
    ) {
        let mut decoder = Decoder::new(Framing::Raw);
        let mut requests = Vec::new();
        for (i, read) in reads.iter().enumerate() {
            prop_assert_eq!(decoder.max_read_bytes(), Some(MAX_RAW_MESSAGE_BYTES));
            decoder.feed(read, &mut requests).expect("raw mode never refuses input");
            prop_assert_eq!(requests.len(), i + 1);
            prop_assert_eq!(
                &requests[i],
                &Request { command: parse_command(read), terminator: Terminator::Bare }
            );
        }
        prop_assert!(!decoder.is_line_mode());
    }

    #[test]
    fn auto_mode_switches_to_lines_on_the_first_read_with_a_newline(
        raw_reads in prop::collection::vec(
            prop::collection::vec(
                any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
                1..=MAX_RAW_MESSAGE_BYTES,
            ),
            0..5,
        ),
        lines in prop::collection::vec(
            ("[ -~]{0,20}", any::<bool>()),
            1..20,
        ),
        first_extra in 0usize..50,
        sizes in prop::collection::vec(1usize..100, 1..10),
    ) {
        // The line-mode part: the first read after the raw ones contains
        // the first newline (and maybe more); the rest is cut anyhow.
        let mut stream = Vec::new();
        for (text, crlf) in &lines {
            stream.extend_from_slice(text.as_bytes());
            stream.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
        }
        let first_newline = stream.iter().position(|&b| b == b'\n').unwrap();
        let switch_at = (first_newline + 1 + first_extra).min(stream.len());
        let (switching_read, rest) = stream.split_at(switch_at);

        let mut decoder = Decoder::new(Framing::Auto);
        let mut requests = Vec::new();
        for read in &raw_reads {
            prop_assert!(!decoder.is_line_mode());
            prop_assert_eq!(decoder.max_read_bytes(), Some(MAX_RAW_MESSAGE_BYTES));
            decoder.feed(read, &mut requests).unwrap();
        }
        decoder.feed(switching_read, &mut requests).unwrap();
        prop_assert!(decoder.is_line_mode());
        prop_assert_eq!(decoder.max_read_bytes(), None);
        for read in cut(rest, &sizes) {
            decoder.feed(read, &mut requests).unwrap();
        }

        let (raw_part, line_part) = requests.split_at(raw_reads.len());
        for (request, read) in raw_part.iter().zip(&raw_reads) {
            prop_assert_eq!(
                request,
                &Request { command: parse_command(read), terminator: Terminator::Bare }
            );
        }
        let (expected_lines, _) = decode(Framing::Line, &[&stream]);
        prop_assert_eq!(line_part, &expected_lines[..]);
        prop_assert_eq!(line_part.len(), lines.len());
    }
}
