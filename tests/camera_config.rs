//! Several cameras in the configuration: `--camera [NAME=]SOURCE`, the
//! config file's `camera` key (a string, an array, `[[camera]]` tables),
//! `--print-config` giving back what loads identically, and the refusals
//! (duplicate names, snapshot names that could match each other's files),
//! against the real `camloop serve` binary. Nothing here starts a loop:
//! `--print-config` exits after printing, and a refused start exits 2.

mod http_support;

use std::path::Path;
use std::process::{Command, Output};

use http_support::TempDir;

const CAMLOOP: &str = env!("CARGO_BIN_EXE_camloop");

fn serve(args: &[&str]) -> Output {
    Command::new(CAMLOOP)
        .arg("serve")
        .args(args)
        .output()
        .expect("run camloop serve")
}

/// `--print-config` with `args`; panics unless it succeeds.
fn print_config(args: &[&str]) -> String {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let output = serve(&all);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The `[[camera]]` tables of a `--print-config` output.
fn camera_tables(text: &str) -> String {
    let at = text.find("\n[[camera]]").expect("camera tables");
    text[at..].to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config");
    path.to_string_lossy().into_owned()
}

/// A refused start: exit code 2 and the message on stderr.
fn refusal(args: &[&str]) -> String {
    let dir = TempDir::new("camera-config-refused");
    let dir_text = dir.path().to_string_lossy().into_owned();
    let mut all = vec![
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--rtsp",
        "off",
        "--snapshot-dir",
    ];
    all.push(&dir_text);
    all.extend_from_slice(args);
    let output = serve(&all);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn camera_tables_print_back_and_load_back_identically() {
    let dir = TempDir::new("camera-config-tables");
    let config = write(
        dir.path(),
        "camloop.toml",
        "fps = 12\n\
         [[camera]]\nname = \"nozzle\"\nsource = \"synthetic\"\nwidth = 320\nheight = 240\n\
         control = [\"brightness=60\"]\n\
         [[camera]]\nsource = \"exec:ffmpeg -i x -vf scale=640:-1 -f mjpeg -\"\nfps = 5\n\
         snapshot-name = \"{camera}-{seq}.jpg\"\ncamera-timeout = 2.5\n",
    );
    let first = print_config(&["--config", &config]);
    assert!(first.contains("\nfps = 12\n"), "{first}");
    assert_eq!(
        camera_tables(&first),
        "\n[[camera]]\nname = \"nozzle\"\nsource = \"synthetic\"\nwidth = 320\nheight = 240\n\
         control = [\"brightness=60\"]\n\
         \n[[camera]]\nname = \"cam1\"\nsource = \"exec:ffmpeg -i x -vf scale=640:-1 -f mjpeg -\"\n\
         fps = 5\nsnapshot-name = \"{camera}-{seq}.jpg\"\ncamera-timeout = 2.5\n"
    );
    let again = write(dir.path(), "printed.toml", &first);
    assert_eq!(print_config(&["--config", &again]), first);
}

#[test]
fn a_string_array_names_cameras_by_position_and_the_command_line_replaces_it() {
    let dir = TempDir::new("camera-config-array");
    let config = write(
        dir.path(),
        "camloop.toml",
        "camera = [\"synthetic\", \"door=none\", \"http://c/x?res=640\"]\n",
    );
    assert_eq!(
        camera_tables(&print_config(&["--config", &config])),
        "\n[[camera]]\nname = \"cam0\"\nsource = \"synthetic\"\n\
         \n[[camera]]\nname = \"door\"\nsource = \"none\"\n\
         \n[[camera]]\nname = \"cam2\"\nsource = \"http://c/x?res=640\"\n"
    );
    // A --camera on the command line replaces the file's whole list.
    let replaced = print_config(&["--config", &config, "--camera", "yard=synthetic"]);
    assert_eq!(
        camera_tables(&replaced),
        "\n[[camera]]\nname = \"yard\"\nsource = \"synthetic\"\n"
    );
}

#[test]
fn name_equals_is_a_name_only_when_it_can_be_one() {
    let printed = print_config(&[
        "--camera",
        "http://c/x?res=640",
        "--camera",
        "exec:ffmpeg -i y -vf scale=640:-1 -f mjpeg -",
        "--camera",
        "v4l2src device=/dev/video0 ! appsink",
        "--camera",
        "cam3=a=b.mp4",
        "--camera",
        "a=b.mp4",
    ]);
    assert_eq!(
        camera_tables(&printed),
        "\n[[camera]]\nname = \"cam0\"\nsource = \"http://c/x?res=640\"\n\
         \n[[camera]]\nname = \"cam1\"\nsource = \"exec:ffmpeg -i y -vf scale=640:-1 -f mjpeg -\"\n\
         \n[[camera]]\nname = \"cam2\"\nsource = \"v4l2src device=/dev/video0 ! appsink\"\n\
         \n[[camera]]\nname = \"cam3\"\nsource = \"a=b.mp4\"\n\
         \n[[camera]]\nname = \"a\"\nsource = \"b.mp4\"\n"
    );
}

#[test]
fn a_duplicate_name_is_refused_with_the_exact_error() {
    let stderr = refusal(&["--camera", "cam1=synthetic", "--camera", "synthetic"]);
    assert!(
        stderr.contains("camloop serve: duplicate camera name cam1\n"),
        "{stderr}"
    );
}

#[test]
fn snapshot_names_that_could_match_each_other_are_refused_with_the_exact_error() {
    let dir = TempDir::new("camera-config-collide");
    let config = write(
        dir.path(),
        "camloop.toml",
        "[[camera]]\nname = \"a\"\nsource = \"synthetic\"\nsnapshot-name = \"snap{seq}.jpg\"\n\
         [[camera]]\nname = \"b\"\nsource = \"synthetic\"\nsnapshot-name = \"snap1{seq}.jpg\"\n",
    );
    let stderr = refusal(&["--config", &config]);
    assert!(
        stderr.contains(
            "camloop serve: camera b: snapshot name \"snap1{seq}.jpg\" could match the files \
             of camera a (\"snap{seq}.jpg\") in the same --snapshot-dir; put {camera} in the \
             snapshot names\n"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unknown_key_in_a_camera_table_is_refused_with_its_name() {
    let dir = TempDir::new("camera-config-unknown");
    let config = write(
        dir.path(),
        "camloop.toml",
        "[[camera]]\nsource = \"synthetic\"\nfsp = 3\n",
    );
    let stderr = refusal(&["--config", &config]);
    assert!(
        stderr.contains("[[camera]]: unknown key \"fsp\""),
        "{stderr}"
    );
}
