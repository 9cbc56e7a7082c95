//! Why building an image failed after the description was checked: a file it names is
//! missing or unusable, a program does not fit, or the loader would refuse the layout.

/// Why building the image failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum PackError {
    /// A file named by the description is not in any search path.
    #[error("{what} '{path}' was not found in {searched}")]
    #[diagnostic(
        code(microkit::not_found),
        help("add its directory with --search-path")
    )]
    NotFound {
        /// What the file is for.
        what: String,
        /// The path as written.
        path: String,
        /// The directories searched.
        searched: String,
    },
    /// A program image is not a usable ELF file.
    #[error("program image '{path}' of '{pd}': {reason}")]
    #[diagnostic(code(microkit::bad_program))]
    BadProgram {
        /// The PD.
        pd: String,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A symbol to patch is missing or has the wrong size.
    #[error("could not patch symbol '{symbol}' in '{pd}': {reason}")]
    #[diagnostic(
        code(microkit::symbol),
        help(
            "setvar symbols must be 8-byte variables in the program's data or zero-initialised data (see docs/pd-api.md)"
        )
    )]
    Symbol {
        /// The PD.
        pd: String,
        /// The symbol.
        symbol: String,
        /// What is wrong.
        reason: String,
    },
    /// A `<setvar directory="system">` symbol too small for the system directory.
    #[error(
        "could not patch symbol '{symbol}' in '{pd}' with the system directory: the symbol is {size} bytes, the directory {needed}"
    )]
    #[diagnostic(
        code(microkit::symbol),
        help(
            "declare the symbol as an `atoll_abi::directory::Directory` (default `Directory::EMPTY`), which is the directory's size (see docs/system-description.md)"
        )
    )]
    DirectorySymbol {
        /// The PD.
        pd: String,
        /// The symbol.
        symbol: String,
        /// The symbol's size in the program.
        size: u64,
        /// The directory's size (`size_of::<Directory>()`).
        needed: usize,
    },
    /// A `<setvar value>` symbol smaller than the value's 8 bytes.
    #[error(
        "could not patch symbol '{symbol}' in '{pd}' with the value {value:#x}: the symbol is {size} bytes, the value 8"
    )]
    #[diagnostic(
        code(microkit::symbol),
        help(
            "declare the symbol as a 64-bit variable: `var!(name: u64 = 0)` (`atoll-microkit`), `uint64_t name;` in C (see docs/system-description.md)"
        )
    )]
    ValueSymbol {
        /// The PD.
        pd: String,
        /// The symbol.
        symbol: String,
        /// The symbol's size in the program.
        size: u64,
        /// The value it was to receive.
        value: u64,
    },
    /// A program segment overlaps a mapping of the PD.
    #[error(
        "'{pd}': program segment {segment:#x}+{size:#x} overlaps the mapping of '{what}' at {vaddr:#x}"
    )]
    #[diagnostic(code(microkit::overlap))]
    Overlap {
        /// The PD.
        pd: String,
        /// Segment start.
        segment: u64,
        /// Segment size.
        size: u64,
        /// The mapping.
        what: String,
        /// The mapping's address.
        vaddr: u64,
    },
    /// A prefill file cannot be used.
    #[error("prefill file for region '{region}': {reason}")]
    #[diagnostic(code(microkit::prefill))]
    Prefill {
        /// The region.
        region: String,
        /// What is wrong.
        reason: String,
    },
    /// Programs do not fit the replica's RAM.
    #[error("replica '{replica}' has too little RAM left for the program of '{pd}'")]
    #[diagnostic(code(microkit::out_of_memory))]
    OutOfMemory {
        /// The replica.
        replica: String,
        /// The PD whose program did not fit.
        pd: String,
    },
    /// The kernel, loader or boot layout was refused.
    #[error("{0}")]
    #[diagnostic(code(microkit::layout))]
    Layout(String),
}
