//! Fault messages for a parent's [`crate::Handler::fault`]: [`Fault`] decoded from the
//! message just received.

pub use atoll_abi::fault::Fault;

use crate::message::{MessageInfo, get_mr};

/// Decodes the fault message `msg_info` whose registers were just received.
pub(crate) fn decode(msg_info: MessageInfo) -> Fault {
    let mr = |i: usize| if i < msg_info.count() { get_mr(i) } else { 0 };
    Fault::from_parts(msg_info.label(), [mr(0), mr(1), mr(2), mr(3)])
}
