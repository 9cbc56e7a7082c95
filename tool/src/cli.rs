//! The command line: `microkit <system.xml> --board B [--check] …`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use atoll_boards::Board;
use clap::{Parser, ValueEnum};

use crate::diagnostics::{MessageFormat, Source, render};
use crate::files::Files;
use crate::model::SystemDescription;
use crate::plan::Plan;

/// Checks a system description and packs a bootable Atoll image.
#[derive(Debug, Parser)]
#[command(name = "microkit", version, about)]
pub struct Args {
    /// The system description.
    pub system: PathBuf,
    /// Target board.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(board_names()))]
    pub board: String,
    /// Kernel configuration.
    #[arg(long, value_enum, default_value_t = Config::Debug)]
    pub config: Config,
    /// Directories searched for ELF files and prefill files (the current directory is
    /// always searched last).
    #[arg(long = "search-path", num_args = 1.., value_name = "DIR")]
    pub search_path: Vec<PathBuf>,
    /// Image to write.
    #[arg(short = 'o', long = "output", default_value = "atoll.img")]
    pub output: PathBuf,
    /// Report to write.
    #[arg(short = 'r', long = "report", default_value = "report.txt")]
    pub report: PathBuf,
    /// Only check the description and its prefill files; read no ELF and write nothing.
    #[arg(long)]
    pub check: bool,
    /// Reject Atoll's extensions (`<replica>`, `replica=`, `restart=`, `device=`), so the
    /// file stays loadable by upstream Microkit.
    #[arg(long)]
    pub strict: bool,
    /// The image's format. Atoll writes `binary` (an arm64 Image that runs from wherever
    /// it is loaded); `elf` and `uimage` are refused.
    #[arg(long, value_enum, default_value_t = ImageType::Binary)]
    pub image_type: ImageType,
    /// The kernel ELF to pack instead of the SDK's (for debugging).
    #[arg(long, value_name = "KERNEL")]
    pub override_kernel: Option<PathBuf>,
    /// Also write the plan (objects, capabilities, mappings) as JSON here: Atoll's
    /// `report.json` format, not capDL's (Atoll has no capDL initialiser).
    #[arg(long, value_name = "CAPDL_SPEC")]
    pub capdl_json: Option<PathBuf>,
    /// Microkit's address-space views; Atoll writes none (a warning says so), and
    /// `report.txt` lists every PD's mappings.
    #[arg(long, value_name = "DIRECTORY_PATH")]
    pub viper_output: Option<PathBuf>,
    /// Atoll extension: validate and plan, then write the reports (`-r` path, the same path
    /// with `.json`, and `system.dot` beside it) without building an image; no program
    /// images are needed.
    #[arg(long, conflicts_with = "check")]
    pub plan_only: bool,
    /// Where the kernel, loader and initialiser are: an SDK made by `cargo xtask sdk`
    /// (`<sdk>/board/<board>/<config>/elf/`), or a build directory of `cargo xtask build`
    /// (`<sdk>/<board>/`). Default: `$ATOLL_SDK`, else `$MICROKIT_SDK`, else the SDK this
    /// command is installed in (`<sdk>/bin/microkit`), else `target/atoll`.
    #[arg(long, value_name = "DIR")]
    pub sdk: Option<PathBuf>,
    /// How to print errors and warnings.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub message_format: Format,
}

/// `--config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Config {
    /// The SDK's debug configuration: C PDs' `microkit_dbg_*` output prints.
    Debug,
    /// The SDK's release configuration: C PDs' `microkit_dbg_*` output is silent.
    Release,
    /// As release (Atoll's kernel is the same in every configuration).
    Benchmark,
}

impl Config {
    /// Its name in an SDK's layout.
    pub fn name(self) -> &'static str {
        match self {
            Config::Debug => "debug",
            Config::Release => "release",
            Config::Benchmark => "benchmark",
        }
    }
}

/// `--image-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageType {
    /// A raw image with an arm64 Image header (what `booti` and `-device loader` take).
    Binary,
    /// An ELF file (refused).
    Elf,
    /// A U-Boot legacy image (refused).
    Uimage,
}

/// `--message-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Source snippets with labels and help (stderr).
    Human,
    /// `file:line:col: error[CODE]: message` (stderr).
    Short,
    /// One JSON object per line (stdout).
    Json,
}

impl From<Format> for MessageFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Human => MessageFormat::Human,
            Format::Short => MessageFormat::Short,
            Format::Json => MessageFormat::Json,
        }
    }
}

/// Failures of the tool itself, outside the description.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ToolError {
    /// The description could not be read.
    #[error("cannot read '{path}': {source}")]
    #[diagnostic(code(microkit::read))]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write '{path}': {source}")]
    #[diagnostic(code(microkit::write))]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The board is not in the board table.
    #[error("unknown board '{0}'")]
    #[diagnostic(code(microkit::board))]
    UnknownBoard(String),
    /// An option this tool cannot honour.
    #[error("{0}")]
    #[diagnostic(code(microkit::unsupported))]
    Unsupported(String),
    /// Packing the image failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pack(crate::error::PackError),
}

