//! System call numbers (in `x7`, as seL4 passes them) and the debug calls of debug builds.
//! The numbering follows seL4's MCS configuration.

/// Call: send and wait for the reply, on one capability.
pub const CALL: i64 = -1;
/// Reply to the last caller, then receive.
pub const REPLY_RECV: i64 = -2;
/// Send without blocking, then receive.
pub const NB_SEND_RECV: i64 = -3;
/// Send without blocking, then wait on a notification.
pub const NB_SEND_WAIT: i64 = -4;
/// Send, blocking.
pub const SEND: i64 = -5;
/// Send without blocking.
pub const NB_SEND: i64 = -6;
/// Receive, blocking.
pub const RECV: i64 = -7;
/// Receive without blocking.
pub const NB_RECV: i64 = -8;
/// Wait on a notification.
pub const WAIT: i64 = -9;
/// Poll a notification.
pub const NB_WAIT: i64 = -10;
/// Give up the rest of the time slice.
pub const YIELD: i64 = -11;
/// Debug builds: write one character (`x0`) to the console.
pub const DEBUG_PUT_CHAR: i64 = -12;
/// Debug builds: stop the calling thread for good.
pub const DEBUG_HALT: i64 = -13;
