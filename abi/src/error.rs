//! Errors a system call or invocation returns, with seL4's numbering. Zero means success and
//! is never an `Error`.

/// Why an invocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Error {
    /// An argument is out of range or meaningless.
    InvalidArgument = 1,
    /// A capability argument is of the wrong type or lacks a right.
    InvalidCapability = 2,
    /// The operation is not allowed on this object or in this state.
    IllegalOperation = 3,
    /// A numeric argument lies outside the allowed range.
    RangeError = 4,
    /// An address or size is not aligned as it must be.
    AlignmentError = 5,
    /// Looking up a capability failed (empty slot, guard mismatch, depth).
    FailedLookup = 6,
    /// The message is shorter than the invocation needs.
    TruncatedMessage = 7,
    /// The destination slot is not empty.
    DeleteFirst = 8,
    /// The capability has derived capabilities that must be revoked first.
    RevokeFirst = 9,
    /// The untyped memory has too little room left.
    NotEnoughMemory = 10,
}

impl Error {
    /// Decodes a raw error; `None` for 0 (success) or an unknown value.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::InvalidArgument,
            2 => Self::InvalidCapability,
            3 => Self::IllegalOperation,
            4 => Self::RangeError,
            5 => Self::AlignmentError,
            6 => Self::FailedLookup,
            7 => Self::TruncatedMessage,
            8 => Self::DeleteFirst,
            9 => Self::RevokeFirst,
            10 => Self::NotEnoughMemory,
            _ => return None,
        })
    }
}
