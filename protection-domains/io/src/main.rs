//! The `io` PD: the system's front door. It is the network driver's client (channel 2) and
//! runs the TCP/IP stack (smoltcp, with a DHCP client unless the description gives it a
//! static address: [`static_ipv4`]) and the HTTP API (`atoll-http`) on port 80.
//!
//! The stack is polled whenever the driver notifies (frames arrived, or buffers came back)
//! and when the stack's next timer is due: the PD owns its core's physical timer (channel
//! 3, IRQ 30) and sets it to what smoltcp asks for (retransmissions, DHCP renewal) after
//! each poll. Sockets send their ACKs at once and do not delay small segments (Nagle): an
//! answer never waits for a timer.
//! Connections are a fixed table of [`CONNECTIONS`] TCP sockets, each with its HTTP state.
//! One socket always listens: when the last free one takes a connection, the oldest idle
//! connection is dropped to make room, and if none is idle the new connection is answered
//! `503` and closed.
#![no_std]
#![no_main]

extern crate alloc;

mod device;
mod status;

use alloc::vec;
use alloc::vec::Vec;

use atoll_abi::directory::Directory;
use atoll_abi::shared::StatusPage;
use atoll_channels::queue::{DataRegion, NetQueues, QueueError};
use atoll_channels::rt::RtRegion;
use atoll_http::{App, Connection, KvError, Outcome, RtStats, Stored, SystemStatus};
use atoll_microkit::{
    Channel, ChannelSet, Handler, Infallible, debug_println, protection_domain, timer, var,
};
use atoll_pd_net::{NET_BUF_SIZE, NET_BUFFERS, NET_QUEUE_SLOTS, QUEUES_BYTES, geometry};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use atoll_pd_storage::client::{KvError as StoreError, StoreClient};
use device::NetDevice;

/// The key-value store, on the storage replica.
const STORE: Channel = Channel::new(0);
/// The network driver.
const DRIVER: Channel = Channel::new(2);
/// The core's physical timer (IRQ 30), if the description gives it to this PD.
const TIMER: Channel = Channel::new(3);
/// The HTTP port.
const HTTP_PORT: u16 = 80;
/// Tries at a consistent copy of the real-time PD's statistics per `GET /rt`: it publishes
/// every few periods and briefly, so a try fails only if it overlaps a publication.
const RT_READ_ATTEMPTS: usize = 8;
/// TCP connections served at once (one more is always listening).
const CONNECTIONS: usize = 64;
/// Bytes of each socket's receive and transmit buffers.
const SOCKET_BUFFER: usize = 8 * 1024;
/// The most heap all connections together may hold for requests and responses, beyond
/// their sockets' buffers (the capacity of their buffers, which may be twice what they
/// hold). Past it, no more is read from any socket until answers go out, and TCP's flow
/// control holds the clients back: 64 clients each sending a 64 KiB body at once cannot
/// exhaust the heap.
const HTTP_BUDGET: usize = 1024 * 1024;
/// The interface's hardware address: locally administered (the driver's card accepts the
/// frames for it; QEMU's virtio-net does by default).
const MAC: [u8; 6] = [0x02, 0xa7, 0x01, 0x00, 0x00, 0x01];
/// Bytes of each data region.
const DATA_BYTES: usize = NET_BUFFERS as usize * NET_BUF_SIZE as usize;

/// One TCP connection's HTTP side.
struct Conn {
    handle: SocketHandle,
    http: Connection,
    /// Response bytes not sent yet.
    out: Vec<u8>,
    /// Close once `out` is sent.
    closing: bool,
    /// When it last received or sent.
    active_at: Instant,
    /// Whether the socket had a connection at the last look.
    open: bool,
}

struct Io {
    /// Whether this PD owns its core's physical timer (the description's `<irq irq="30">`).
    timer: bool,
    device: Option<NetDevice>,
    stack: Option<Stack>,
    api: Api,
}

/// The stack and its sockets, once the driver's queues are up.
struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    /// The DHCP client; `None` with a static address ([`static_ipv4`]).
    dhcp: Option<SocketHandle>,
    conns: Vec<Conn>,
    configured: bool,
}

