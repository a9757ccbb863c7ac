//! The H.264 Annex-B splitter against real encoder output, with ffprobe as
//! the oracle, cut into reads every way proptest can think of.
//!
//! The clips are encoded by ffmpeg (libx264, and libx265 for the refusal)
//! once per test run, in memory: ffmpeg writes them to its stdout and
//! ffprobe reads them from its stdin. They cover what makes splitting H.264
//! hard: access unit delimiters or none, four slices per picture, parameter
//! sets before every IDR, a size that is not a multiple of 16 (cropping),
//! high profiles, interlacing, B-frames. Without ffmpeg these tests fail,
//! saying so: `scripts/setup.sh test` installs it.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use camloop::h264::nal::{self, nal_unit_type, nal_units};
use camloop::h264::{
    detect_stream, parse_sps, AccessUnit, AnnexBSplitter, ParameterSets, Refusal, SplitterStats,
    StreamKind, DEFAULT_MAX_AU_BYTES,
};
use proptest::prelude::*;

const FFMPEG: &str = "ffmpeg";
const FFPROBE: &str = "ffprobe";

/// An end of stream NAL unit. Appended to a clip it makes the last AU
/// complete: otherwise nothing says it has ended.
const END_OF_STREAM: [u8; 5] = [0, 0, 0, 1, 0x0B];

/// The clips, by name: ffmpeg's arguments after the test source.
fn clip_args(name: &str) -> (&'static str, u32, Vec<&'static str>) {
    // What every x264 clip shares: fast, no B-frames, an IDR every 10
    // frames (so a clip has several GOPs).
    const X264: [&str; 8] = [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        "10",
    ];
    let x264 = |extra: &[&'static str]| [&X264[..], extra].concat();
    match name {
        "plain" => ("320x240", 30, x264(&[])),
        "aud" => ("320x240", 20, x264(&["-x264-params", "aud=1"])),
        // Without sliced-threads, whose slice count follows the cores.
        "slices" => (
            "320x240",
            20,
            x264(&["-x264-params", "slices=4:sliced-threads=0"]),
        ),
        "small" => ("160x120", 12, x264(&[])),
        "720p" => ("1280x720", 4, x264(&[])),
        "1080p" => ("1920x1080", 2, x264(&[])),
        "1278x718" => ("1278x718", 3, x264(&[])),
        "320x180" => ("320x180", 4, x264(&[])),
        "interlaced" => ("320x180", 4, x264(&["-x264-params", "interlaced=1"])),
        // 4:4:4 crops in single pixels: an odd size.
        "444" => (
            "330x250",
            3,
            x264(&["-vf", "format=yuv444p,crop=321:241:0:0"]),
        ),
        "high" => (
            "640x360",
            4,
            vec![
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
                "-profile:v",
                "high",
            ],
        ),
        "bframes" => (
            "320x240",
            10,
            vec![
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-profile:v",
                "high",
                "-bf",
                "2",
            ],
        ),
        "hevc" => (
            "320x240",
            3,
            vec![
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error",
            ],
        ),
        _ => panic!("no clip {name}"),
    }
}

/// A clip's Annex-B bytes, encoded on first use.
fn clip(name: &str) -> &'static [u8] {
    static CLIPS: OnceLock<Mutex<HashMap<String, &'static [u8]>>> = OnceLock::new();
    let clips = CLIPS.get_or_init(Default::default);
    if let Some(bytes) = clips.lock().unwrap().get(name) {
        return bytes;
    }
    let (size, frames, args) = clip_args(name);
    let muxer = if name == "hevc" { "hevc" } else { "h264" };
    let output = Command::new(FFMPEG)
        .args(["-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi"])
        .arg("-i")
        .arg(format!("testsrc2=size={size}:rate=30"))
        .arg("-frames:v")
        .arg(frames.to_string())
        .args(args)
        .args(["-f", muxer, "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs {FFMPEG} with libx264 and libx265 (scripts/setup.sh test installs it): {e}")
        });
    assert!(
        output.status.success() && !output.stdout.is_empty(),
        "ffmpeg could not encode clip {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes: &'static [u8] = Box::leak(output.stdout.into_boxed_slice());
    clips.lock().unwrap().insert(name.to_string(), bytes);
    bytes
}

/// What ffprobe says about an H.264 stream.
#[derive(Debug, Default)]
struct Probe {
    width: u32,
    height: u32,
    level: u8,
    profile: String,
    has_b_frames: u32,
    /// `key_frame` of every frame, in order.
    key_frames: Vec<bool>,
    /// `nb_read_frames`: the frames it decoded (`-count_frames`).
    frames: usize,
}

