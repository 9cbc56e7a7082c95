//! The system directory (`<setvar symbol="…" directory="system"/>`, Atoll extension): the
//! replicas of the system in index order, each with its name and cores, and the PDs
//! grouped by replica, each replica's in document order (children included), encoded as an
//! `atoll_abi::directory::Directory` for the patcher to write over the symbol.

use std::fmt;

use atoll_abi::directory::{Directory, pd_flags};
use serde::Serialize;
use zerocopy::IntoBytes;

use super::error;
use crate::diagnostics::{Code, Diagnostic};
use crate::model::{SetvarValue, SystemDescription};

/// The encoded directory, as a symbol patch carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectoryPatch {
    /// Replicas listed.
    pub replicas: u32,
    /// PDs listed.
    pub pds: u32,
    /// The `Directory`'s bytes (`size_of::<Directory>()` of them).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for DirectoryPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryPatch")
            .field("replicas", &self.replicas)
            .field("pds", &self.pds)
            .field("size", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for DirectoryPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the system directory: {} replicas, {} PDs ({} bytes)",
            self.replicas,
            self.pds,
            self.bytes.len()
        )
    }
}

/// The reports show the counts, the size and a checksum, not the bytes: the names are in
/// the plan already.
impl Serialize for DirectoryPatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Summary {
            replicas: u32,
            pds: u32,
            size: usize,
            crc32: String,
        }
        Summary {
            replicas: self.replicas,
            pds: self.pds,
            size: self.bytes.len(),
            crc32: format!("{:#010x}", atoll_abi::crc32::checksum(&self.bytes)),
        }
        .serialize(s)
    }
}

/// The directory of `system`; `Err` names what does not fit (validation refuses names
/// that are too long, and the PD limit is below the directory's, so it always fits a
/// validated system).
pub fn encode(system: &SystemDescription) -> Result<Directory, String> {
    let mut directory = Directory::new();
    for replica in system.replicas.values() {
        let cores = replica.cores.iter().try_fold(0u64, |cores, &core| {
            1u64.checked_shl(core)
                .map(|bit| cores | bit)
                .ok_or_else(|| format!("replica '{}': core {core} has no bit", replica.name))
        })?;
        directory
            .push_replica(&replica.name, cores)
            .ok_or_else(|| format!("replica '{}' does not fit", replica.name))?;
        for &index in &replica.protection_domains {
            let Some((name, pd)) = system.protection_domains.get_index(index) else {
                return Err(format!("replica '{}': no PD {index}", replica.name));
            };
            let flags = [
                (pd.passive, pd_flags::PASSIVE),
                (pd.restart, pd_flags::RESTART),
                (pd.parent.is_some(), pd_flags::CHILD),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .fold(0, |flags, (_, flag)| flags | flag);
            directory
                .push_pd(name, pd.core, u32::from(pd.priority), flags)
                .ok_or_else(|| format!("protection domain '{name}' does not fit"))?;
        }
    }
    Ok(directory)
}

/// The patch for every `<setvar directory="system">`, if some PD asks for one.
pub(super) fn plan(
    system: &SystemDescription,
    errors: &mut Vec<Diagnostic>,
) -> Option<DirectoryPatch> {
    let asking = system
        .protection_domains
        .values()
        .find(|pd| pd.setvars.iter().any(|s| s.value == SetvarValue::Directory))?;
    match encode(system) {
        Ok(directory) => Some(DirectoryPatch {
            replicas: directory.replica_count,
            pds: directory.pd_count,
            bytes: directory.as_bytes().to_vec(),
        }),
        Err(why) => {
            errors.push(error(
                Code::InvalidValue,
                asking.span,
                format!("the system directory cannot be built: {why}"),
            ));
            None
        }
    }
}
