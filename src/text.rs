//! Small byte-text helpers shared by the HTTP parser, the load tool and
//! every check of a token (control, HTTP, RTSP).

/// The value of one ASCII hex digit (`0-9`, `a-f`, `A-F`), or `None`.
pub fn hex_digit_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    if expected.len() != given.len() {
        return false;
    }
    expected
        .iter()
        .zip(given)
        .fold(0u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, hex_digit_value};

    #[test]
    fn hex_digits_of_both_cases_and_nothing_else() {
        assert_eq!(hex_digit_value(b'0'), Some(0));
        assert_eq!(hex_digit_value(b'9'), Some(9));
        assert_eq!(hex_digit_value(b'a'), Some(10));
        assert_eq!(hex_digit_value(b'F'), Some(15));
        for byte in [b'g', b'G', b' ', b'/', b':', b'@', b'`', 0xff] {
            assert_eq!(hex_digit_value(byte), None, "{byte:#x}");
        }
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    }
}
