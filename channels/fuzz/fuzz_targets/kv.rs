//! Both ends of the key-value protocol against a hostile peer: the fuzz input is a sequence
//! of steps, each a write of any value to any word of the control lines and queues (all but
//! padding, which nothing reads), a write of any bytes anywhere in the data region, or a step
//! of the honest client or the honest store (submit, poll, serve, connect, close, restart,
//! signals). Neither end may panic; a drain must stop after at most what a queue holds; the
//! store hands its caller only requests within the protocol's limits and never holds more
//! than the buffers; the client returns each ticket at most once and only while it is in
//! flight, results only within the caller's buffer, and every buffer is free or in flight.
#![no_main]
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use atoll_channels::kv::{
    KV_BUF_SIZE, KV_BUFFERS, KV_MAX_VALUE, KV_QUEUE_SLOTS, KV_REGION_BYTES, KV_SCRATCH_BYTES,
    KvError, KvRegion, KvServer, ListWriter, Request, Status, Ticket, check_list,
};
use atoll_channels::kv::{KV_FLAG_CREATED, Op};
use core::sync::atomic::Ordering;
use libfuzzer_sys::fuzz_target;

/// Writes `value` to word `word` of the region's control lines and queues.
fn poke(region: &KvRegion<'_>, word: u8, value: u64) {
    let (r, v32) = (Ordering::Relaxed, value as u32);
    let (store, client) = (region.store_control(), region.client_control());
    match word % 45 {
        0 => store.magic.store(v32, r),
        1 => store.version.store(v32, r),
        2 => store.epoch.store(v32, r),
        3 => store.accepted.store(v32, r),
        4 => client.requested.store(v32, r),
        w => {
            let w = w - 5;
            let queue = if w < 20 {
                region.requests()
            } else {
                region.responses()
            };
            let q = queue.shared();
            match w % 20 {
                0 => q.header.magic.store(v32, r),
                1 => q.header.version.store(v32, r),
                2 => q.header.capacity.store(v32, r),
                3 => q.header.buffers.store(v32, r),
                4 => q.header.buf_size.store(v32, r),
                5 => q.producer.value.store(v32, r),
                6 => q.consumer.value.store(v32, r),
                7 => q.signal.wanted.store(v32, r),
                s => {
                    let slot = &q.slots[(usize::from(s) - 8) / 3];
                    match (s - 8) % 3 {
                        0 => slot.offset.store(value, r),
                        1 => slot.len.store(v32, r),
                        _ => slot.flags.store(v32, r),
                    }
                }
            }
        }
    }
}

/// The store's answer from a small map.
fn answer(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, request: &Request<'_>) -> (Status, u32, Vec<u8>) {
    match *request {
        Request::Get { key } => match map.get(key) {
            Some(value) => (Status::Ok, 0, value.clone()),
            None => (Status::NotFound, 0, vec![]),
        },
        Request::Put { key, value } => {
            let created = map.insert(key.to_vec(), value.to_vec()).is_none();
            (
                Status::Ok,
                if created { KV_FLAG_CREATED } else { 0 },
                vec![],
            )
        }
        Request::Delete { key } => match map.remove(key) {
            Some(_) => (Status::Ok, 0, vec![]),
            None => (Status::NotFound, 0, vec![]),
        },
        Request::List {
            prefix,
            start_after,
        } => {
            let mut out = vec![0u8; KV_MAX_VALUE];
            let mut writer = ListWriter::new(&mut out);
            for key in map.keys() {
                if key.starts_with(prefix) && key.as_slice() > start_after && !writer.push(key) {
                    break;
                }
            }
            (Status::Ok, writer.flags(), writer.body().to_vec())
        }
    }
}

/// The store drains its queue, answering each request.
fn serve(server: &mut KvServer<'_>, map: &mut BTreeMap<Vec<u8>, Vec<u8>>, scratch: &mut [u8]) {
    for _ in 0..=KV_QUEUE_SLOTS {
        match server.next(scratch) {
            None => return,
            Some(Ok((token, request))) => {
                assert!(request.check().is_ok(), "a request beyond the limits");
                assert_eq!(token.op(), request.op());
                let (status, flags, body) = answer(map, &request);
                if let Err(e) = server.reply(token, status, flags, &body) {
                    assert!(
                        matches!(e, atoll_channels::kv::ReplyError::Lost(_)),
                        "reply: {e:?}"
                    );
                }
                assert!(server.held() <= KV_BUFFERS);
            }
            Some(Err(_)) => {}
        }
    }
    panic!("the store took more than the queue holds");
}

