use alloc::vec;
use alloc::vec::Vec;

use atoll_channels::kv::{
    KV_FLAG_CREATED, KV_FLAG_TRUNCATED, KV_MAX_VALUE, Request, Status, list_keys,
};
use atoll_kv::{RamDevice, Store};

use super::{Answer, handle};

fn store(blocks: usize) -> Store<RamDevice> {
    Store::format(RamDevice::new(blocks), 0x5eed).expect("formatted")
}

fn run(store: &mut Store<RamDevice>, request: &Request<'_>) -> (Answer, Vec<u8>) {
    let mut out = vec![0u8; KV_MAX_VALUE];
    let (answer, _) = handle(store, request, &mut out);
    out.truncate(answer.len);
    (answer, out)
}

#[test]
fn put_get_replace_delete() {
    let mut s = store(4096);
    let (a, _) = run(
        &mut s,
        &Request::Put {
            key: b"k",
            value: b"one",
        },
    );
    assert_eq!((a.status, a.flags), (Status::Ok, KV_FLAG_CREATED));
    let (a, _) = run(
        &mut s,
        &Request::Put {
            key: b"k",
            value: b"two",
        },
    );
    assert_eq!((a.status, a.flags), (Status::Ok, 0));
    let (a, body) = run(&mut s, &Request::Get { key: b"k" });
    assert_eq!((a.status, body.as_slice()), (Status::Ok, &b"two"[..]));
    assert_eq!(
        run(&mut s, &Request::Delete { key: b"k" }).0.status,
        Status::Ok
    );
    assert_eq!(
        run(&mut s, &Request::Delete { key: b"k" }).0.status,
        Status::NotFound
    );
    assert_eq!(
        run(&mut s, &Request::Get { key: b"k" }).0.status,
        Status::NotFound
    );
    let big = vec![7u8; KV_MAX_VALUE];
    assert_eq!(
        run(
            &mut s,
            &Request::Put {
                key: b"big",
                value: &big
            }
        )
        .0
        .status,
        Status::Ok
    );
    let (a, body) = run(&mut s, &Request::Get { key: b"big" });
    assert_eq!((a.status, body.len()), (Status::Ok, KV_MAX_VALUE));
    assert_eq!(body, big);
}

#[test]
fn a_bad_key_is_a_bad_request_and_a_full_store_says_so() {
    let mut s = store(64);
    let long = [b'k'; 256];
    assert_eq!(
        run(&mut s, &Request::Get { key: &long }).0.status,
        Status::BadRequest
    );
    let value = vec![1u8; 8192];
    let mut full = false;
    for i in 0..32u8 {
        match run(
            &mut s,
            &Request::Put {
                key: &[b'a', i],
                value: &value,
            },
        )
        .0
        .status
        {
            Status::Ok => {}
            Status::Full => {
                full = true;
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(full, "a 64-block store took 32 values of 8 KiB");
}

#[test]
fn list_filters_by_prefix_continues_after_a_key_and_says_when_truncated() {
    let mut s = store(8192);
    for key in [&b"a/1"[..], b"a/2", b"a/3", b"b/1"] {
        assert_eq!(
            run(&mut s, &Request::Put { key, value: b"v" }).0.status,
            Status::Ok
        );
    }
    let (a, body) = run(
        &mut s,
        &Request::List {
            prefix: b"a/",
            start_after: b"a/1",
        },
    );
    assert_eq!((a.status, a.flags), (Status::Ok, 0));
    let keys: Vec<&[u8]> = list_keys(&body).collect();
    assert_eq!(keys, [&b"a/2"[..], b"a/3"]);
    // 300 keys of 255 bytes do not fit in one answer.
    for i in 0..300u32 {
        let mut key = [b'x'; 255];
        key[..4].copy_from_slice(&i.to_be_bytes());
        assert_eq!(
            run(
                &mut s,
                &Request::Put {
                    key: &key,
                    value: b""
                }
            )
            .0
            .status,
            Status::Ok
        );
    }
    let (a, body) = run(
        &mut s,
        &Request::List {
            prefix: b"",
            start_after: b"",
        },
    );
    assert_eq!(a.flags, KV_FLAG_TRUNCATED);
    let first: Vec<Vec<u8>> = list_keys(&body).map(<[u8]>::to_vec).collect();
    assert!(first.len() > 200 && first.len() < 304, "{}", first.len());
    let last = first.last().expect("keys").clone();
    let (a, body) = run(
        &mut s,
        &Request::List {
            prefix: b"",
            start_after: &last,
        },
    );
    assert_eq!(a.flags, 0);
    assert_eq!(first.len() + list_keys(&body).count(), 304);
}