fn ffprobe(stream: &[u8]) -> Probe {
    let mut child = Command::new(FFPROBE)
        .args(["-v", "error", "-f", "h264", "-count_frames"])
        .args(["-show_entries"])
        .arg("stream=width,height,level,profile,has_b_frames,nb_read_frames:frame=key_frame")
        .args(["-of", "default=noprint_wrappers=1", "-i", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("this test needs {FFPROBE} (scripts/setup.sh test installs it): {e}")
        });
    let mut stdin = child.stdin.take().unwrap();
    let input = stream.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("ffprobe runs");
    writer.join().unwrap().expect("ffprobe reads its stdin");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "ffprobe: {stderr}"
    );
    let mut probe = Probe::default();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let (key, value) = line.split_once('=').unwrap();
        match key {
            "width" => probe.width = value.parse().unwrap(),
            "height" => probe.height = value.parse().unwrap(),
            "level" => probe.level = value.parse().unwrap(),
            "profile" => probe.profile = value.to_string(),
            "has_b_frames" => probe.has_b_frames = value.parse().unwrap(),
            "nb_read_frames" => probe.frames = value.parse().unwrap(),
            "key_frame" => probe.key_frames.push(value == "1"),
            _ => panic!("ffprobe said {line}"),
        }
    }
    probe
}

/// What splitting a stream gave.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    aus: Vec<AccessUnit>,
    /// `parameter_sets()` right after each AU was handed out.
    sets: Vec<Option<ParameterSets>>,
    stats: SplitterStats,
    refusal: Option<Refusal>,
    /// Bytes still held at the end (the stream was not finished).
    buffered: usize,
}

/// Feeds `stream` in reads of the given sizes (repeated as needed), takes
/// AUs out after each read and checks the memory bound.
fn split(stream: &[u8], reads: &[usize], cap: usize) -> Split {
    let mut splitter = AnnexBSplitter::new(cap);
    let mut split = Split {
        aus: Vec::new(),
        sets: Vec::new(),
        stats: SplitterStats::default(),
        refusal: None,
        buffered: 0,
    };
    let mut rest = stream;
    for &size in reads.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, tail) = rest.split_at(size.clamp(1, rest.len()));
        rest = tail;
        splitter.push(read);
        while let Some(au) = splitter.next_au() {
            split.sets.push(splitter.parameter_sets().cloned());
            split.aus.push(au);
        }
        // One unfinished AU under the cap, and the first two bytes of the
        // NAL unit that will tell whether it starts the next one.
        assert!(
            splitter.buffered_bytes() <= cap + 2,
            "{} bytes buffered, cap {cap}",
            splitter.buffered_bytes()
        );
    }
    split.stats = *splitter.stats();
    split.refusal = splitter.refusal();
    split.buffered = splitter.buffered_bytes();
    for au in &split.aus {
        check_au(au, cap);
    }
    split
}

/// What a consumer of the splitter may assume about an AU.
fn check_au(au: &AccessUnit, cap: usize) {
    assert!(au.data.starts_with(&nal::START_CODE));
    assert!(au.data.len() <= cap);
    let types: Vec<u8> = au.nal_units().map(|n| nal_unit_type(n[0])).collect();
    assert_eq!(au.keyframe, types.contains(&nal::IDR_SLICE), "{types:?}");
    // Exactly one picture: one slice that starts at macroblock 0.
    let first_slices = au
        .nal_units()
        .filter(|n| nal::is_vcl(nal_unit_type(n[0])) && n[1] & 0x80 != 0)
        .count();
    assert_eq!(first_slices, 1, "{types:?}");
    // Rebuilt from its NAL units with four-byte start codes, it is itself.
    let rebuilt: Vec<u8> = au
        .nal_units()
        .flat_map(|n| nal::START_CODE.iter().chain(n))
        .copied()
        .collect();
    assert_eq!(rebuilt, au.data);
}

/// `stream` with an end of stream NAL unit after it.
fn ended(stream: &[u8]) -> Vec<u8> {
    [stream, &END_OF_STREAM].concat()
}

/// The NAL units of all `aus`, in order.
fn nals_of(aus: &[AccessUnit]) -> Vec<&[u8]> {
    aus.iter().flat_map(AccessUnit::nal_units).collect()
}

