//! The domain scheduler's invocations on the replica's DomainSet capability (seL4's):
//! `DomainSet_Set` puts a thread in a domain, and the schedule is configured entry by entry
//! and started (`crate::domains` keeps it; the scheduler applies it).

use atoll_abi::error::Error;
use atoll_abi::syscall::{domains, label};

use super::invoke::Args;
use super::{Kernel, Machine};
use crate::domains::DomainError;
use crate::id::ThreadId;

/// A checked domain-set invocation.
pub(super) enum DomainInvocation {
    /// Put `thread` in `domain`.
    Set { thread: ThreadId, domain: u8 },
    /// Entry `index` runs `domain` for `duration` timer units (0: an end marker).
    Configure {
        index: usize,
        domain: u8,
        duration: u64,
    },
    /// Start the schedule at entry `index`.
    Start { index: usize },
}

impl From<DomainError> for Error {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Range => Error::RangeError,
            DomainError::Invalid => Error::InvalidArgument,
        }
    }
}

impl Kernel {
    /// Decodes a domain-set invocation of thread `t`. The schedule's own rules (indices,
    /// end markers) are checked when it is changed, which changes nothing on refusal.
    pub(super) fn decode_domain(
        &self,
        m: &impl Machine,
        t: ThreadId,
        op: u64,
        args: &Args,
    ) -> Result<DomainInvocation, Error> {
        let small = |v: u64| usize::try_from(v).map_err(|_| Error::RangeError);
        match op {
            label::DOMAIN_SET_SET => {
                let domain = args.get(0)?;
                let thread = self.tcb_arg(t, args.get(1)?)?;
                if domain >= domains::COUNT {
                    return Err(Error::InvalidArgument);
                }
                Ok(DomainInvocation::Set {
                    thread,
                    domain: domain as u8,
                })
            }
            label::DOMAIN_SET_SCHEDULE_CONFIGURE => {
                let domain = args.get(1)?;
                let duration = match args.get(3)? {
                    domains::MICROSECONDS => super::ticks_from_us(args.get(2)?, m.counter_hz())
                        .ok_or(Error::InvalidArgument)?,
                    domains::COUNTER_TICKS => args.get(2)?,
                    _ => return Err(Error::InvalidArgument),
                };
                Ok(DomainInvocation::Configure {
                    index: small(args.get(0)?)?,
                    domain: u8::try_from(domain).map_err(|_| Error::RangeError)?,
                    duration,
                })
            }
            label::DOMAIN_SET_SCHEDULE_START => Ok(DomainInvocation::Start {
                index: small(args.get(0)?)?,
            }),
            _ => Err(Error::IllegalOperation),
        }
    }

    /// Performs a domain-set invocation.
    pub(super) fn invoke_domain(&mut self, request: DomainInvocation) -> Result<(), Error> {
        let sched = &mut self.objects.sched;
        match request {
            DomainInvocation::Set { thread, domain } => sched
                .set_domain(thread, domain)
                .map_err(|_| Error::InvalidCapability),
            DomainInvocation::Configure {
                index,
                domain,
                duration,
            } => Ok(sched.configure_domain(index, domain, duration)?),
            DomainInvocation::Start { index } => Ok(sched.start_domains(index)?),
        }
    }
}
