//! The ranges of a V4L2 device's controls, asked of the kernel directly.
//!
//! OpenCV reads and writes controls (`CAP_PROP_BRIGHTNESS` and friends map
//! to V4L2 control ids in its V4L2 backend) but never says what range a
//! control has, and without one camloop cannot tell a client
//! `brightness must be 0..255` or draw a slider. So for every control
//! camloop knows, this module opens `/dev/video<N>` a second time (V4L2
//! allows any number of opens; control queries need no streaming rights)
//! and asks `VIDIOC_QUERYCTRL`, a non-blocking ioctl. A control the driver
//! does not have, or has disabled, is left out; so is everything on a
//! system where the query fails (a non-Linux system, a device node that is
//! not where the index says): camloop then offers no control it could not
//! check. Values themselves still go through OpenCV (see `opencv_source`),
//! whose V4L2 backend maps `CAP_PROP_BRIGHTNESS` and the others to the ids
//! below and passes values unscaled (its `OPENCV_VIDEOIO_V4L_RANGE_NORMALIZED`
//! mode, off by default, would scale them to 0..1), so the driver's ranges
//! are the ranges of the values camloop sends.
//!
//! No OpenCV: the mappings are tested without a camera or the `opencv`
//! feature. The ioctl itself, the one `unsafe` call, is
//! [`crate::sys::v4l2_query_control`].

/// The V4L2 control ids (`linux/v4l2-controls.h`) behind each name camloop
/// offers for a device. The user class starts at `V4L2_CID_BASE`
/// (0x00980900), the camera class at `V4L2_CID_CAMERA_CLASS_BASE` (0x009a0900).
pub const DEVICE_CONTROL_IDS: &[(&str, u32)] = &[
    ("brightness", 0x0098_0900),         // V4L2_CID_BRIGHTNESS
    ("contrast", 0x0098_0901),           // V4L2_CID_CONTRAST
    ("saturation", 0x0098_0902),         // V4L2_CID_SATURATION
    ("sharpness", 0x0098_091b),          // V4L2_CID_SHARPNESS
    ("gain", 0x0098_0913),               // V4L2_CID_GAIN
    ("exposure", 0x009a_0902),           // V4L2_CID_EXPOSURE_ABSOLUTE
    ("auto_exposure", 0x009a_0901),      // V4L2_CID_EXPOSURE_AUTO (a menu)
    ("white_balance", 0x0098_091a),      // V4L2_CID_WHITE_BALANCE_TEMPERATURE
    ("auto_white_balance", 0x0098_090c), // V4L2_CID_AUTO_WHITE_BALANCE
    ("focus", 0x009a_090a),              // V4L2_CID_FOCUS_ABSOLUTE
    ("autofocus", 0x009a_090c),          // V4L2_CID_FOCUS_AUTO
    ("zoom", 0x009a_090d),               // V4L2_CID_ZOOM_ABSOLUTE
];

/// `V4L2_EXPOSURE_MANUAL`: the `auto_exposure` menu entry camloop shows as 0.
pub const EXPOSURE_MENU_MANUAL: i64 = 1;
/// `V4L2_EXPOSURE_APERTURE_PRIORITY`: what UVC cameras call automatic
/// exposure (most refuse `V4L2_EXPOSURE_AUTO`, 0); camloop's 1.
pub const EXPOSURE_MENU_APERTURE_PRIORITY: i64 = 3;

/// `V4L2_CTRL_FLAG_DISABLED`: the driver lists the control but it does nothing.
const CTRL_FLAG_DISABLED: u32 = 0x0001;

/// The range of one device control, as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRange {
    /// camloop's name for it.
    pub name: &'static str,
    /// Smallest value, in camloop's terms (0 for `auto_exposure`).
    pub min: i64,
    /// Largest value (1 for `auto_exposure` and the other switches).
    pub max: i64,
}

/// The ranges of the controls `/dev/video<index>` has, in camloop's order;
/// empty when the device cannot be asked (see the module comment).
pub fn device_ranges(index: i32) -> Vec<DeviceRange> {
    ranges_at(&format!("/dev/video{index}"))
}

/// [`device_ranges`] of the device node at `path`.
fn ranges_at(path: &str) -> Vec<DeviceRange> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, like every descriptor near the loop; closed on drop.
    let device = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(device) => device,
        Err(error) => {
            log::warn!("{path}: cannot open to read control ranges ({error}); no controls offered");
            return Vec::new();
        }
    };
    DEVICE_CONTROL_IDS
        .iter()
        .filter_map(|&(name, id)| {
            let query = crate::sys::v4l2_query_control(&device, id)?;
            (query.flags & CTRL_FLAG_DISABLED == 0)
                .then(|| range_for(name, i64::from(query.minimum), i64::from(query.maximum)))
        })
        .collect()
}

/// A driver's range in camloop's terms: the exposure menu becomes a switch.
fn range_for(name: &'static str, min: i64, max: i64) -> DeviceRange {
    if name == "auto_exposure" {
        DeviceRange {
            name,
            min: 0,
            max: 1,
        }
    } else {
        DeviceRange { name, min, max }
    }
}

/// camloop's value for what OpenCV reads from the device: the exposure
/// menu is 0 when manual, 1 for any automatic mode.
pub fn from_device(name: &str, device_value: i64) -> i64 {
    if name == "auto_exposure" {
        i64::from(device_value != EXPOSURE_MENU_MANUAL)
    } else {
        device_value
    }
}

/// The device's value for camloop's `value`.
pub fn to_device(name: &str, value: i64) -> i64 {
    match (name, value) {
        ("auto_exposure", 0) => EXPOSURE_MENU_MANUAL,
        ("auto_exposure", _) => EXPOSURE_MENU_APERTURE_PRIORITY,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_control_has_a_known_name() {
        for (name, _) in DEVICE_CONTROL_IDS {
            assert!(
                crate::camera::controls::known_name(name).is_some(),
                "{name}"
            );
        }
        assert_eq!(
            DEVICE_CONTROL_IDS.len(),
            crate::camera::controls::CONTROL_NAMES.len()
        );
    }

    #[test]
    fn auto_exposure_is_a_switch_over_the_menu() {
        assert_eq!(
            range_for("auto_exposure", 0, 3),
            DeviceRange {
                name: "auto_exposure",
                min: 0,
                max: 1
            }
        );
        assert_eq!(to_device("auto_exposure", 0), EXPOSURE_MENU_MANUAL);
        assert_eq!(
            to_device("auto_exposure", 1),
            EXPOSURE_MENU_APERTURE_PRIORITY
        );
        assert_eq!(from_device("auto_exposure", 1), 0);
        assert_eq!(from_device("auto_exposure", 3), 1);
        assert_eq!(to_device("brightness", 7), 7);
    }

    #[test]
    fn a_missing_device_offers_nothing() {
        assert!(device_ranges(4242).is_empty());
    }

    /// The ioctl on something that is not a V4L2 device fails (ENOTTY)
    /// for every control, and nothing is offered.
    #[test]
    fn a_node_that_is_not_a_camera_offers_nothing() {
        assert!(ranges_at("/dev/null").is_empty());
    }
}