/// What the API serves (`GET /status` and the rest).
struct Api {
    /// The kernels' status page, mapped read-only, if the description maps it.
    page: Option<&'static StatusPage>,
    /// The real-time PD's statistics (`GET /rt`), mapped read-only, if the description
    /// maps them (`rt_stats`).
    rt: Option<&'static RtRegion>,
    /// The system's directory, patched in by the tool.
    directory: &'static Directory,
    /// `GET /status` requests answered so far.
    status_calls: u64,
    /// `PUT /kv` requests answered so far.
    put_calls: u64,
    /// The key-value store on the storage replica.
    store: StoreClient,
}

/// Whether this build reports the machine's instruction count at every 1,000th `GET
/// /status` and `PUT /kv` (`cargo xtask bench` builds it with `ATOLL_IO_BENCH` set): the
/// difference between two reports is what 1,000 requests cost the whole machine.
const BENCH: bool = option_env!("ATOLL_IO_BENCH").is_some();

/// Reports the instruction count at the `n`th request of kind `what`, in a bench build.
fn bench_mark(what: &str, n: u64) {
    if BENCH && n.is_multiple_of(1000) {
        let at = timer::instructions();
        debug_println!("BENCH-HTTP {what} #{n}: {at} instructions");
    }
}

impl App for Api {
    fn status(&mut self) -> SystemStatus {
        self.status_calls += 1;
        bench_mark("status", self.status_calls);
        status::read(self.page, self.directory)
    }

    fn rt(&mut self) -> Option<RtStats> {
        // None (answered 503) without the region, before the real-time PD has published,
        // or while it publishes throughout the attempts.
        let snapshot = self.rt?.read(RT_READ_ATTEMPTS)?;
        Some(RtStats::from_snapshot(&snapshot))
    }

    fn kv_get(&mut self, key: &str) -> Result<Vec<u8>, KvError> {
        self.store.get(key.as_bytes()).map_err(http_error)
    }

    fn kv_put(&mut self, key: &str, value: &[u8]) -> Result<Stored, KvError> {
        self.put_calls += 1;
        bench_mark("put", self.put_calls);
        match self.store.put(key.as_bytes(), value).map_err(http_error)? {
            true => Ok(Stored::Created),
            false => Ok(Stored::Replaced),
        }
    }

    fn kv_delete(&mut self, key: &str) -> Result<(), KvError> {
        self.store.delete(key.as_bytes()).map_err(http_error)
    }
}

/// The HTTP API's error for the store's.
fn http_error(e: StoreError) -> KvError {
    match e {
        StoreError::NotFound => KvError::NotFound,
        StoreError::Full => KvError::Full,
        StoreError::Unavailable => KvError::Unavailable,
    }
}

/// The address the description gives this PD, if it gives one (`<setvar
/// symbol="net_ipv4_address" value="10.0.2.15" />`, Atoll's literal setvar), with its prefix
/// length (`net_ipv4_prefix`; 24 when 0 or above 32) and its gateway (`net_ipv4_gateway`;
/// none when 0): then the PD uses it and runs no DHCP client, for networks without a DHCP
/// server. Unpatched (0), the address comes from DHCP. A value above 32 bits is no address
/// and is ignored (the tool takes any 64-bit value).
fn static_ipv4() -> Option<(Ipv4Cidr, Option<Ipv4Address>)> {
    let address = *var!(net_ipv4_address: u64 = 0);
    let prefix = *var!(net_ipv4_prefix: u64 = 0);
    let gateway = *var!(net_ipv4_gateway: u64 = 0);
    let address = u32::try_from(address).ok().filter(|&a| a != 0)?;
    let prefix = u8::try_from(prefix).ok().filter(|p| (1..=32).contains(p));
    let gateway = u32::try_from(gateway).ok().filter(|&g| g != 0);
    Some((
        Ipv4Cidr::new(Ipv4Address::from(address), prefix.unwrap_or(24)),
        gateway.map(Ipv4Address::from),
    ))
}

/// The time smoltcp runs on: the counter, in microseconds.
fn now() -> Instant {
    let ticks = u128::from(timer::counter());
    let hz = u128::from(timer::counter_frequency()).max(1);
    Instant::from_micros((ticks * 1_000_000 / hz) as i64)
}

