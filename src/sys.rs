//! The few process-level settings the server and `camloop load` need from
//! the OS.
//!
//! Raising the descriptor limit, ignoring `SIGXFSZ`, reading CPU time,
//! asking a V4L2 device about a control and the control message of a
//! segmented UDP send are `libc` calls; they live here so the rest of the
//! code stays free of `unsafe`. Random numbers (RTSP nonces,
//! RTP SSRCs) come from the OS too, through `getrandom`.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// `struct v4l2_queryctrl` (`linux/videodev2.h`), 68 bytes: what
/// [`v4l2_query_control`] fills in.
#[repr(C)]
#[derive(Default)]
pub struct V4l2QueryCtrl {
    /// The control id asked about.
    pub id: u32,
    /// `enum v4l2_ctrl_type`.
    pub kind: u32,
    /// The driver's name for it, NUL-padded.
    pub name: [u8; 32],
    /// Smallest value.
    pub minimum: i32,
    /// Largest value.
    pub maximum: i32,
    /// Step between values.
    pub step: i32,
    /// The driver's default.
    pub default_value: i32,
    /// `V4L2_CTRL_FLAG_*`.
    pub flags: u32,
    reserved: [u32; 2],
}

/// `VIDIOC_QUERYCTRL` = `_IOWR('V', 36, struct v4l2_queryctrl)`: direction
/// read|write (3) in bits 30-31, the struct size in bits 16-29, `'V'` and 36.
const VIDIOC_QUERYCTRL: u64 =
    (3 << 30) | ((std::mem::size_of::<V4l2QueryCtrl>() as u64) << 16) | ((b'V' as u64) << 8) | 36;

/// Asks the V4L2 device `device` about control `id` (`VIDIOC_QUERYCTRL`,
/// which never blocks). None when the device has no such control, or is
/// not a V4L2 device at all (ENOTTY).
pub fn v4l2_query_control(device: &std::fs::File, id: u32) -> Option<V4l2QueryCtrl> {
    use std::os::fd::AsRawFd;
    let mut query = V4l2QueryCtrl {
        id,
        ..V4l2QueryCtrl::default()
    };
    // SAFETY: the request code matches the struct it points to, which
    // lives for the whole call; the descriptor stays open while `device`
    // is borrowed.
    let result = unsafe { libc::ioctl(device.as_raw_fd(), VIDIOC_QUERYCTRL as _, &mut query) };
    (result == 0).then_some(query)
}

/// Descriptors kept free beside the connections: by the server from
/// `--max-clients` for listeners, the epoll instance, the signal pipe,
/// snapshot files and the camera; by `camloop load` for stdio and its epoll
/// instance.
pub const RESERVED_DESCRIPTORS: u64 = 32;

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft
/// limit. Thousands of clients need thousands of descriptors, and the
/// default soft limit (often 1024) is far below what the hard limit allows.
pub fn raise_descriptor_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

/// CPU time (user + system) this process has used so far, to the
/// microsecond; zero if the kernel will not say.
pub fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value, and getrusage only writes
    // into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let to_duration = |time: libc::timeval| {
        Duration::new(time.tv_sec.max(0) as u64, 0)
            + Duration::from_micros(time.tv_usec.max(0) as u64)
    };
    to_duration(usage.ru_utime) + to_duration(usage.ru_stime)
}

/// The unit of the CPU times in `/proc/PID/stat` (`getconf CLK_TCK`,
/// 100 on Linux), in ticks per second.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a system setting; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux has used 100 for every architecture for decades; the fallback
    // only keeps a broken sysconf from dividing by zero.
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// User + system CPU time process `pid` has used so far, from
/// `/proc/PID/stat`. All the process's threads count, as they should for a
/// server with helper threads. (`camloop load` measures a server with it,
/// and the server its converter children.)
pub fn process_cpu_time(pid: u32) -> io::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    let ticks = cpu_ticks_from_stat(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path}: unexpected format"),
        )
    })?;
    Ok(Duration::from_micros(
        ticks.saturating_mul(1_000_000) / clock_ticks_per_second(),
    ))
}

/// Fields 14 and 15 (`utime`, `stime`, in clock ticks) of a
/// `/proc/PID/stat` line, added.
pub fn cpu_ticks_from_stat(stat: &str) -> Option<u64> {
    // Field 2 is the command name in parentheses, which may itself hold
    // spaces and `)`: count the fields from after its last `)`.
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name come field 3 (state) .. field 13, then utime and stime.
    let mut times = after_name
        .split_ascii_whitespace()
        .skip(11)
        .map(str::parse::<u64>);
    Some(times.next()?.ok()? + times.next()?.ok()?)
}

