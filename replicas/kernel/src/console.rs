//! Kernel log lines and the console.
//!
//! Every replica appends whole lines (`K<n>|LEVEL: text`) to its own ring in the shared area
//! under a replica-local lock, then rings the console owner's doorbell. The console owner
//! (replica 0) drains every ring to the UART, one whole line at a time, so lines never
//! interleave and no lock is shared between replicas. A fatal error in the console owner
//! writes straight to the UART.

use core::fmt::{self, Write};

use atoll_abi::limits::LOG_LINE_BYTES;
use atoll_abi::shared::{LogPop, bell};
use atoll_kernel_core::line::LineBuf;

use crate::doorbell;
use crate::replica::{Replica, replica};

/// Logs one line: `klog!("INFO", "format", args...)`.
macro_rules! klog {
    ($level:literal, $($arg:tt)*) => {
        $crate::console::log_line($level, format_args!($($arg)*))
    };
}
pub(crate) use klog;

/// Formats `K<n>|LEVEL: text`.
pub fn format_line(index: usize, level: &str, args: fmt::Arguments<'_>) -> LineBuf<LOG_LINE_BYTES> {
    let mut line = LineBuf::new();
    let _ = write!(line, "K{index}|{level}: {args}");
    line
}

/// Appends a `K<n>|LEVEL:` line to this replica's ring and gets it to the console.
pub fn log_line(level: &str, args: fmt::Arguments<'_>) {
    let Some(r) = replica() else { return };
    log_raw(r, format_line(r.index, level, args).as_bytes());
}

/// Appends a line exactly as given (the initialiser writes its own `MON<n>|` prefix) and
/// gets it to the console.
pub fn log_raw(r: &Replica, line: &[u8]) {
    {
        let _guard = r.log_lock.lock();
        r.log.push(line);
    }
    if r.owns_console() {
        drain(r);
    } else {
        // Replica 0 owns the console when there is one; a replica 0 without one drops the
        // bell (`ring_peer` never rings this replica itself).
        doorbell::ring_peer(r, 0, bell::LOG);
    }
}

/// Console owner: copies every pending line of every replica to the UART.
pub fn drain(r: &Replica) {
    let Some(uart) = r.console else { return };
    // Another core of this replica is draining: it will print our lines too.
    let Some(_guard) = r.console_lock.try_lock() else {
        return;
    };
    let mut buf = [0u8; LOG_LINE_BYTES];
    for (index, ring) in r.shared.logs.iter().enumerate().take(r.replica_count()) {
        loop {
            match ring.pop(&mut buf) {
                LogPop::Line(len) => write_line(&uart, buf.get(..len).unwrap_or_default()),
                LogPop::Empty => break,
                LogPop::Corrupt(lost) => {
                    let line = format_line(
                        r.index,
                        "WARN",
                        format_args!("K{index}'s log ring was corrupt; skipped {lost} entries"),
                    );
                    write_line(&uart, line.as_bytes());
                }
            }
        }
        let dropped = ring.take_dropped();
        if dropped != 0 {
            let line = format_line(
                r.index,
                "WARN",
                format_args!("K{index} dropped {dropped} log lines (ring full)"),
            );
            write_line(&uart, line.as_bytes());
        }
    }
}

fn write_line(uart: &atoll_boards::uart::Uart, line: &[u8]) {
    uart.write_bytes(line);
    uart.write_bytes(b"\n");
}

/// Writes a line straight to the UART, bypassing rings and locks (fatal errors only).
pub fn write_direct(r: &Replica, line: &[u8]) {
    if let Some(uart) = r.console {
        write_line(&uart, line);
        uart.flush();
    }
}
