//! The Debian packages, installed where camloop has never been.
//!
//! `scripts/package.sh` builds both packages (camloop, the OpenCV build, and
//! camloop-lean); `scripts/debroot.sh` makes a clean Debian 12 root from
//! Debian's own packages (cached as a tarball under /var/tmp). Each test
//! unpacks a fresh copy of that root, installs a package in it with
//! `apt-get install ./….deb`, runs the installed camloop there as the
//! package's user and talks to it over loopback (the root shares the host's
//! network), verifies the installed systemd units with the root's own
//! `systemd-analyze`, then removes and purges.
//!
//! Only in the default-features pass of scripts/test.sh (the file is empty
//! without the opencv feature): one run builds both packages, and the
//! release builds are kept in their own target directory,
//! `$CAMLOOP_PACKAGE_TARGET_DIR` (default /var/tmp/camloop-package-target),
//! so later runs only recompile camloop itself.
//!
//! It needs root (chroot, and dpkg inside the root); without root it fails
//! and says so.
#![cfg(feature = "opencv")]

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use support::{read_listening_line, Client, SERVE_ON_LOOPBACK, TIMEOUT};

/// The two .deb files scripts/package.sh made.
struct Packages {
    full: PathBuf,
    lean: PathBuf,
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `command` to its end and returns its stdout; panics with
/// everything it printed if it fails.
fn run_ok(command: &mut Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(output.status.success(), "{what}: {}", describe(&output));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "tests/package.rs needs root: it unpacks a Debian root (mmdebstrap makes it as root) \
         and runs dpkg, apt-get and camloop inside it with chroot"
    );
}

/// Both packages, built once per test run.
fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let target_dir = std::env::var_os("CAMLOOP_PACKAGE_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/camloop-package-target"));
        let stdout = run_ok(
            Command::new(repository().join("scripts/package.sh"))
                .current_dir(repository())
                .env("CARGO_TARGET_DIR", &target_dir),
            "scripts/package.sh",
        );
        let debs: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
        let arch = run_ok(
            Command::new("dpkg").arg("--print-architecture"),
            "dpkg --print-architecture",
        );
        let version = env!("CARGO_PKG_VERSION");
        let expect = |name: &str| {
            let file = format!("{name}_{version}-1_{}.deb", arch.trim());
            let path = target_dir.join("debian").join(&file);
            assert!(
                debs.contains(&path),
                "scripts/package.sh printed {debs:?}, not {}",
                path.display()
            );
            assert!(path.is_file(), "{} is no file", path.display());
            path
        };
        Packages {
            full: expect("camloop"),
            lean: expect("camloop-lean"),
        }
    })
}

/// The cached tarball of the clean root, made on first use.
fn root_tarball() -> &'static Path {
    static TARBALL: OnceLock<PathBuf> = OnceLock::new();
    TARBALL.get_or_init(|| {
        require_root();
        let stdout = run_ok(
            &mut Command::new(repository().join("scripts/debroot.sh")),
            "scripts/debroot.sh",
        );
        let path = PathBuf::from(stdout.trim());
        assert!(path.is_file(), "scripts/debroot.sh printed {stdout:?}");
        path
    })
}

/// A field of a .deb's control file.
fn control_field(deb: &Path, field: &str) -> String {
    run_ok(
        Command::new("dpkg-deb").arg("--field").arg(deb).arg(field),
        "dpkg-deb --field",
    )
    .trim()
    .to_string()
}

/// One of a .deb's control files (postinst, conffiles...).
fn control_file(deb: &Path, name: &str) -> String {
    run_ok(
        Command::new("dpkg-deb").arg("--info").arg(deb).arg(name),
        "dpkg-deb --info",
    )
}

/// The paths a .deb installs, without the leading `.`.
fn contents(deb: &Path) -> Vec<String> {
    let listing = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("dpkg-deb --fsys-tarfile \"$0\" | tar -t")
            .arg(deb),
        "list the package",
    );
    listing
        .lines()
        .map(|line| line.trim_start_matches('.').to_string())
        .collect()
}