/// The byte offset in `stream` where each NAL unit's start code begins
/// (the leading zero of a four-byte one).
fn start_code_offsets(stream: &[u8]) -> Vec<usize> {
    let mut offsets: Vec<usize> = stream
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .map(|(at, _)| {
            if at > 0 && stream[at - 1] == 0 {
                at - 1
            } else {
                at
            }
        })
        .collect();
    offsets.dedup();
    offsets
}

/// The offsets in `stream` where each AU of `split` begins, found by
/// walking the stream's NAL units alongside the AUs'.
fn au_offsets(stream: &[u8], aus: &[AccessUnit]) -> Vec<usize> {
    let offsets = start_code_offsets(stream);
    let mut next = 0;
    aus.iter()
        .map(|au| {
            let at = offsets[next];
            next += au.nal_units().count();
            at
        })
        .collect()
}

#[test]
fn x264_clips_split_into_the_frames_ffprobe_counts() {
    for name in ["plain", "aud", "slices", "720p", "high", "interlaced"] {
        let stream = clip(name);
        let probe = ffprobe(stream);
        assert!(probe.frames > 1 && probe.key_frames.len() == probe.frames);
        let out = split(&ended(stream), &[4096], DEFAULT_MAX_AU_BYTES);
        assert_eq!(out.aus.len(), probe.frames, "{name}: {:?}", out.stats);
        let keyframes: Vec<bool> = out.aus.iter().map(|au| au.keyframe).collect();
        assert_eq!(keyframes, probe.key_frames, "{name}");
        // Every NAL unit of the clip is in an AU, in order.
        let mut expected: Vec<&[u8]> = nal_units(stream).collect();
        expected.push(&[0x0B]);
        assert_eq!(nals_of(&out.aus), expected, "{name}");
        assert_eq!(out.buffered, 0, "{name}");
        let stats = out.stats;
        assert_eq!(stats.access_units, probe.frames as u64);
        assert_eq!(stats.keyframes, probe.frames.div_ceil(10) as u64);
        assert_eq!(stats.nal_units, expected.len() as u64);
        assert_eq!(
            stats.garbage_bytes
                + stats.oversize_dropped
                + stats.corrupt_dropped
                + stats.sps_errors
                + stats.without_picture,
            0,
            "{name}: {stats:?}"
        );
        assert!(out.aus.iter().all(|au| !au.follows_gap));
        // The AUs, one after another, are the same video.
        let again: Vec<u8> = out.aus.iter().flat_map(|au| au.data.clone()).collect();
        assert_eq!(ffprobe(&again).key_frames, probe.key_frames, "{name}");

        match name {
            // With AUDs, each AU starts with one.
            "aud" => assert!(out
                .aus
                .iter()
                .all(|au| nal_unit_type(au.data[4]) == nal::AUD)),
            // Four slices (and so four VCL NAL units) in each picture.
            "slices" => assert!(out.aus.iter().all(|au| au
                .nal_units()
                .filter(|n| nal::is_vcl(nal_unit_type(n[0])))
                .count()
                == 4)),
            _ => {}
        }
    }
}

#[test]
fn the_last_au_waits_for_the_next_and_finish_drops_it() {
    let stream = clip("plain");
    let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
    splitter.push(stream);
    let aus: Vec<AccessUnit> = std::iter::from_fn(|| splitter.next_au()).collect();
    assert_eq!(aus.len(), ffprobe(stream).frames - 1);
    // The last picture is held: nothing says it is complete.
    let held = splitter.buffered_bytes();
    assert!(held > 0 && held < stream.len() / 10, "{held}");
    splitter.finish();
    assert_eq!(splitter.buffered_bytes(), 0);
    assert_eq!(splitter.stats().truncated_dropped, 1);
}

#[test]
fn picture_sizes_match_ffprobe_cropping_included() {
    for name in [
        "720p",
        "1080p",
        "1278x718",
        "320x180",
        "interlaced",
        "444",
        "high",
    ] {
        let stream = clip(name);
        let probe = ffprobe(stream);
        let out = split(&ended(stream), &[65536], DEFAULT_MAX_AU_BYTES);
        let sets = out.sets[0].as_ref().expect("parameter sets");
        let info = sets.info;
        assert_eq!(
            (info.width, info.height),
            (probe.width, probe.height),
            "{name}"
        );
        assert_eq!(info.level_idc, probe.level, "{name}");
        let profile_idc = match probe.profile.as_str() {
            "Constrained Baseline" | "Baseline" => 66,
            "Main" => 77,
            "High" => 100,
            "High 4:4:4 Predictive" => 244,
            other => panic!("{name}: profile {other}"),
        };
        assert_eq!(info.profile_idc, profile_idc, "{name}");
        assert_eq!(info.max_num_reorder_frames, Some(probe.has_b_frames));
        // The same SPS, parsed on its own.
        let sps = nal_units(stream)
            .find(|n| nal_unit_type(n[0]) == nal::SPS)
            .unwrap();
        assert_eq!(sets.sps, sps);
        assert_eq!(parse_sps(sps), Ok(info));
        assert_eq!(detect_stream(&stream[..8]), StreamKind::H264);
    }
}

