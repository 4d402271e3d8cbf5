//! Pure types and decisions: no I/O, no async, no clock reads.
pub mod alert;
pub mod calendar;
pub mod classify;
pub mod incident;
pub mod inquiry;
pub mod investigation;
pub mod kql;
pub mod monthly;
pub mod response;
pub mod severity;
pub mod tenant;