/// The package names in a Depends-style field (`a (>= 1), b | c`).
fn relation_names(field: &str) -> Vec<String> {
    field
        .split([',', '|'])
        .map(|part| part.split_whitespace().next().unwrap_or("").to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The systemd units both packages install.
const UNITS: [&str; 6] = [
    "camloop.service",
    "camloop.socket",
    "camloop-control.socket",
    "camloop-http.socket",
    "camloop-rtsp.socket",
    "camloop-webrtc.socket",
];

/// What both packages must have in common, read from the .deb itself.
fn check_common_contents(deb: &Path, name: &str, other: &str) {
    assert_eq!(control_field(deb, "Package"), name);
    let files = contents(deb);
    let mut expected: Vec<String> = vec![
        "/usr/bin/camloop".into(),
        "/etc/camloop/camloop.toml".into(),
        format!("/usr/share/doc/{name}/README.md"),
        format!("/usr/share/doc/{name}/docs/deployment.md"),
        format!("/usr/share/doc/{name}/copyright"),
    ];
    expected.extend(
        UNITS
            .iter()
            .map(|unit| format!("/usr/lib/systemd/system/{unit}")),
    );
    for path in &expected {
        assert!(files.contains(path), "{name}: no {path} in {files:?}");
    }
    assert!(
        !files.iter().any(|path| path.starts_with("/usr/local")),
        "{name} installs under /usr/local: {files:?}"
    );
    assert_eq!(
        control_file(deb, "conffiles").trim(),
        "/etc/camloop/camloop.toml"
    );
    let depends = relation_names(&control_field(deb, "Depends"));
    for needed in ["adduser", "libc6"] {
        assert!(
            depends.iter().any(|d| d == needed),
            "{name}: Depends {depends:?} lacks {needed}"
        );
    }
    assert_eq!(control_field(deb, "Recommends"), "ffmpeg");
    assert_eq!(control_field(deb, "Conflicts"), other);
    assert_eq!(control_field(deb, "Replaces"), other);
    // Installing starts nothing (without systemd running in the root, the
    // script is where that shows): the only unit action in the postinst is
    // try-restart, which restarts a unit that was running before an
    // upgrade. That none is enabled is checked in the root (check_units).
    let postinst = control_file(deb, "postinst");
    let actions: Vec<&str> = postinst
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.starts_with("deb-systemd-invoke")
                || line.starts_with("systemctl")
                    && !line.starts_with("systemctl --system daemon-reload")
                || line.starts_with("_dh_action=")
        })
        .collect();
    assert!(
        !actions.is_empty()
            && actions
                .iter()
                .all(|line| line.starts_with("deb-systemd-invoke try-restart ")),
        "{name}'s postinst: {actions:?}"
    );
    assert!(
        postinst.contains("adduser --system --group"),
        "{name}'s postinst makes no system user"
    );
}

// ---------------------------------------------------------------------------
// A root

/// A fresh copy of the clean Debian root, under /var/tmp (it is about half
/// a gigabyte once OpenCV is in), removed on drop.
struct Root {
    path: PathBuf,
}