/// Reads of random sizes, repeated as needed.
fn reads() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..4, 1usize..64, 1usize..5000], 1..40)
}

/// Garbage that holds no zero byte, so it cannot make a start code.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(1u8..=255, 0..40)
}

/// A stream made from a real clip, damaged in some ways: garbage in front,
/// empty NAL units and three-byte start codes here and there, a few bytes
/// of a corrupt NAL unit after some AU, a cut inside one AU (then the
/// stream starts over).
#[derive(Debug, Clone)]
struct Damage {
    clip: &'static str,
    prefix: Vec<u8>,
    /// Per NAL unit of the clip, in turn: 0 leaves it, 1 gives it a
    /// three-byte start code, 2 puts an empty NAL unit before it, 3 puts a
    /// corrupt NAL unit before it.
    marks: Vec<u8>,
    /// Cut the stream at this fraction, and start the same clip again.
    cut: Option<f64>,
}

fn damage() -> impl Strategy<Value = Damage> {
    (
        prop_oneof![Just("aud"), Just("slices"), Just("plain")],
        garbage(),
        prop::collection::vec(
            prop_oneof![8 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3)],
            1..50,
        ),
        prop::option::of(0.0..1.0f64),
    )
        .prop_map(|(clip, prefix, marks, cut)| Damage {
            clip,
            prefix,
            marks,
            cut,
        })
}