#[protection_domain(stack_size = 0x10000, heap_size = 0x30_0000)]
fn init() -> Io {
    debug_println!("io: running at EL0");
    // The regions are optional: a description without them gets a service without status
    // records, without real-time statistics (`/rt` answers 503) or without a network (0:
    // the tool patched no address).
    let page = *var!(replica_status: u64 = 0);
    // SAFETY: a patched address is where the description maps the status page (a whole,
    // page-aligned 4 KiB) read-only into this PD for its lifetime. `StatusPage` is plain
    // data whose every bit pattern is valid (`FromBytes`) and whose fields are atomics: the
    // kernels write the page, and this PD only loads from it through a shared reference.
    let page: Option<&'static StatusPage> =
        (page != 0).then(|| unsafe { &*(page as usize as *const StatusPage) });
    let rt_stats = *var!(rt_stats: u64 = 0);
    // SAFETY: a patched address is where the description maps the real-time PD's
    // statistics region (a whole, page-aligned 4 KiB, `RT_REGION_BYTES`, the size of
    // `RtRegion`, whose alignment of 8 a page's meets) read-only into this PD for its
    // lifetime. `RtRegion` is plain data whose every bit pattern is valid (`FromBytes`) and
    // whose fields are atomics (but for padding nobody writes): the real-time PD on another
    // replica writes it, and this PD only loads from it through a shared reference, trusting
    // nothing it reads (`RtRegion::read`).
    let rt: Option<&'static RtRegion> =
        (rt_stats != 0).then(|| unsafe { &*(rt_stats as usize as *const RtRegion) });
    let directory = var!(atoll_directory: Directory = Directory::EMPTY);
    // The claim succeeds only if the description gives the timer's interrupt to this PD;
    // without it, the stack's timers are looked at when frames arrive.
    let timer = timer::claim_physical_timer(TIMER).is_ok();
    if !timer {
        debug_println!("io: no timer (no <irq irq=\"30\" id=\"3\">): timeouts wait for traffic");
    }
    let mut io = Io {
        timer,
        device: None,
        stack: None,
        api: Api {
            page,
            rt,
            directory,
            status_calls: 0,
            put_calls: 0,
            // SAFETY: `kv_io` is patched (or left 0) by the tool with where the description
            // maps this PD's region shared with the store, read-write, for the PD's
            // lifetime; only this client uses it.
            store: unsafe { StoreClient::new(*var!(kv_io: u64 = 0), STORE) },
        },
    };
    // The driver sets the queues up and then notifies; it usually runs first.
    io.attach();
    io
}

