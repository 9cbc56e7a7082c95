//! The storage replica end to end, through the HTTP API's `/kv/{key}` with real clients:
//!
//! - **kill tests**: a client streams `PUT`s and `DELETE`s and records every one the
//!   service acknowledged; QEMU is killed (`SIGKILL`) at a random moment; the system boots
//!   again on the same disk image, and every acknowledged write must read back exactly, the
//!   one in flight at the kill either wholly or not at all. `cargo xtask test` runs
//!   [`SUITE_POINTS`] kill points on `virt` and [`SD_POINTS`] on `zcu102` (its disk is an
//!   SD card); `cargo xtask crash-test` runs 200 (`ATOLL_CRASH_POINTS`).
//!
//! - **a damaged disk**: random bytes of the log's records flipped in the image between two
//!   boots; the store reports exactly those records dropped and serves every other one;
//! - **every board** keeps a value across a kill (`curl -X PUT`, kill, boot again, `GET`).
//!
//! The random choices come from a seed printed at the start (`ATOLL_CRASH_SEED` repeats
//! one).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atoll_e2e::boot::Boot;
use atoll_e2e::service::{
    EXCHANGE, Response, boot, free_port, fresh_disk, read_one, wait_for_store, wait_until_serving,
    with_running,
};
use atoll_e2e::variants::{SERVICE, STORAGE_CLIENTS};

/// Kill points the suite runs on `virt`.
const SUITE_POINTS: usize = 16;
/// Kill points the suite runs on `zcu102`, whose disk is an SD card.
const SD_POINTS: usize = 4;
/// Distinct keys the writer uses (so that values are replaced and deleted often).
const KEYS: u64 = 48;

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the store must hold: each key's last acknowledged value (`None`: deleted), and
/// the operation in flight when QEMU was killed.
#[derive(Default)]
struct Model {
    acked: BTreeMap<String, Option<Vec<u8>>>,
    in_flight: Option<(String, Option<Vec<u8>>)>,
    acknowledged: u64,
}

/// A request on a kept connection; its response, or `None` if the connection broke.
fn send(stream: &mut TcpStream, method: &str, key: &str, body: &[u8]) -> Option<Response> {
    let mut request = format!("{method} /kv/{key} HTTP/1.1\r\nHost: t\r\n").into_bytes();
    if method == "PUT" {
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request).ok()?;
    read_one(stream)
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(EXCHANGE)).expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Reads every key of the model back and checks it; the operation in flight at the kill
/// may have happened or not, and the model then takes what the store holds.
fn verify(port: u16, model: &mut Model, point: usize) {
    let mut stream = connect(port);
    let in_flight = model.in_flight.take();
    let mut keys: Vec<String> = model.acked.keys().cloned().collect();
    if let Some((key, _)) = &in_flight
        && !model.acked.contains_key(key)
    {
        keys.push(key.clone());
    }
    for key in keys {
        let answer = send(&mut stream, "GET", &key, b"").expect("the GET is answered");
        let held = match answer.code {
            200 => Some(answer.body),
            404 => None,
            code => panic!("kill point {point}: GET {key}: {code} {}", answer.head),
        };
        let old = model.acked.get(&key).cloned().flatten();
        match &in_flight {
            Some((k, new)) if *k == key => {
                assert!(
                    held == old || held == *new,
                    "kill point {point}: {key} holds {:?} bytes, neither the acknowledged \
                     value ({:?} bytes) nor the one in flight ({:?} bytes)",
                    held.as_ref().map(Vec::len),
                    old.as_ref().map(Vec::len),
                    new.as_ref().map(Vec::len),
                );
                model.acked.insert(key, held);
            }
            _ => assert!(
                held == old,
                "kill point {point}: {key} holds {:?} bytes, not its acknowledged value \
                 ({:?} bytes)",
                held.as_ref().map(Vec::len),
                old.as_ref().map(Vec::len),
            ),
        }
    }
}