/// Makes a write past RLIMIT_FSIZE fail with `EFBIG` instead of killing
/// the process with `SIGXFSZ`: a full disk quota is a snapshot error to
/// report, not a reason to stop serving everybody.
pub fn ignore_file_size_signal() {
    // SAFETY: installing SIG_IGN for a signal is async-signal-safe and has
    // no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// The control message of a `sendmsg` that asks the kernel to cut one
/// datagram into many of `segment_bytes` each, the last possibly shorter
/// (`UDP_SEGMENT`, UDP's generic segmentation offload, Linux 4.18): one
/// send for a run of RTP packets of one size.
pub struct UdpSegmentControl {
    /// Room for `CMSG_SPACE(2)` bytes, aligned for a `cmsghdr`.
    space: [u64; 4],
    len: usize,
}

impl UdpSegmentControl {
    /// The message for datagrams of `segment_bytes`.
    pub fn new(segment_bytes: u16) -> Self {
        let mut control = UdpSegmentControl {
            space: [0; 4],
            // SAFETY: CMSG_SPACE only computes a size.
            len: unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize,
        };
        assert!(control.len <= std::mem::size_of_val(&control.space));
        let header = control.space.as_mut_ptr().cast::<libc::cmsghdr>();
        // SAFETY: `space` is zeroed, aligned for a cmsghdr and holds
        // CMSG_SPACE(2) bytes (asserted): the header and its u16 fit.
        unsafe {
            (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
            (*header).cmsg_level = libc::SOL_UDP;
            (*header).cmsg_type = libc::UDP_SEGMENT;
            libc::CMSG_DATA(header)
                .cast::<u16>()
                .write_unaligned(segment_bytes);
        }
        control
    }

    /// The bytes to hand `sendmsg` as its control buffer.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes of `space` are initialised (all of it is) and
        // live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.space.as_ptr().cast::<u8>(), self.len) }
    }
}

/// Turns off UDP checksums on `socket` (`SO_NO_CHECK`): the kernel then
/// refuses segmented sends on it (`EINVAL`), as one without segmentation
/// offload would, which is how a test reaches the fallback.
#[cfg(test)]
pub fn disable_udp_checksums(socket: &impl std::os::fd::AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor, and a c_int option of its size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match result {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Whether a segmented UDP send failed because this kernel, route or
/// device cannot segment (too old a kernel, no checksum offload on the
/// way out) rather than because of the datagram or a full buffer.
pub fn is_segmentation_refused(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::ENOPROTOOPT) | Some(libc::EOPNOTSUPP)
    )
}

/// Where the kernel says which local ports it hands out on its own (for
/// outgoing connections and binds to port 0).
pub const EPHEMERAL_PORT_RANGE_PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The kernel's ephemeral port range, lowest and highest; None where
/// [`EPHEMERAL_PORT_RANGE_PATH`] cannot be read or parsed.
pub fn ephemeral_port_range() -> Option<(u16, u16)> {
    let range = std::fs::read_to_string(EPHEMERAL_PORT_RANGE_PATH).ok()?;
    let mut bounds = range.split_ascii_whitespace().map(str::parse::<u16>);
    match (bounds.next(), bounds.next()) {
        (Some(Ok(low)), Some(Ok(high))) => Some((low, high)),
        _ => None,
    }
}

/// Whether an accept error means we are out of descriptors or memory
/// (retry later) rather than a problem with one incoming connection.
pub fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Tells systemd the service is ready (`Type=notify`): one `READY=1`
/// datagram to `$NOTIFY_SOCKET`, if systemd set it. Sent once the
/// listeners are bound, so clients started after us never see a refused
/// connection. A no-op outside systemd.
pub fn notify_systemd(state: &str) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let sent = match path.as_bytes().strip_prefix(b"@") {
        // A leading '@' names a socket in the abstract namespace.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
        }
        None => socket.send_to(state.as_bytes(), &path),
    };
    if let Err(e) = sent {
        log::warn!("could not notify systemd ({state}): {e}");
    }
}

/// Makes a child started from `command` die with us: `PR_SET_PDEATHSIG`
/// sends it SIGKILL when camloop exits, even by `kill -9`, so a camera
/// child is never orphaned. The event loop is the only thread, so "the
/// thread that forked" (what the kernel watches) is the process.
pub fn kill_child_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: between fork and exec the closure calls only prctl and
    // getppid, both async-signal-safe, and touches no memory of ours.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::other("camloop exited while starting the camera"));
            }
            Ok(())
        });
    }
}

/// Asks the kernel to let the pipe `fd` hold `bytes` (`F_SETPIPE_SZ`).
/// Best effort: a kernel or limit that refuses leaves the default (64 KiB),
/// which only means more wake-ups per frame; one debug line says so.
pub fn set_pipe_size(fd: std::os::unix::io::RawFd, bytes: usize) {
    let Ok(size) = libc::c_int::try_from(bytes) else {
        return;
    };
    // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int and
    // touches no memory of ours.
    let result = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size) };
    if result < 0 {
        log::debug!(
            "pipe {fd}: F_SETPIPE_SZ {bytes}: {}",
            io::Error::last_os_error()
        );
    }
}