impl Io {
    /// Attaches to the driver's queues, if it has set them up, and starts the stack.
    fn attach(&mut self) {
        if self.device.is_some() {
            return;
        }
        let queues = *var!(net_queues: u64 = 0) as usize as *mut u8;
        let rx = *var!(net_rx_data: u64 = 0) as usize as *mut u8;
        let tx = *var!(net_tx_data: u64 = 0) as usize as *mut u8;
        // SAFETY: the description maps the three regions read-write into this PD and the
        // driver only, for the PD's lifetime (an unpatched, null one is refused as
        // `BadRegion`); they are used only through the queue types, which read and write
        // shared memory with atomics.
        let attached = unsafe {
            NetQueues::<NET_QUEUE_SLOTS>::attach_raw(queues, QUEUES_BYTES, geometry(), geometry())
                .and_then(|net| {
                    Ok((
                        net,
                        DataRegion::from_raw(rx, DATA_BYTES, geometry())?,
                        DataRegion::from_raw(tx, DATA_BYTES, geometry())?,
                    ))
                })
        };
        let (net, rx, tx) = match attached {
            Ok(parts) => parts,
            // Not set up yet (the driver notifies once it is), or not in the description.
            Err(QueueError::BadHeader | QueueError::BadRegion) => return,
            Err(e) => {
                debug_println!("io: the driver's queues cannot be used: {e:?}");
                return;
            }
        };
        let mut device = NetDevice::new(net.client(), rx, tx);
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(MAC)));
        let mut iface = Interface::new(config, &mut device, now());
        let mut sockets = SocketSet::new(Vec::<SocketStorage<'static>>::new());
        let fixed = static_ipv4();
        let dhcp = match fixed {
            Some((address, gateway)) => {
                iface.update_ip_addrs(|addrs| {
                    let _ = addrs.push(IpCidr::Ipv4(address));
                });
                if let Some(gateway) = gateway {
                    let _ = iface.routes_mut().add_default_ipv4_route(gateway);
                }
                None
            }
            None => Some(sockets.add(dhcpv4::Socket::new())),
        };
        let conns = (0..=CONNECTIONS)
            .map(|_| {
                let mut socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
                    tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
                );
                // Nothing waits on a timer this PD does not have (see the module's docs):
                // ACKs go out at once, and a small answer is not held back for the ACK of
                // the last one (Nagle).
                socket.set_ack_delay(None);
                socket.set_nagle_enabled(false);
                Conn {
                    handle: sockets.add(socket),
                    http: Connection::new(),
                    out: Vec::new(),
                    closing: false,
                    active_at: now(),
                    open: false,
                }
            })
            .collect();
        self.device = Some(device);
        self.stack = Some(Stack {
            iface,
            sockets,
            dhcp,
            conns,
            configured: fixed.is_some(),
        });
        match fixed {
            Some((address, _)) => {
                debug_println!("io: address {address} (static); serving HTTP on port {HTTP_PORT}")
            }
            None => {
                debug_println!("io: attached to the network driver; asking for an address (DHCP)")
            }
        }
    }

    /// Polls the stack and serves the connections until nothing changes, then asks the
    /// driver to notify when frames or buffers arrive.
    fn pump(&mut self) {
        let (Some(device), Some(stack)) = (self.device.as_mut(), self.stack.as_mut()) else {
            return;
        };
        loop {
            let polled = stack.iface.poll(now(), device, &mut stack.sockets);
            let mut busy = polled == smoltcp::iface::PollResult::SocketStateChanged;
            stack.dhcp_events();
            busy |= stack.serve(&mut self.api);
            if device.kick {
                device.kick = false;
                DRIVER.notify();
            }
            if !busy && device.ready_to_wait() {
                break;
            }
        }
        if self.timer {
            let time = now();
            match stack.iface.poll_at(time, &stack.sockets) {
                Some(at) => timer::arm_physical_timer(ticks_at(at)),
                None => timer::disarm_physical_timer(),
            }
        }
    }
}