fn board_names() -> Vec<&'static str> {
    atoll_boards::BOARDS
        .iter()
        .map(|board| board.name)
        .collect()
}

/// Parses the process arguments and runs; the exit code is 1 on any error, usage errors
/// included, and 0 otherwise.
pub fn main() -> ExitCode {
    match Args::try_parse() {
        Ok(args) => run(&args),
        Err(error) => {
            let _ = error.print();
            if error.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// Runs the tool with parsed arguments.
pub fn run(args: &Args) -> ExitCode {
    match run_checked(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            report_tool_error(error, args);
            ExitCode::FAILURE
        }
    }
}

/// Prints a failure of the tool itself in the chosen format (JSON: same fields as a
/// diagnostic, without a position).
fn report_tool_error(error: ToolError, args: &Args) {
    if args.message_format == Format::Json {
        use miette::Diagnostic;
        let object = serde_json::json!({
            "code": error.code().map(|code| code.to_string()),
            "severity": "error",
            "message": error.to_string(),
            "file": args.system.display().to_string(),
            "line": null,
            "column": null,
            "labels": [],
            "help": error.help().map(|help| help.to_string()),
        });
        println!("{object}");
    } else if args.message_format == Format::Short {
        let code = miette::Diagnostic::code(&error)
            .map(|c| c.to_string())
            .unwrap_or_default();
        eprintln!("{}: error[{code}]: {error}", args.system.display());
    } else {
        eprintln!("{:?}", miette::Report::new(error));
    }
}

/// Checks the description and prints its diagnostics, then writes the reports or the image
/// as asked; `Ok(false)` when it has errors.
fn run_checked(args: &Args) -> Result<bool, ToolError> {
    let board = atoll_boards::by_name(&args.board)
        .ok_or_else(|| ToolError::UnknownBoard(args.board.clone()))?;
    let path = args.system.display().to_string();
    let bytes = std::fs::read(&args.system).map_err(|source| ToolError::Read {
        path: path.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if args.image_type != ImageType::Binary {
        return Err(ToolError::Unsupported(format!(
            "--image-type {}: Atoll writes binary images only (an arm64 Image that U-Boot's \
             booti and QEMU's -device loader start from wherever they load it)",
            if args.image_type == ImageType::Elf {
                "elf"
            } else {
                "uimage"
            }
        )));
    }
    if let Some(dir) = &args.viper_output {
        eprintln!(
            "warning: --viper-output {}: Atoll writes no viper files (report.txt lists every \
             PD's mappings); ignored",
            dir.display()
        );
    }
    let sdk = sdk(args, board);
    let search_paths = search_paths(args, &sdk);
    let packing = !args.check && !args.plan_only;
    let validated = crate::parse_and_validate(&text, board, args.strict);
    // A build reads the files the description names before planning, so that its one plan
    // knows their sizes; a check reads none.
    let files = match &validated.system {
        Some(system) if packing => Files::read(system, &search_paths),
        _ => Files::default(),
    };
    let checked = validated.planned(&text, board, &files);
    let source = Source::new(&path, text);
    let format = MessageFormat::from(args.message_format);
    let colour = format == MessageFormat::Human && std::io::stderr().is_terminal();
    let mut out = String::new();
    for diagnostic in &checked.diagnostics {
        out.push_str(&render(diagnostic, &source, format, colour));
    }
    if format == MessageFormat::Json {
        let _ = std::io::stdout().write_all(out.as_bytes());
    } else {
        let _ = std::io::stderr().write_all(out.as_bytes());
    }
    // A system without errors always has a plan: planning is part of checking.
    let (Some(system), Some(plan)) = (checked.system, checked.plan) else {
        if format == MessageFormat::Human {
            let errors = checked.diagnostics.iter().filter(|d| d.is_error()).count();
            let _ = writeln!(
                std::io::stderr(),
                "error: {path}: {errors} error(s); nothing written"
            );
        }
        return Ok(false);
    };
    if args.check {
        // The prefill files are part of the description (a build takes their sizes), so a
        // check looks for them too, as a build would.
        let prefill_errors = Files::prefill_errors(&system, &search_paths);
        let refused = !prefill_errors.is_empty();
        for error in prefill_errors {
            report_tool_error(ToolError::Pack(error), args);
        }
        if refused {
            return Ok(false);
        }
        if format == MessageFormat::Human {
            let cross = system.channels.iter().filter(|c| c.cross_replica).count();
            println!(
                "{path}: ok: {} replica(s), {} protection domain(s), {} memory region(s), \
                 {} channel(s) ({cross} cross-replica)",
                system.replicas.len(),
                system.protection_domains.len(),
                system.memory_regions.len(),
                system.channels.len(),
            );
        }
        return Ok(true);
    }
    if args.plan_only {
        write_reports(&plan, &args.report)?;
        write_capdl_json(&plan, args)?;
        if format == MessageFormat::Human {
            println!(
                "{path}: planned; reports written to {}",
                args.report.display()
            );
        }
        return Ok(true);
    }
    let build = Build {
        sdk: &sdk,
        search_paths: &search_paths,
        system: &system,
    };
    build.pack(args, board, plan, files)
}

/// Where the kernel, loader and initialiser of `board` are, and the PD programs `cargo xtask
/// build` left beside them if any.
struct Sdk {
    elf: PathBuf,
    pds: Option<PathBuf>,
}

/// The SDK directory: `--sdk`, else `$ATOLL_SDK`, else `$MICROKIT_SDK`, else the SDK this
/// command runs from (`<sdk>/bin/microkit` with `<sdk>/board` beside `bin`), else
/// `target/atoll`.
fn sdk_root(args: &Args) -> PathBuf {
    let installed = || {
        let exe = std::env::current_exe().ok()?;
        let root = exe.parent()?.parent()?;
        root.join("board").is_dir().then(|| root.to_path_buf())
    };
    args.sdk
        .clone()
        .or_else(|| std::env::var_os("ATOLL_SDK").map(PathBuf::from))
        .or_else(|| std::env::var_os("MICROKIT_SDK").map(PathBuf::from))
        .or_else(installed)
        .unwrap_or_else(|| PathBuf::from("target/atoll"))
}

/// The parts of `board` for `args`'s configuration in the SDK's layout
/// (`board/<board>/<config>/elf/`), else in a build directory (`<board>/`).
fn sdk(args: &Args, board: &Board) -> Sdk {
    let root = sdk_root(args);
    let layout = root
        .join("board")
        .join(board.name)
        .join(args.config.name())
        .join("elf");
    if layout.is_dir() {
        Sdk {
            elf: layout,
            pds: None,
        }
    } else {
        let dir = root.join(board.name);
        Sdk {
            elf: dir.clone(),
            pds: Some(dir.join("pds")),
        }
    }
}

/// The user's paths, then the PD programs `cargo xtask build` left beside the kernel, then
/// the current directory (last, as Microkit does).
fn search_paths(args: &Args, sdk: &Sdk) -> Vec<PathBuf> {
    let mut search_paths = args.search_path.clone();
    search_paths.extend(sdk.pds.clone());
    search_paths.push(PathBuf::from("."));
    search_paths
}

/// Writes the plan as JSON to `--capdl-json`'s path, if given.
fn write_capdl_json(plan: &Plan, args: &Args) -> Result<(), ToolError> {
    let Some(path) = &args.capdl_json else {
        return Ok(());
    };
    std::fs::write(path, crate::report::json(plan)).map_err(|source| ToolError::Write {
        path: path.display().to_string(),
        source,
    })
}

/// What writing the image needs besides the plan and the files read for it.
struct Build<'a> {
    sdk: &'a Sdk,
    search_paths: &'a [PathBuf],
    system: &'a SystemDescription,
}

impl Build<'_> {
    /// Reads the kernel, loader and initialiser from the SDK, packs, and writes the image
    /// and the reports; `Ok(false)` when packing fails.
    fn pack(
        &self,
        args: &Args,
        board: &'static Board,
        plan: Plan,
        files: Files,
    ) -> Result<bool, ToolError> {
        let read = |path: PathBuf| {
            std::fs::read(&path).map_err(|source| ToolError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let kernel = match &args.override_kernel {
            Some(path) => path.clone(),
            None => self.sdk.elf.join("atoll-kernel.elf"),
        };
        let kernel_elf = read(kernel)?;
        let loader_elf = read(self.sdk.elf.join("atoll-loader.elf"))?;
        let initialiser_elf = std::fs::read(self.sdk.elf.join("atoll-initialiser.elf")).ok();
        let inputs = crate::pack::Inputs {
            board,
            kernel_elf: &kernel_elf,
            loader_elf: &loader_elf,
            search_paths: self.search_paths,
            replica_flags: &[],
            fault_late_ticks: &[],
            hang_late_ticks: &[],
            initialiser_elf: initialiser_elf.as_deref(),
        };
        let packed = match crate::build_planned(self.system, plan, files, &inputs) {
            Ok(packed) => packed,
            Err(errors) => {
                for error in errors {
                    report_tool_error(ToolError::Pack(error), args);
                }
                return Ok(false);
            }
        };
        write_reports(&packed.plan, &args.report)?;
        write_capdl_json(&packed.plan, args)?;
        if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ToolError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        std::fs::write(&args.output, &packed.image).map_err(|source| ToolError::Write {
            path: args.output.display().to_string(),
            source,
        })?;
        if args.message_format == Format::Human {
            println!(
                "{}: wrote {} ({} bytes) and {}",
                args.system.display(),
                args.output.display(),
                packed.image.len(),
                args.report.display()
            );
        }
        Ok(true)
    }
}

/// Writes the reports of `plan` (`report::write_all`).
fn write_reports(plan: &Plan, report: &Path) -> Result<(), ToolError> {
    crate::report::write_all(plan, report).map_err(|e| ToolError::Write {
        path: e.path.display().to_string(),
        source: e.source,
    })
}