fuzz_target!(|data: &[u8]| {
    let mut backing = vec![0u8; KV_REGION_BYTES + 64];
    let at = backing.as_ptr().align_offset(64);
    let Some(bytes) = backing.get_mut(at..at + KV_REGION_BYTES) else {
        return;
    };
    let Ok(region) = KvRegion::init(bytes) else {
        return;
    };
    let mut server = region.clone().server();
    let mut client = region.clone().client();
    let mut scratch = vec![0u8; KV_SCRATCH_BYTES];
    // Short on purpose: results longer than this are the caller's problem, not a panic.
    let mut out = vec![0u8; 300];
    let mut map = BTreeMap::new();
    let mut outstanding: BTreeSet<Ticket> = BTreeSet::new();
    let mut input = data.iter().copied();
    let mut byte = move || input.next();
    while let Some(step) = byte() {
        match step % 12 {
            0..=3 => {
                let word = byte().unwrap_or(0);
                let mut value = [0u8; 8];
                for b in &mut value {
                    *b = byte().unwrap_or(0);
                }
                poke(&region, word, u64::from_le_bytes(value));
            }
            4 => {
                let buffer = u32::from(byte().unwrap_or(0)) % KV_BUFFERS;
                let hi = usize::from(byte().unwrap_or(0));
                let lo = usize::from(byte().unwrap_or(0));
                // Mostly the header, sometimes anywhere.
                let at = if hi & 1 == 0 {
                    lo % 64
                } else {
                    (hi << 8 | lo) * 2 % KV_BUF_SIZE as usize
                };
                let len = usize::from(byte().unwrap_or(0) % 9);
                let bytes: Vec<u8> = (0..len).map(|_| byte().unwrap_or(0)).collect();
                if let Some(window) = region.data().buffer(buffer) {
                    let at = at.min(window.len() - bytes.len());
                    window.write(at, &bytes).expect("within the buffer");
                }
            }
            5 => match client.connect() {
                Err(KvError::SessionLost) => outstanding.clear(),
                _ if !client.is_open() => assert!(outstanding.is_empty()),
                _ => {}
            },
            6 => {
                let op = byte().unwrap_or(0);
                let key_len = usize::from(byte().unwrap_or(1));
                let fill = byte().unwrap_or(b'a');
                let value_len = usize::from(byte().unwrap_or(0)) * 3;
                let key = vec![fill; key_len];
                let value = vec![fill ^ 0x55; value_len];
                let request = match op % 4 {
                    0 => Request::Get { key: &key },
                    1 => Request::Put {
                        key: &key,
                        value: &value,
                    },
                    2 => Request::Delete { key: &key },
                    _ => Request::List {
                        prefix: &key[..key_len.min(2)],
                        start_after: &value[..value_len.min(3)],
                    },
                };
                match client.submit(&request) {
                    Ok(ticket) => assert!(outstanding.insert(ticket), "a ticket issued twice"),
                    Err(KvError::SessionLost) => outstanding.clear(),
                    Err(_) => {}
                }
            }
            7 => {
                for taken in 0.. {
                    assert!(taken <= KV_QUEUE_SLOTS + 1, "more than the queue holds");
                    match client.poll(&mut out) {
                        Ok(None) => break,
                        Ok(Some((ticket, response))) => {
                            assert!(outstanding.remove(&ticket), "a ticket not in flight");
                            assert!(response.len <= out.len());
                            if response.op == Op::List && response.status == Status::Ok {
                                assert!(check_list(&out[..response.len]).is_ok());
                            }
                        }
                        Err(
                            KvError::BadResponse { ticket, .. }
                            | KvError::OutputTooSmall { ticket, .. },
                        ) => assert!(outstanding.remove(&ticket), "a ticket not in flight"),
                        Err(KvError::SessionLost) => outstanding.clear(),
                        Err(KvError::Corrupt(_) | KvError::NotInFlight(_)) => {}
                        Err(e) => panic!("poll: {e:?}"),
                    }
                }
            }
            8 => serve(&mut server, &mut map, &mut scratch),
            9 => {
                let _ = (server.notify_needed(), server.ready_to_wait());
                let _ = (client.notify_needed(), client.ready_to_wait());
            }
            10 => {
                client.close();
                outstanding.clear();
            }
            _ => server.restart(),
        }
        if client.is_open() {
            assert_eq!(client.free_buffers() + client.in_flight(), KV_BUFFERS);
            assert_eq!(client.in_flight() as usize, outstanding.len());
        } else {
            assert_eq!(client.in_flight(), 0);
        }
        assert!(server.held() <= KV_BUFFERS);
    }
});