/// Streams writes until the connection breaks or `stop` is set, recording each
/// acknowledged one and the one in flight.
fn write_until_killed(port: u16, model: &Mutex<Model>, seed: u64, stop: &AtomicBool) {
    let mut rng = Rng(seed | 1);
    let mut stream = connect(port);
    while !stop.load(Ordering::Relaxed) {
        let key = format!("key-{}", rng.below(KEYS));
        let delete = rng.below(8) == 0;
        let value: Option<Vec<u8>> = (!delete).then(|| {
            let len = match rng.below(16) {
                0 => 65536,
                1 => 0,
                _ => 1 + rng.below(8192) as usize,
            };
            (0..len).map(|_| rng.next() as u8).collect()
        });
        model.lock().expect("model").in_flight = Some((key.clone(), value.clone()));
        let answer = match &value {
            Some(v) => send(&mut stream, "PUT", &key, v),
            None => send(&mut stream, "DELETE", &key, b""),
        };
        let Some(answer) = answer else {
            return; // killed with this one in flight
        };
        let ok = match &value {
            Some(_) => matches!(answer.code, 201 | 204),
            None => matches!(answer.code, 204 | 404),
        };
        assert!(ok, "{key}: {} {}", answer.code, answer.head);
        let mut m = model.lock().expect("model");
        m.in_flight = None;
        m.acked.insert(key, value);
        m.acknowledged += 1;
    }
}

/// `points` kill points on `board`, each a boot on the same disk, a check of everything
/// acknowledged so far, a stream of writes and a kill at a random moment.
fn kill_test(board: &str, points: usize) {
    let seed = seed();
    eprintln!("{board}: {points} kill points, seed {seed} (ATOLL_CRASH_SEED repeats it)");
    let mut rng = Rng(seed | 1);
    // The tests' small disk: the log fills and compacts within a few kill points.
    let disk = fresh_disk(board, "kill");
    let model = Arc::new(Mutex::new(Model::default()));
    for point in 0..=points {
        let port = free_port();
        let label = format!("kill-{point}");
        let mut qemu = boot(board, &SERVICE, &label, port, Some(&disk));
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until_serving(&mut qemu, port);
            wait_for_store(port);
            verify(port, &mut model.lock().expect("model"), point);
        }));
        if point == points || checked.is_err() {
            let outcome = qemu.stop().expect("the serial log");
            if let Err(panic) = checked {
                eprintln!("serial log saved at {}", outcome.log_path.display());
                std::panic::resume_unwind(panic);
            }
            assert!(
                outcome.serial.contains("storage: opened the store"),
                "the store did not say it opened: {}",
                outcome.log_path.display()
            );
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let model = Arc::clone(&model);
            let stop = Arc::clone(&stop);
            let seed = rng.next();
            std::thread::spawn(move || write_until_killed(port, &model, seed, &stop))
        };
        std::thread::sleep(Duration::from_millis(300 + rng.below(1700)));
        // SIGKILL: QEMU gets no chance to flush or finish anything.
        let outcome = qemu.stop().expect("the serial log");
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = writer.join() {
            eprintln!("serial log saved at {}", outcome.log_path.display());
            std::panic::resume_unwind(panic);
        }
        for bad in ["panicked", "|ERROR", "faulted"] {
            assert!(
                !outcome.serial.contains(bad),
                "kill point {point}: the log has {bad:?}: {}",
                outcome.log_path.display()
            );
        }
    }
    let m = model.lock().expect("model");
    eprintln!(
        "{board}: {points} kill points, {} writes acknowledged, {} keys held",
        m.acknowledged,
        m.acked.values().filter(|v| v.is_some()).count()
    );
    // Each round wrote something before its kill (a round writes for at least 300 ms).
    assert!(
        m.acknowledged >= points as u64,
        "only {} writes were acknowledged over {points} kill points",
        m.acknowledged
    );
}