/// Sends `signal` to the whole process group `group` (a child started with
/// `process_group(0)`), so a `sh -c` pipeline leaves no grandchildren.
pub fn signal_process_group(group: u32, signal: i32) {
    let Ok(group) = libc::pid_t::try_from(group) else {
        return;
    };
    if group > 1 {
        // SAFETY: kill has no memory preconditions; a negative pid names a group.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}

/// Takes ownership of a listening socket this process inherited at `fd`
/// (systemd's `LISTEN_FDS`, checked by the caller against `LISTEN_PID`).
pub fn take_inherited_socket(fd: std::os::fd::RawFd) -> socket2::Socket {
    use std::os::fd::FromRawFd;
    // SAFETY: the caller only passes descriptors systemd handed to this very
    // process (LISTEN_PID matched), which nothing else in it owns.
    unsafe { socket2::Socket::from_raw_fd(fd) }
}

/// `N` random bytes from the kernel's generator (`getrandom(2)`): for RTSP
/// nonces and session ids, and RTP's SSRCs, first sequence numbers and
/// timestamp bases, which RFC 3550 wants unpredictable.
///
/// Never fails and never panics. The kernel refuses only when something
/// forbids asking (a seccomp filter, or a kernel older than 3.17 in a
/// chroot without `/dev/urandom`); then the bytes are mixed from the wall
/// clock, the pid and a call counter instead, and one warning is logged.
/// Those are guessable by a patient attacker who knows when the server
/// started, but a nonce or an SSRC is not a key: on a LAN camera, weaker
/// ones are better than a server that cannot answer.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    if let Err(e) = getrandom::fill(&mut bytes) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            log::warn!("no random bytes from the kernel ({e}): using the clock and pid instead");
        }
        bytes = fallback_bytes();
    }
    bytes
}

/// A random `u32` ([`random_bytes`]): an SSRC, a first sequence number
/// (its low 16 bits), an RTP timestamp base.
pub fn random_u32() -> u32 {
    u32::from_ne_bytes(random_bytes())
}

/// What [`random_bytes`] falls back on: SplitMix64 outputs from a seed of
/// the wall clock, the pid and a call counter. The counter makes two calls
/// in the same nanosecond differ; SplitMix64 spreads every input bit over
/// the whole output, so the bytes look random even though the inputs are
/// not.
fn fallback_bytes<const N: usize>() -> [u8; N] {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let since_epoch_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Only the low 64 bits of the nanoseconds: the ones that change.
    let mut state = (since_epoch_ns as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
        ^ CALLS.fetch_add(1, Ordering::Relaxed).rotate_left(48);
    let mut bytes = [0; N];
    for chunk in bytes.chunks_mut(8) {
        let word = splitmix64(&mut state).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    bytes
}

/// One step of SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit mixer
/// whose outputs pass statistical tests from any seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The IP addresses of the machine's interfaces that are up (`getifaddrs`,
/// which reads them over a netlink socket: the systemd unit allows
/// `AF_NETLINK` for this), loopback included, link-local (`169.254/16`,
/// `fe80::/10`) left out: WebRTC offers each as a candidate, and a
/// link-local one only works with its interface's scope.
pub fn interface_addresses() -> io::Result<Vec<std::net::IpAddr>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list it allocated, or
    // fails and leaves it alone; freeifaddrs releases it below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addresses = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: every node of the list is valid until freeifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        let up = entry.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
        if entry.ifa_addr.is_null() || !up {
            continue;
        }
        // SAFETY: ifa_addr points at a sockaddr whose family says which
        // struct it is.
        let address = unsafe {
            match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let v4 = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)))
                }
                libc::AF_INET6 => {
                    let v6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr))
                }
                _ => continue,
            }
        };
        let link_local = match address {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        if !link_local && !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v4l2_query_struct_and_request_match_the_kernel_headers() {
        assert_eq!(std::mem::size_of::<V4l2QueryCtrl>(), 68);
        assert_eq!(VIDIOC_QUERYCTRL, 0xc044_5624);
    }

    #[test]
    fn a_file_that_is_not_a_v4l2_device_answers_no_control() {
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(v4l2_query_control(&null, 0x0098_0900).is_none());
    }

    #[test]
    fn random_bytes_differ_from_call_to_call() {
        // Two equal 16-byte draws happen once in 2^128: an equal pair means
        // the bytes are not random (all zeros, say).
        let (a, b) = (random_bytes::<16>(), random_bytes::<16>());
        assert_ne!(a, b);
        assert_ne!(random_u32(), random_u32(), "once in 2^32");
        assert_eq!(random_bytes::<0>(), [0u8; 0]);
    }

    #[test]
    fn the_fallback_is_splitmix64_and_differs_from_call_to_call() {
        let (a, b) = (fallback_bytes::<13>(), fallback_bytes::<13>());
        assert_ne!(a, b, "the clock and the counter move on");
        assert_ne!(a, [0; 13]);
        // The reference outputs of SplitMix64 from seed 0 (Vigna's
        // `splitmix64.c`).
        let mut state = 0;
        assert_eq!(splitmix64(&mut state), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut state), 0x6E78_9E6A_A1B9_65F4);
    }
}
