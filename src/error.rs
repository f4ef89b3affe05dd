//! The error contract shared by every stage.
//!
//! Each module has its own `thiserror` enum; all of them implement [`Retryable`], which is what
//! the stage loops consult to choose between "back off and try again" (a service is down, a
//! time-out) and "this input will never succeed" (reject it, dead-letter it, or stop).

/// Whether an error is worth retrying with backoff.
pub trait Retryable {
    /// `true` when the same operation may succeed later without any change to its input.
    fn is_retryable(&self) -> bool;
}

/// An error and all its sources on one line ("a: b: c"), for a log field or a message header
/// where the whole story must fit in one string.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