impl Root {
    fn new(tag: &str) -> Root {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tarball = root_tarball();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "/var/tmp/camloop-test-debroot-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create the root directory");
        run_ok(
            Command::new("tar")
                .arg("-xf")
                .arg(tarball)
                .arg("-C")
                .arg(&path),
            "unpack the Debian root",
        );
        Root { path }
    }

    /// `path` inside the root, as seen from outside.
    fn host_path(&self, path: &str) -> PathBuf {
        self.path.join(path.trim_start_matches('/'))
    }

    /// The command `args` run inside the root.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("chroot");
        command
            .arg(&self.path)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C.UTF-8")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        command
    }

    /// Runs `args` inside the root, which must succeed; its stdout.
    fn run(&self, args: &[&str]) -> String {
        run_ok(&mut self.command(args), &args.join(" "))
    }

    /// Runs `args` inside the root; the whole output, success or not.
    fn output(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: cannot start: {e}", args.join(" ")))
    }

    /// apt-get with a command and arguments, answering yes. Without a pty
    /// for dpkg (there is no /dev/pts in the root), and without
    /// recommended packages: ffmpeg (the Recommends, checked in the control
    /// file) and the recommends of OpenCV's libraries would add hundreds of
    /// megabytes to every run and test nothing of camloop's.
    fn apt_get(&self, args: &[&str]) -> String {
        let mut all = vec![
            "apt-get",
            "-y",
            "-q",
            "--no-install-recommends",
            "-o",
            "Dpkg::Use-Pty=0",
        ];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Copies a .deb into the root's /tmp and installs it the way a user
    /// would: `apt-get install ./file.deb`, which brings its dependencies.
    fn install(&self, deb: &Path) {
        let name = deb.file_name().expect("a file name").to_str().unwrap();
        fs::copy(deb, self.host_path("/tmp").join(name)).expect("copy the package in");
        self.apt_get(&["install", &format!("/tmp/{name}")]);
    }

    /// `dpkg-query`'s status of a package: "install ok installed",
    /// "deinstall ok config-files", or "not-installed" when nothing of it
    /// is left (whether dpkg still lists it as such or knows nothing of it).
    fn status(&self, package: &str) -> String {
        let output = self.output(&["dpkg-query", "-W", "-f=${Status}", package]);
        let status = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if status.is_empty() || status.ends_with(" not-installed") {
            "not-installed".to_string()
        } else {
            status
        }
    }

    /// The passwd line of `user`, if the root has one.
    fn passwd(&self, user: &str) -> Option<String> {
        let output = self.output(&["getent", "passwd", user]);
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// The installed server

/// The installed camloop serving inside the root, as the camloop user.
struct Served {
    child: Child,
    control: SocketAddr,
    http: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `camloop serve --config /etc/camloop/camloop.toml` inside the
/// root as the camloop user (its groups included, so video too), with
/// every port on a free loopback port and RTSP and WebRTC off.
fn serve(root: &Root) -> Served {
    let as_camloop = [
        "setpriv",
        "--reuid=camloop",
        "--regid=camloop",
        "--init-groups",
        "/usr/bin/camloop",
    ];
    // The config names WebRTC's fixed port; this test must not take a
    // fixed port on the shared network.
    let config = ["--config", "/etc/camloop/camloop.toml", "--webrtc", "off"];
    let args = [&as_camloop[..], &SERVE_ON_LOOPBACK, &config].concat();
    let mut child = root
        .command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start camloop in the root");
    let Some((control, http)) = read_listening_line(&mut child) else {
        let _ = child.kill();
        panic!("the installed camloop printed no listening line");
    };
    let address = |printed: String| -> SocketAddr {
        printed
            .parse()
            .unwrap_or_else(|e| panic!("{printed:?} is not an address: {e}"))
    };
    let (control, http) = (address(control), address(http));
    Served {
        child,
        control,
        http,
    }
}

/// `GET path` on its own connection: the status line and the body.
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to HTTP");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {response:?}"));
    let status = head.lines().next().unwrap_or("").to_string();
    (status, body.to_string())
}

/// The classic client's snapshot and /state, against the installed
/// camloop: `c` saves /var/lib/camloop/pic2.jpg as the camloop user.
fn check_serving(root: &Root, opencv: bool) {
    let version = root.run(&["camloop", "--version"]);
    let build = if opencv {
        "with OpenCV"
    } else {
        "without OpenCV"
    };
    assert!(version.contains(build), "camloop --version: {version}");

    let uid: u32 = root
        .passwd("camloop")
        .expect("a camloop user")
        .split(':')
        .nth(2)
        .and_then(|uid| uid.parse().ok())
        .expect("a numeric uid");
    let served = serve(root);
    let mut client = Client::connect(served.control);
    client.expect("Welcome");
    let capture = client.capture();
    assert_eq!(capture.file, "pic2.jpg");
    let snapshot = root.host_path("/var/lib/camloop/pic2.jpg");
    let bytes = fs::read(&snapshot).expect("the snapshot in /var/lib/camloop");
    assert_eq!(bytes.len(), capture.bytes, "the file is what `c` reported");
    assert!(bytes.starts_with(&[0xFF, 0xD8]), "a JPEG");
    assert_eq!(
        fs::metadata(&snapshot).expect("stat").uid(),
        uid,
        "written by the camloop user"
    );

    let (status, body) = http_get(served.http, "/state");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).expect("/state is JSON");
    assert_eq!(state["snapshots"], 1, "/state counts the `c`: {body}");
    assert_eq!(state["camera_ok"], true, "{body}");
}

