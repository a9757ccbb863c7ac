//! camloop: a single-threaded `mio` camera server.
//!
//! One hand-rolled event loop owns every socket and the camera. See
//! `ARCHITECTURE.md` for the life of a request and of a frame.

pub mod camera;
pub mod load;