/// The counter value at `at` (the inverse of [`now`], rounded up so the timer never fires
/// before smoltcp's deadline).
fn ticks_at(at: Instant) -> u64 {
    let micros = u128::try_from(at.total_micros()).unwrap_or(0);
    let hz = u128::from(timer::counter_frequency());
    u64::try_from((micros * hz).div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

impl Stack {
    fn dhcp_events(&mut self) {
        let Some(dhcp) = self.dhcp else {
            return;
        };
        let event = self.sockets.get_mut::<dhcpv4::Socket<'_>>(dhcp).poll();
        match event {
            Some(dhcpv4::Event::Configured(config)) => {
                let address = config.address;
                self.iface.update_ip_addrs(|addrs| {
                    addrs.clear();
                    let _ = addrs.push(IpCidr::Ipv4(address));
                });
                if let Some(router) = config.router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                } else {
                    self.iface.routes_mut().remove_default_ipv4_route();
                }
                self.configured = true;
                debug_println!(
                    "io: address {} (DHCP); serving HTTP on port {HTTP_PORT}",
                    address
                );
            }
            Some(dhcpv4::Event::Deconfigured) => {
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                if self.configured {
                    debug_println!("io: address lost (DHCP)");
                }
                self.configured = false;
            }
            None => {}
        }
    }

    /// Serves every connection once; whether anything moved.
    fn serve(&mut self, api: &mut Api) -> bool {
        let time = now();
        let mut moved = false;
        let mut held: usize = self
            .conns
            .iter()
            .map(|c| c.http.footprint().saturating_add(c.out.capacity()))
            .sum();
        for conn in &mut self.conns {
            let socket = self.sockets.get_mut::<tcp::Socket<'_>>(conn.handle);
            if !socket.is_open() {
                // Closed (or never opened): reset its HTTP side and listen again.
                conn.http = Connection::new();
                conn.out.clear();
                conn.closing = false;
                conn.open = false;
                if socket.listen(HTTP_PORT).is_ok() {
                    moved = true;
                }
                continue;
            }
            if socket.is_active() && !conn.open {
                conn.open = true;
                conn.active_at = time;
            }
            while socket.can_recv() && !conn.closing && held < HTTP_BUDGET {
                let before = conn.http.footprint().saturating_add(conn.out.capacity());
                let mut outcome = Outcome::Open;
                let got = socket.recv(|bytes| {
                    outcome = conn.http.receive(bytes, api, &mut conn.out);
                    (bytes.len(), bytes.len())
                });
                match got {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        moved = true;
                        conn.active_at = time;
                        conn.closing |= outcome == Outcome::Close;
                        let after = conn.http.footprint().saturating_add(conn.out.capacity());
                        held = held.saturating_add(after).saturating_sub(before);
                    }
                }
            }
            if !conn.out.is_empty()
                && socket.can_send()
                && let Ok(sent) = socket.send_slice(&conn.out)
                && sent > 0
            {
                conn.out.drain(..sent);
                if conn.out.is_empty() {
                    // A large answer's room goes back to the heap.
                    conn.out.shrink_to(4096);
                }
                moved = true;
                conn.active_at = time;
            }
            if conn.closing && conn.out.is_empty() && socket.state() == tcp::State::Established {
                socket.close();
                moved = true;
            }
            // The peer closed its side: nothing more will come.
            if !socket.may_recv() && socket.state() == tcp::State::CloseWait && conn.out.is_empty()
            {
                socket.close();
                moved = true;
            }
        }
        if held >= HTTP_BUDGET {
            // The budget is spent on requests still arriving: the largest gives way (503,
            // closed), so the others can complete rather than all waiting for more room.
            if let Some(conn) = self
                .conns
                .iter_mut()
                .filter(|c| !c.closing)
                .max_by_key(|c| c.http.buffered())
            {
                conn.http = Connection::new();
                conn.out.clear();
                atoll_http::write_overloaded(&mut conn.out);
                conn.closing = true;
                moved = true;
            }
        }
        moved |= self.keep_one_listening();
        moved
    }

    /// Makes sure a socket listens: drops the oldest idle connection, or answers the newest
    /// connection `503` if every one is busy.
    fn keep_one_listening(&mut self) -> bool {
        let listening = self
            .conns
            .iter()
            .filter(|c| self.sockets.get::<tcp::Socket<'_>>(c.handle).state() == tcp::State::Listen)
            .count();
        if listening > 0 {
            return false;
        }
        let idle = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.out.is_empty()
                    && !c.closing
                    && self.sockets.get::<tcp::Socket<'_>>(c.handle).state()
                        == tcp::State::Established
            })
            .min_by_key(|(_, c)| c.active_at)
            .map(|(i, _)| i);
        match idle {
            Some(i) => {
                if let Some(conn) = self.conns.get(i) {
                    self.sockets.get_mut::<tcp::Socket<'_>>(conn.handle).abort();
                }
            }
            None => {
                // Every connection is mid-request: the newest gets 503.
                let sockets = &self.sockets;
                let newest = self
                    .conns
                    .iter_mut()
                    .filter(|c| {
                        !c.closing
                            && sockets.get::<tcp::Socket<'_>>(c.handle).state()
                                == tcp::State::Established
                    })
                    .max_by_key(|c| c.active_at);
                if let Some(conn) = newest {
                    conn.out.clear();
                    atoll_http::write_overloaded(&mut conn.out);
                    conn.closing = true;
                }
            }
        }
        true
    }
}

impl Handler for Io {
    type Error = Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(TIMER) && self.timer {
            // Lower the (level) interrupt before taking the next; `pump` sets the timer
            // again for the stack's next deadline.
            timer::disarm_physical_timer();
            let _ = TIMER.irq_ack();
        }
        if channels.contains(DRIVER) {
            self.attach();
        }
        if channels.contains(DRIVER) || channels.contains(TIMER) {
            self.pump();
        }
        Ok(())
    }

    fn peer_restarted(&mut self, channel: Channel) -> Result<(), Self::Error> {
        if channel == STORE {
            debug_println!(
                "io: the store's replica restarted; the next request opens a new session"
            );
            self.api.store.forget();
        }
        Ok(())
    }
}