impl Damage {
    fn stream(&self) -> Vec<u8> {
        let clip = clip(self.clip);
        let mut stream = self.prefix.clone();
        for (number, nal) in nal_units(clip).enumerate() {
            match self.marks[number % self.marks.len()] {
                1 => stream.extend_from_slice(&[0, 0, 1]),
                2 => stream.extend_from_slice(&[0, 0, 1, 0, 0, 0, 1]),
                3 => stream.extend_from_slice(&[0, 0, 1, 0x7F, 0x12, 0x34, 0, 0, 0, 1]),
                _ => stream.extend_from_slice(&nal::START_CODE),
            }
            stream.extend_from_slice(nal);
        }
        if let Some(cut) = self.cut {
            stream.truncate((stream.len() as f64 * cut) as usize);
            stream.extend_from_slice(clip);
        }
        stream
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Splitting does not depend on how the stream was cut into reads.
    #[test]
    fn any_chunking_yields_the_same_aus_as_one_push(
        damage in damage(),
        reads in reads(),
        small_cap in any::<bool>(),
    ) {
        let stream = damage.stream();
        // A small cap makes some AUs (the IDRs) too big.
        let cap = if small_cap { 4000 } else { DEFAULT_MAX_AU_BYTES };
        let whole = split(&stream, &[usize::MAX], cap);
        let cut = split(&stream, &reads, cap);
        prop_assert_eq!(&cut, &whole);
        prop_assert!(small_cap || whole.stats.access_units > 0);
    }

    /// Without damage, any chunking gives exactly the clip's pictures.
    #[test]
    fn any_chunking_of_a_clean_clip_gives_its_pictures(
        name in prop_oneof![Just("aud"), Just("slices"), Just("plain")],
        reads in reads(),
    ) {
        let stream = ended(clip(name));
        let out = split(&stream, &reads, DEFAULT_MAX_AU_BYTES);
        let whole = split(&stream, &[usize::MAX], DEFAULT_MAX_AU_BYTES);
        prop_assert_eq!(&out, &whole);
        let mut expected: Vec<&[u8]> = nal_units(clip(name)).collect();
        expected.push(&[0x0B]);
        prop_assert_eq!(nals_of(&out.aus), expected);
    }
}

#[test]
fn start_codes_split_across_reads_at_every_offset() {
    let stream = ended(clip("aud"));
    let whole = split(&stream, &[usize::MAX], DEFAULT_MAX_AU_BYTES);
    for at in start_code_offsets(&stream) {
        // Cut before, inside (after each of its bytes) and after the
        // start code, and after the header byte and the byte after it.
        for offset in 0..=6 {
            let first = (at + offset).min(stream.len());
            let out = split(&stream, &[first, usize::MAX], DEFAULT_MAX_AU_BYTES);
            assert_eq!(out, whole, "cut at {at} + {offset}");
        }
    }
}

#[test]
fn empty_nal_units_and_short_start_codes_change_nothing() {
    let stream = clip("slices");
    let mut padded = Vec::new();
    for nal in nal_units(stream) {
        // 00 00 01 00 00 01 ...: empty NAL units, then the real one with a
        // three-byte start code.
        padded.extend_from_slice(&[0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1]);
        padded.extend_from_slice(nal);
        padded.extend_from_slice(&[0, 0]); // trailing zeros
    }
    let clean = split(&ended(stream), &[1000], DEFAULT_MAX_AU_BYTES);
    let out = split(&ended(&padded), &[1000], DEFAULT_MAX_AU_BYTES);
    assert_eq!(out.aus, clean.aus);
    assert_eq!(out.stats, clean.stats);
}

#[test]
fn garbage_before_and_between_aus() {
    let stream = clip("plain");
    let clean = split(&ended(stream), &[4096], DEFAULT_MAX_AU_BYTES);
    let offsets = au_offsets(stream, &clean.aus);

    // Before the first start code: counted and skipped, and the first AU
    // says something was lost.
    let prefix = b"camloop: warming up\n";
    let out = split(
        &ended(&[&prefix[..], stream].concat()),
        &[4096],
        DEFAULT_MAX_AU_BYTES,
    );
    assert_eq!(out.stats.garbage_bytes, prefix.len() as u64);
    assert!(out.aus[0].follows_gap);
    assert_eq!(nals_of(&out.aus), nals_of(&clean.aus));

    // Between AUs, garbage without a start code cannot be told from the
    // end of the NAL unit before it (that takes decoding the slice): it
    // stays there, and every AU after it is untouched.
    let at = offsets[5];
    let line = b"a line on stdout\n";
    let out = split(
        &ended(&[&stream[..at], &line[..], &stream[at..]].concat()),
        &[4096],
        DEFAULT_MAX_AU_BYTES,
    );
    assert_eq!(out.aus.len(), clean.aus.len());
    assert_eq!(out.aus[4].data, [&clean.aus[4].data[..], line].concat());
    assert_eq!(out.aus[5..], clean.aus[5..]);

    // Garbage that holds a start code makes a NAL unit that is no H.264
    // one: it is dropped, the AU before it is kept, and the next one says
    // something was lost.
    let junk = [0, 0, 1, 0xFF, 0x12, 0x34, 0x56];
    let out = split(
        &ended(&[&stream[..at], &junk[..], &stream[at..]].concat()),
        &[4096],
        DEFAULT_MAX_AU_BYTES,
    );
    assert_eq!(out.aus.len(), clean.aus.len());
    assert_eq!(nals_of(&out.aus), nals_of(&clean.aus));
    assert_eq!(out.stats.corrupt_dropped, 1);
    let gaps: Vec<usize> = (0..out.aus.len())
        .filter(|&i| out.aus[i].follows_gap)
        .collect();
    assert_eq!(gaps, [5]);
}

#[test]
fn a_truncated_au_followed_by_a_new_stream() {
    let first = clip("plain");
    let second = clip("small");
    let clean = split(first, &[4096], DEFAULT_MAX_AU_BYTES);
    let offsets = au_offsets(first, &clean.aus);
    // Cut in the middle of the sixth AU, a P picture.
    let cut = (offsets[5] + offsets[6]) / 2;
    let mut splitter = AnnexBSplitter::new(DEFAULT_MAX_AU_BYTES);
    let mut aus = Vec::new();
    for stream in [&first[..cut], &ended(second)] {
        for read in stream.chunks(1000) {
            splitter.push(read);
            aus.extend(std::iter::from_fn(|| splitter.next_au()));
        }
        // The source's stream ended (its process exited): what is
        // unfinished is dropped.
        splitter.finish();
    }
    let second_clean = split(&ended(second), &[4096], DEFAULT_MAX_AU_BYTES);
    assert_eq!(aus.len(), 5 + second_clean.aus.len());
    assert_eq!(aus[..5], clean.aus[..5]);
    assert!(aus[5].follows_gap && aus[5].keyframe && aus[5].parameter_sets_changed);
    assert_eq!(nals_of(&aus[5..]), nals_of(&second_clean.aus));
    assert_eq!(splitter.stats().truncated_dropped, 1);
    let info = splitter.parameter_sets().unwrap().info;
    assert_eq!((info.width, info.height), (160, 120));
}

#[test]
fn an_au_over_the_cap_is_dropped_and_the_rest_still_come() {
    let stream = ended(clip("plain"));
    let clean = split(&stream, &[4096], DEFAULT_MAX_AU_BYTES);
    let biggest_p = clean
        .aus
        .iter()
        .filter(|au| !au.keyframe)
        .map(|au| au.data.len())
        .max()
        .unwrap();
    let smallest_idr = clean
        .aus
        .iter()
        .filter(|au| au.keyframe)
        .map(|au| au.data.len())
        .min()
        .unwrap();
    assert!(smallest_idr > biggest_p + 100, "{smallest_idr} {biggest_p}");
    // Every P picture fits, no IDR does.
    let cap = biggest_p + 50;
    let out = split(&stream, &[1000, 1, 7], cap);
    let expected: Vec<&AccessUnit> = clean.aus.iter().filter(|au| !au.keyframe).collect();
    assert_eq!(out.aus.len(), expected.len());
    for (number, (au, clean_au)) in out.aus.iter().zip(&expected).enumerate() {
        assert_eq!(au.data, clean_au.data);
        // Each GOP's first P picture comes right after a dropped IDR.
        assert_eq!(au.follows_gap, number % 9 == 0, "AU {number}");
    }
    let idrs = clean.aus.len() - expected.len();
    assert_eq!(out.stats.oversize_dropped, idrs as u64);
    assert!(out.stats.dropped_bytes >= (idrs * smallest_idr) as u64);
}

#[test]
fn an_sps_that_changes_mid_stream_is_reported() {
    let first = clip("plain");
    let second = clip("small");
    let stream = ended(&[first, second].concat());
    let out = split(&stream, &[3000], DEFAULT_MAX_AU_BYTES);
    let frames = ffprobe(first).frames;
    assert_eq!(out.aus.len(), frames + ffprobe(second).frames);
    let changed: Vec<usize> = (0..out.aus.len())
        .filter(|&i| out.aus[i].parameter_sets_changed)
        .collect();
    assert_eq!(changed, [0, frames]);
    let size = |i: usize| {
        let info = out.sets[i].as_ref().unwrap().info;
        (info.width, info.height)
    };
    assert_eq!(size(frames - 1), (320, 240));
    assert_eq!(size(frames), (160, 120));
    // Nothing was lost where one stream followed the other.
    assert!(out.aus.iter().all(|au| !au.follows_gap));
    // The same parameter sets repeated before every IDR are no change:
    // the first SPS and PPS, then the second clip's where they differ.
    let first_of = |clip: &'static [u8], nal_type| {
        nal_units(clip)
            .find(|n| nal_unit_type(n[0]) == nal_type)
            .unwrap()
    };
    let differ = |nal_type| u64::from(first_of(first, nal_type) != first_of(second, nal_type));
    assert_eq!(
        out.stats.parameter_set_changes,
        2 + differ(nal::SPS) + differ(nal::PPS)
    );
}

#[test]
fn h265_is_refused() {
    let stream = clip("hevc");
    assert_eq!(&stream[..6], [0, 0, 0, 1, 0x40, 0x01]);
    assert_eq!(detect_stream(stream), StreamKind::H265);
    let out = split(stream, &[100], DEFAULT_MAX_AU_BYTES);
    assert_eq!(out.refusal, Some(Refusal::H265));
    assert!(out.aus.is_empty());
    assert_eq!(out.buffered, 0);
    // Everything after the first NAL unit's two header bytes.
    assert_eq!(out.stats.refused_bytes as usize, stream.len() - 6);
}

#[test]
fn b_frames_are_refused_as_reordering() {
    let stream = clip("bframes");
    let probe = ffprobe(stream);
    assert!(probe.has_b_frames > 0);
    assert_eq!(detect_stream(stream), StreamKind::H264);
    let out = split(stream, &[100], DEFAULT_MAX_AU_BYTES);
    assert_eq!(
        out.refusal,
        Some(Refusal::Reordering {
            max_num_reorder_frames: probe.has_b_frames
        })
    );
    assert!(out.aus.is_empty());
    assert_eq!(out.buffered, 0);
}