/// The installed units: contrib's, with the package's binary and user, and
/// all of them accepted by the root's own systemd.
fn check_units(root: &Root) {
    let service = fs::read_to_string(root.host_path("/usr/lib/systemd/system/camloop.service"))
        .expect("the installed camloop.service");
    let settings: Vec<&str> = service
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains('='))
        .collect();
    for expected in [
        "ExecStart=/usr/bin/camloop serve --config /etc/camloop/camloop.toml",
        "User=camloop",
        "Group=camloop",
        "SupplementaryGroups=video",
        "StateDirectory=camloop",
    ] {
        assert!(
            settings.contains(&expected),
            "camloop.service has no {expected:?}: {settings:?}"
        );
    }
    assert!(
        !settings.iter().any(|line| line.starts_with("DynamicUser=")),
        "the packaged service names its user: {settings:?}"
    );
    assert!(
        !settings.iter().any(|line| line.contains("/usr/local")),
        "{settings:?}"
    );
    let families = settings
        .iter()
        .find(|line| line.starts_with("RestrictAddressFamilies="))
        .expect("RestrictAddressFamilies=");
    assert!(families.contains("AF_NETLINK"), "{families}");

    let webrtc =
        fs::read_to_string(root.host_path("/usr/lib/systemd/system/camloop-webrtc.socket"))
            .expect("the installed camloop-webrtc.socket");
    for expected in [
        "ListenDatagram=127.0.0.1:8555",
        "FileDescriptorName=webrtc",
        "Service=camloop.service",
    ] {
        assert!(
            webrtc.lines().any(|line| line == expected),
            "camloop-webrtc.socket has no {expected:?}"
        );
    }

    // systemd-analyze checks what it can without a running systemd: every
    // key known, the ExecStart binary there and executable, each socket's
    // Service= loadable. Warnings count as failures.
    let paths: Vec<String> = UNITS
        .iter()
        .map(|unit| format!("/usr/lib/systemd/system/{unit}"))
        .collect();
    let mut args = vec!["systemd-analyze", "verify"];
    args.extend(paths.iter().map(String::as_str));
    let output = root.output(&args);
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "systemd-analyze verify: {}",
        describe(&output)
    );

    // Installed, not enabled: nothing starts at boot before the camera and
    // ports are chosen.
    for unit in UNITS {
        let output = root.output(&["systemctl", "is-enabled", unit]);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "disabled",
            "{unit}: {}",
            describe(&output)
        );
    }
}

/// The camloop user: a system user (no login, home /var/lib/camloop) in
/// the groups camloop and video, owning /var/lib/camloop.
fn check_user(root: &Root) {
    let passwd = root.passwd("camloop").expect("a camloop user");
    let fields: Vec<&str> = passwd.split(':').collect();
    let uid: u32 = fields[2].parse().expect("uid");
    assert!(uid < 1000, "a system user: {passwd}");
    assert_eq!(fields[5], "/var/lib/camloop", "{passwd}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{passwd}");
    let groups = root.run(&["id", "-nG", "camloop"]);
    let groups: Vec<&str> = groups.split_whitespace().collect();
    assert!(
        groups.contains(&"camloop") && groups.contains(&"video"),
        "{groups:?}"
    );
    let state = fs::metadata(root.host_path("/var/lib/camloop")).expect("/var/lib/camloop");
    assert!(state.is_dir());
    assert_eq!(state.uid(), uid, "/var/lib/camloop belongs to camloop");
}

const EDIT: &str = "\n# edited by tests/package.rs\n";

fn edit_config(root: &Root) {
    let path = root.host_path("/etc/camloop/camloop.toml");
    let mut config = fs::read_to_string(&path).expect("the installed config");
    config.push_str(EDIT);
    fs::write(&path, config).expect("edit the config");
}

