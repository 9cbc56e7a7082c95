//! The real-time statistics region as a reader in another replica sees it, written by a
//! hostile or broken writer: the fuzz input is the region's bytes (cut or padded to a page).
//! Reading it, and everything a reader computes from a copy (means, percentiles, the
//! histogram's buckets), must never panic or loop.
#![no_main]
#![forbid(unsafe_code)]

use atoll_channels::rt::{BUCKETS, Histogram, RT_REGION_BYTES, RtRegion};
use libfuzzer_sys::fuzz_target;
use zerocopy::FromBytes;

fuzz_target!(|input: &[u8]| {
    let mut bytes = [0u8; RT_REGION_BYTES];
    let n = input.len().min(RT_REGION_BYTES);
    bytes[..n].copy_from_slice(&input[..n]);
    let Ok(region) = RtRegion::read_from_bytes(&bytes) else {
        return;
    };
    let Some(snapshot) = region.read(3) else {
        return;
    };
    for w in [&snapshot.total, &snapshot.last] {
        for h in [&w.jitter, &w.response] {
            let _ = (h.min(), h.mean(), h.quantile(990_000), h.quantile(999_000));
            let _ = h.quantile(u64::MAX);
            for i in 0..=BUCKETS {
                let _ = Histogram::bucket_start(i);
            }
        }
        let _ = w.path_mean_ns();
    }
});
