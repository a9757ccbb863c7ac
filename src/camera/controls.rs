//! Camera controls (brightness, contrast, exposure, focus, ...) changed at
//! run time: the names, the value type, the errors, and the checks every
//! front end shares.
//!
//! The control port (`controls`, `get`, `set`), `GET`/`POST /controls` and
//! `--control NAME=VALUE` all go through [`crate::camera::pipeline::Camera`],
//! which validates with [`check_value`] before a source sees a value, so the
//! three agree on every reply. A source lists what it has with
//! [`crate::camera::FrameSource::controls`]; one that has none (a push source,
//! whose child or remote camera owns its settings) answers
//! [`ControlError::NotSupported`].

use std::fmt;

/// Every control name camloop knows, in the order `controls` lists them.
/// A source offers the subset it really has.
pub const CONTROL_NAMES: &[&str] = &[
    "brightness",
    "contrast",
    "saturation",
    "sharpness",
    "gain",
    "exposure",
    "auto_exposure",
    "white_balance",
    "auto_white_balance",
    "focus",
    "autofocus",
    "zoom",
];

/// The known name equal to `name` (case-insensitive), as a `'static` str.
pub fn known_name(name: &str) -> Option<&'static str> {
    CONTROL_NAMES
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(name))
}

/// One control's current value and its inclusive range. Booleans are 0..1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// One of [`CONTROL_NAMES`].
    pub name: &'static str,
    /// The value the camera reports now.
    pub value: i64,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
}

impl Control {
    /// `name=value/min..max`, as in the `controls` reply.
    pub fn described(&self) -> String {
        format!("{}={}/{}..{}", self.name, self.value, self.min, self.max)
    }
}

/// Why a control request failed. [`ControlError::area`] and
/// [`ControlError::reason`] make the control port's `ERR <area>: <reason>`
/// and the HTTP JSON error; [`ControlError::http_status`] the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// No control of that name on this source.
    Unknown(String),
    /// Not an integer in the control's range.
    OutOfRange {
        /// The control.
        name: &'static str,
        /// Its smallest value.
        min: i64,
        /// Its largest value.
        max: i64,
    },
    /// The request lacks the name or the value.
    Usage(&'static str),
    /// The source has no controls at all.
    NotSupported,
    /// The camera refused or is not open.
    Camera(String),
}

impl ControlError {
    /// The `ERR` area: `request` for the client's mistakes, `camera` for the camera's.
    pub fn area(&self) -> &'static str {
        match self {
            ControlError::Unknown(_) | ControlError::OutOfRange { .. } | ControlError::Usage(_) => {
                "request"
            }
            ControlError::NotSupported | ControlError::Camera(_) => "camera",
        }
    }

    /// The text after the area.
    pub fn reason(&self) -> String {
        match self {
            ControlError::Unknown(name) => format!("unknown control {name}"),
            ControlError::OutOfRange { name, min, max } => format!("{name} must be {min}..{max}"),
            ControlError::Usage(usage) => format!("usage: {usage}"),
            ControlError::NotSupported => "controls not supported by this source".to_string(),
            ControlError::Camera(reason) => reason.clone(),
        }
    }

    /// 400 for a bad value or request, 404 for an unknown control, 501 for
    /// a source without controls, 503 for a camera that is down.
    pub fn http_status(&self) -> u16 {
        match self {
            ControlError::OutOfRange { .. } | ControlError::Usage(_) => 400,
            ControlError::Unknown(_) => 404,
            ControlError::NotSupported => 501,
            ControlError::Camera(_) => 503,
        }
    }
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.area(), self.reason())
    }
}

/// Finds `name` among a source's `controls`.
pub fn find(controls: &[Control], name: &str) -> Result<Control, ControlError> {
    if name.is_empty() {
        return Err(ControlError::Usage("get <name>"));
    }
    controls
        .iter()
        .find(|control| control.name.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| ControlError::Unknown(name.to_string()))
}

/// Parses `value` for `control`: an integer within its range (`on`/`off`,
/// `true`/`false` also work for 0..1 controls).
pub fn check_value(control: &Control, value: &str) -> Result<i64, ControlError> {
    let out_of_range = ControlError::OutOfRange {
        name: control.name,
        min: control.min,
        max: control.max,
    };
    let boolean = (control.min, control.max) == (0, 1);
    let parsed = match value.to_ascii_lowercase().as_str() {
        "on" | "true" if boolean => Some(1),
        "off" | "false" if boolean => Some(0),
        text => text.parse::<i64>().ok(),
    };
    match parsed {
        Some(v) if (control.min..=control.max).contains(&v) => Ok(v),
        _ => Err(out_of_range),
    }
}

/// `brightness=60` (from `--control`) split into a known name and a value.
/// Only the name is checked here; the range needs the source.
pub fn parse_assignment(text: &str) -> Result<(&'static str, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("--control {text:?}: expected NAME=VALUE"))?;
    let name = known_name(name.trim()).ok_or_else(|| {
        format!(
            "--control {text}: unknown control {} (known: {})",
            name.trim(),
            CONTROL_NAMES.join(" ")
        )
    })?;
    Ok((name, value.trim().to_string()))
}

/// The `controls` reply: `OK name=value/min..max …`.
pub fn controls_line(controls: &[Control]) -> String {
    let mut line = String::from("OK");
    for control in controls {
        line.push(' ');
        line.push_str(&control.described());
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIGHTNESS: Control = Control {
        name: "brightness",
        value: 50,
        min: 0,
        max: 100,
    };

    #[test]
    fn values_outside_the_range_or_not_numbers_are_refused() {
        assert_eq!(check_value(&BRIGHTNESS, "100"), Ok(100));
        assert_eq!(check_value(&BRIGHTNESS, "0"), Ok(0));
        for bad in ["101", "-1", "abc", "", "5.5", "on"] {
            let error = check_value(&BRIGHTNESS, bad).unwrap_err();
            assert_eq!(error.to_string(), "request: brightness must be 0..100");
        }
    }

    #[test]
    fn booleans_take_on_and_off_too() {
        let auto = Control {
            name: "auto_exposure",
            value: 1,
            min: 0,
            max: 1,
        };
        assert_eq!(check_value(&auto, "off"), Ok(0));
        assert_eq!(check_value(&auto, "ON"), Ok(1));
        assert!(check_value(&auto, "2").is_err());
    }

    #[test]
    fn assignments_name_a_known_control() {
        assert_eq!(
            parse_assignment("Brightness=60"),
            Ok(("brightness", "60".to_string()))
        );
        assert!(parse_assignment("brightness")
            .unwrap_err()
            .contains("NAME=VALUE"));
        assert!(parse_assignment("hue=3")
            .unwrap_err()
            .contains("unknown control hue"));
    }

    #[test]
    fn the_line_lists_name_value_and_range() {
        assert_eq!(
            controls_line(&[BRIGHTNESS]),
            "OK brightness=50/0..100".to_string()
        );
        assert_eq!(controls_line(&[]), "OK");
    }
}