fn config_is_edited(root: &Root) -> bool {
    fs::read_to_string(root.host_path("/etc/camloop/camloop.toml"))
        .is_ok_and(|config| config.ends_with(EDIT))
}

// ---------------------------------------------------------------------------

#[test]
fn the_camloop_package_installs_serves_keeps_its_edited_config_and_purges() {
    require_root();
    let packages = packages();
    check_common_contents(&packages.full, "camloop", "camloop-lean");
    // dpkg-shlibdeps found OpenCV's libraries in the binary.
    let depends = relation_names(&control_field(&packages.full, "Depends"));
    for library in [
        "libopencv-core406",
        "libopencv-imgcodecs406",
        "libopencv-videoio406",
    ] {
        assert!(
            depends.iter().any(|d| d == library),
            "Depends {depends:?} lacks {library}"
        );
    }

    let root = Root::new("full");
    // Clean: neither camloop nor OpenCV nor the user.
    assert!(!root.host_path("/usr/bin/camloop").exists());
    assert_eq!(root.status("libopencv-videoio406"), "not-installed");
    assert_eq!(root.passwd("camloop"), None);

    root.install(&packages.full);
    assert_eq!(root.status("camloop"), "install ok installed");
    // apt brought the dependencies the package declares.
    assert_eq!(root.status("libopencv-videoio406"), "install ok installed");
    check_user(&root);
    check_units(&root);
    check_serving(&root, true);

    // remove: the binary goes, the edited config (a conffile) and the
    // snapshots stay.
    edit_config(&root);
    root.apt_get(&["remove", "camloop"]);
    assert_eq!(root.status("camloop"), "deinstall ok config-files");
    assert!(!root.host_path("/usr/bin/camloop").exists());
    assert!(config_is_edited(&root), "remove kept the edited config");
    assert!(root.host_path("/var/lib/camloop/pic2.jpg").is_file());

    // purge: configuration and state go, the user stays (Debian's policy:
    // files it owns elsewhere must not pass to a later user of its uid).
    root.apt_get(&["purge", "camloop"]);
    assert_eq!(root.status("camloop"), "not-installed");
    assert!(
        !root.host_path("/etc/camloop").exists(),
        "purge removes /etc/camloop"
    );
    assert!(
        !root.host_path("/var/lib/camloop").exists(),
        "purge removes /var/lib/camloop"
    );
    assert!(root.passwd("camloop").is_some(), "purge keeps the user");
}

#[test]
fn camloop_lean_replaces_camloop_and_keeps_its_config_until_purged() {
    require_root();
    let packages = packages();
    check_common_contents(&packages.lean, "camloop-lean", "camloop");
    let depends = relation_names(&control_field(&packages.lean, "Depends"));
    assert!(
        !depends.iter().any(|d| d.starts_with("libopencv")),
        "the lean build needs no OpenCV: {depends:?}"
    );

    let root = Root::new("lean");
    root.install(&packages.full);
    edit_config(&root);
    // The two conflict: installing one removes the other, and the edited
    // configuration carries over.
    root.install(&packages.lean);
    assert_eq!(root.status("camloop-lean"), "install ok installed");
    assert_eq!(root.status("camloop"), "deinstall ok config-files");
    assert!(config_is_edited(&root), "the edited config carried over");
    check_user(&root);
    check_units(&root);
    check_serving(&root, false);

    // Purging the removed camloop leaves what camloop-lean uses.
    root.apt_get(&["purge", "camloop"]);
    assert_eq!(root.status("camloop"), "not-installed");
    assert!(config_is_edited(&root), "camloop-lean's config stays");
    assert!(root.host_path("/var/lib/camloop/pic2.jpg").is_file());

    root.apt_get(&["purge", "camloop-lean"]);
    assert_eq!(root.status("camloop-lean"), "not-installed");
    assert!(!root.host_path("/etc/camloop").exists());
    assert!(!root.host_path("/var/lib/camloop").exists());
    assert!(root.passwd("camloop").is_some());
}
