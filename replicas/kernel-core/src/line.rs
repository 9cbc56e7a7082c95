//! Fixed-size log lines: formatting never allocates and never fails; text past the end of
//! the buffer is cut and the cut is marked.

use core::fmt;

/// A line of at most `N` bytes.
#[derive(Clone, Copy)]
pub struct LineBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
    cut: bool,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuf<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
            cut: false,
        }
    }

    /// The text so far; a cut line ends in `~`.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Whether text was cut.
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// Empties the line.
    pub fn clear(&mut self) {
        self.len = 0;
        self.cut = false;
    }
}

/// The byte a thread's debug output puts on the console for `c`. Bytes pass through as
/// Microkit passes them (UTF-8, tabs, carriage returns and other control bytes included),
/// except the escape byte (0x1b), which becomes `?`: the console is every replica's, and an
/// escape sequence could recolour it, move its cursor, clear it or switch its screen for
/// every line after, not only the thread's own. A newline ends the line and never reaches
/// this.
pub const fn console_byte(c: u8) -> u8 {
    if c == 0x1b { b'?' } else { c }
}

impl<const N: usize> LineBuf<N> {
    /// Appends raw bytes (not necessarily UTF-8), cutting as [`fmt::Write`] does.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if self.cut {
            return;
        }
        let free = self.bytes.get_mut(self.len..).unwrap_or_default();
        if let Some(room) = free.get_mut(..bytes.len()) {
            room.copy_from_slice(bytes);
            self.len = self.len.saturating_add(bytes.len());
            return;
        }
        // Too long: keep what fits and end the line in the cut mark, which takes the last
        // byte of the buffer (overwriting text when the buffer was already full).
        let keep = free.len();
        if let (Some(room), Some(text)) = (free.get_mut(..keep), bytes.get(..keep)) {
            room.copy_from_slice(text);
        }
        self.len = N;
        if let Some(last) = self.bytes.last_mut() {
            *last = b'~';
        }
        self.cut = true;
    }
}

impl<const N: usize> fmt::Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_bytes(s.as_bytes());
        Ok(())
    }
}

/// Formats a core mask as `{0}` or `{2,3}`.
#[derive(Clone, Copy, Debug)]
pub struct CoreSet(pub u64);

impl fmt::Display for CoreSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        let mut first = true;
        for core in 0..64 {
            if self.0 & (1 << core) != 0 {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "{core}")?;
                first = false;
            }
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn debug_bytes_pass_through_but_the_escape_byte() {
        let mut l = LineBuf::<16>::new();
        for &c in b"a\t\r\x04\xc3\xa9\x1b[2J" {
            l.push_bytes(&[console_byte(c)]);
        }
        assert_eq!(l.as_bytes(), b"a\t\r\x04\xc3\xa9?[2J");
        // One byte at a time cuts as a whole text does.
        let mut full = LineBuf::<4>::new();
        for &c in b"abcdef" {
            full.push_bytes(&[c]);
        }
        assert_eq!(full.as_bytes(), b"abc~");
        assert!(full.was_cut());
    }

    #[test]
    fn short_text_fits() {
        let mut l = LineBuf::<16>::new();
        write!(l, "K{}|INFO: up", 1).unwrap();
        assert_eq!(l.as_bytes(), b"K1|INFO: up");
        assert!(!l.was_cut());
    }

    #[test]
    fn long_text_is_cut_and_marked() {
        let mut l = LineBuf::<8>::new();
        write!(l, "0123456789").unwrap();
        write!(l, "more").unwrap();
        assert_eq!(l.as_bytes(), b"0123456~");
        assert!(l.was_cut());
    }

    #[test]
    fn a_full_line_is_cut_in_place() {
        // The buffer fills exactly, then one more character arrives: the cut mark replaces
        // the last byte instead of going past the end.
        let mut l = LineBuf::<4>::new();
        for c in "abcd".chars() {
            l.write_char(c).unwrap();
        }
        assert_eq!(l.as_bytes(), b"abcd");
        assert!(!l.was_cut());
        l.write_char('e').unwrap();
        assert_eq!(l.as_bytes(), b"abc~");
        assert!(l.was_cut());
        l.write_char('f').unwrap();
        assert_eq!(l.as_bytes(), b"abc~");
    }

    #[test]
    fn any_sequence_of_writes_stays_in_bounds() {
        for n in 0..12 {
            let mut l = LineBuf::<5>::new();
            for _ in 0..n {
                write!(l, "xy").unwrap();
            }
            assert!(l.as_bytes().len() <= 5);
            assert_eq!(l.was_cut(), 2 * n > 5);
            if l.was_cut() {
                assert_eq!(l.as_bytes().last(), Some(&b'~'));
            }
        }
        let mut empty = LineBuf::<0>::new();
        write!(empty, "x").unwrap();
        assert_eq!(empty.as_bytes(), b"");
    }

    #[test]
    fn core_sets() {
        extern crate std;
        assert_eq!(std::format!("{}", CoreSet(0b1)), "{0}");
        assert_eq!(std::format!("{}", CoreSet(0b1100)), "{2,3}");
        assert_eq!(std::format!("{}", CoreSet(0)), "{}");
    }
}