/// A seed: `ATOLL_CRASH_SEED`, or the clock.
fn seed() -> u64 {
    std::env::var("ATOLL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

/// Boots `board` on `disk`, waits for the store and runs `checks` on its port; stops QEMU
/// (a kill) and returns the serial log.
fn with_store(
    board: &str,
    label: &str,
    disk: &std::path::Path,
    checks: impl FnOnce(u16),
) -> String {
    with_running(board, &SERVICE, label, disk, |port| {
        wait_for_store(port);
        checks(port);
    })
}

/// `curl -X PUT .../kv/k -d v`, a kill, a boot on the same disk, and `v` comes back.
fn keeps_a_value_across_a_kill(board: &str) {
    let disk = fresh_disk(board, "persist");
    let value = format!("value written on {board}");
    with_store(board, "persist-1", &disk, |port| {
        let answer = send(&mut connect(port), "PUT", "k", value.as_bytes()).expect("answered");
        assert_eq!(answer.code, 201, "{}", answer.head);
    });
    with_store(board, "persist-2", &disk, |port| {
        let answer = send(&mut connect(port), "GET", "k", b"").expect("answered");
        assert_eq!(answer.code, 200, "{}", answer.head);
        assert_eq!(answer.body, value.as_bytes());
    });
}

#[test]
fn qemu_virt_aarch64_keeps_a_value_across_a_kill() {
    keeps_a_value_across_a_kill("qemu_virt_aarch64");
}

#[test]
fn zcu102_keeps_a_value_across_a_kill() {
    keeps_a_value_across_a_kill("zcu102");
}

#[test]
fn imx8mp_evk_keeps_a_value_across_a_kill() {
    keeps_a_value_across_a_kill("imx8mp_evk");
}

/// One record of the log, as the host reads it from the image.
struct Found {
    /// Its first byte in the image.
    at: usize,
    /// The bytes its checks cover (header, key and value).
    len: usize,
    key: String,
    value: Vec<u8>,
}

/// The records of the active half of the store in `image`, in order, up to the first that
/// does not decode.
fn records(image: &[u8]) -> Vec<Found> {
    let blocks = (image.len() / 512) as u64;
    let block =
        |n: usize| -> [u8; 512] { image[n * 512..(n + 1) * 512].try_into().expect("a block") };
    let (sb, _) = atoll_kv::choose_superblock(&block(0), &block(1), blocks);
    let sb = sb.expect("a valid superblock");
    let start = 2 + sb.active as usize * sb.half_blocks as usize;
    let end = (start + sb.half_blocks as usize) * 512;
    let mut at = start * 512;
    let mut found = Vec::new();
    while let Some(record) = atoll_kv::decode_record(sb.nonce, &image[at..end]) {
        let len = atoll_kv::HEADER_LEN + record.key.len() + record.value.len();
        found.push(Found {
            at,
            len,
            key: String::from_utf8(record.key.clone()).expect("the test's keys"),
            value: record.value.clone(),
        });
        at += atoll_kv::record_blocks(record.key.len(), record.value.len()) as usize * 512;
    }
    found
}

/// The store on a disk whose records were damaged between two boots: it boots, reports
/// exactly the damaged records as dropped, serves every other record exactly and answers
/// `404` for the damaged ones (each key was written once, so nothing older comes back).
#[test]
fn qemu_virt_aarch64_serves_every_undamaged_record_of_a_damaged_disk() {
    const BOARD: &str = "qemu_virt_aarch64";
    const KEYS: usize = 60;
    let seed = seed();
    eprintln!("damaged disk: seed {seed} (ATOLL_CRASH_SEED repeats it)");
    let mut rng = Rng(seed | 1);
    let disk = fresh_disk(BOARD, "damaged");
    let values: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| {
            (0..(1 + rng.below(3000)) as usize)
                .map(|j| (i * 7 + j) as u8)
                .collect()
        })
        .collect();
    with_store(BOARD, "damaged-1", &disk, |port| {
        let mut stream = connect(port);
        for (i, value) in values.iter().enumerate() {
            let answer = send(&mut stream, "PUT", &format!("d-{i}"), value).expect("answered");
            assert_eq!(answer.code, 201, "{}", answer.head);
        }
    });
    let mut image = std::fs::read(&disk).expect("the image");
    let found = records(&image);
    assert_eq!(found.len(), KEYS, "the host reads every record back");
    // Damage a few records (not the last: a bad last record is a torn tail, which is a
    // crash's doing and counted as such), one byte each, in the header or the body.
    let mut damaged = std::collections::BTreeSet::new();
    while damaged.len() < 5 {
        damaged.insert(rng.below(KEYS as u64 - 1) as usize);
    }
    for &i in &damaged {
        let byte = found[i].at + rng.below(found[i].len as u64) as usize;
        image[byte] ^= 1 << rng.below(8);
    }
    std::fs::write(&disk, &image).expect("the damaged image");
    let serial = with_store(BOARD, "damaged-2", &disk, |port| {
        let mut stream = connect(port);
        for (i, record) in found.iter().enumerate() {
            let answer = send(&mut stream, "GET", &record.key, b"").expect("answered");
            if damaged.contains(&i) {
                assert_eq!(
                    answer.code, 404,
                    "{}: damaged, yet {}",
                    record.key, answer.head
                );
            } else {
                assert_eq!(answer.code, 200, "{}: {}", record.key, answer.head);
                assert_eq!(answer.body, record.value, "{}", record.key);
                assert_eq!(answer.body, values[i], "{}", record.key);
            }
        }
    });
    // The report: "N damaged dropped (...), L lost to R resyncs": together the five.
    let line = serial
        .lines()
        .find(|l| l.contains("storage: opened the store on a disk"))
        .expect("the store's recovery report");
    let number = |before: &str| -> usize {
        line.split(before)
            .next()
            .and_then(|s| s.rsplit(' ').find(|w| !w.is_empty()))
            .and_then(|n| n.parse().ok())
            .expect(before)
    };
    let dropped = number(" damaged dropped");
    let lost = number(" lost to ");
    assert_eq!(dropped + lost, damaged.len(), "{line}");
    assert_eq!(number(" records kept"), KEYS - damaged.len(), "{line}");
}

/// The writer's replica stopped on purpose while it streams writes: the store loses none
/// of the writes it acknowledged (nor leaves the one in flight partial), and goes on serving
/// its other client, on another replica.
#[test]
fn qemu_virt_aarch64_a_clients_replica_stopping_mid_write_loses_nothing_and_stops_no_one_else() {
    const BOARD: &str = "qemu_virt_aarch64";
    let disk = fresh_disk(BOARD, "storage-clients");
    let outcome = Boot::variant(BOARD, &STORAGE_CLIENTS)
        .disk(&disk)
        .until(&["kv_peer: still served after the writer's replica stopped"])
        .stop_on(&[
            "kv_peer: round trip",
            "reads back wrong",
            "the store did not come up",
        ])
        .timeout(Duration::from_secs(120))
        .run();
    let fail = |what: &str| -> ! {
        panic!(
            "{what}\nserial log saved at {}\n----\n{}",
            outcome.log_path.display(),
            outcome.serial
        )
    };
    let serial = &outcome.serial;
    let Some(down) = serial.find("K0|ERROR: K1 is down") else {
        fail("the writer's replica did not stop");
    };
    // Every write the writer said was acknowledged before its replica stopped.
    let acknowledged = serial[..down]
        .lines()
        .filter_map(|l| {
            l.strip_prefix("kv_writer: ")?
                .strip_suffix(" acknowledged")?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    let read_back = serial
        .lines()
        .find_map(|l| {
            l.strip_prefix("kv_peer: the writer's replica is down; ")?
                .strip_suffix(" of its writes read back whole")?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or_else(|| fail("the peer did not read the writer's writes back"));
    eprintln!(
        "the writer's replica stopped after {acknowledged}+ acknowledged writes; {read_back} read back"
    );
    if acknowledged < 10 {
        fail("the writer had not written before its replica stopped");
    }
    if read_back < acknowledged {
        fail("acknowledged writes were lost");
    }
    if !serial.contains("kv_peer: still served after the writer's replica stopped") {
        fail("the other client was not served after the writer's replica stopped");
    }
    for bad in [
        "panicked",
        "MON0|ERROR",
        "MON2|ERROR",
        "K2|ERROR",
        "K2|FATAL",
    ] {
        if serial.contains(bad) {
            fail(&format!("the log has {bad:?}"));
        }
    }
}

/// The number of kill points: `ATOLL_CRASH_POINTS`, or `default`.
fn points(default: usize) -> usize {
    std::env::var("ATOLL_CRASH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn qemu_virt_aarch64_keeps_every_acknowledged_write_across_kills() {
    kill_test("qemu_virt_aarch64", points(SUITE_POINTS));
}

#[test]
fn zcu102_keeps_every_acknowledged_write_on_its_sd_card_across_kills() {
    kill_test("zcu102", points(SD_POINTS));
}
