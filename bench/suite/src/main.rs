//! `easycaching-bench`: the figures criterion cannot take, the instruction counts, and the
//! report. `make bench` runs its stages in turn; each writes `target/bench/parts/STAGE.json`,
//! and `report` gathers them with criterion's results into the table,
//! `target/bench/results.json` and `target/bench/results.md`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use easycaching_bench::report::{self, Figure};
use easycaching_bench::stages::{self, Budget};
use serde::Serialize;

#[derive(Parser)]
#[command(about = "easycaching's benchmarks: each figure next to a baseline measured in the same run")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs one micro case N times and nothing else (what callgrind counts).
    Ops {
        /// The case, e.g. hit/easycaching-get.
        case: String,
        /// Iterations.
        iterations: u64,
    },
    /// Counts the instructions of every micro case with callgrind.
    Callgrind,
    /// Runs one stage of bounded loops and writes its figures.
    Stage {
        /// Which.
        stage: StageName,
        /// Longer runs, and the largest scale (10M entries).
        #[arg(long)]
        full: bool,
        /// For `original`: the virtualenv's Python; for `http`: bench/http.sh's output.
        #[arg(long)]
        input: Option<PathBuf>,
    },
    /// A process that a stage starts (not for direct use).
    #[command(hide = true)]
    Child {
        /// writer, producer, consumer or scale.
        role: String,
        #[arg(long, default_value = "easycaching")]
        engine: String,
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value_t = 0)]
        start_at: u64,
        #[arg(long, default_value_t = 1000)]
        millis: u64,
        #[arg(long, default_value_t = 0)]
        index: u64,
        #[arg(long, default_value_t = 0)]
        entries: u64,
        /// For a writer: where its keys start (see `stages::writes::writer_key`).
        #[arg(long, default_value_t = 0)]
        first_key: u64,
        /// For a writer: a new key every write, rather than cycling through its keys.
        #[arg(long)]
        new_keys: bool,
    },
    /// Gathers every stage's figures: prints the table, writes results.json and results.md.
    Report {
        /// Where criterion left its results (CRITERION_HOME).
        #[arg(long)]
        criterion: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StageName {
    /// The per-call figures that carry a target, each in turns with its baseline.
    MicroTurns,
    /// Durable set, one writer, and 8 concurrent writers (threads and processes).
    Writes,
    /// Against Spin's store design.
    Spin,
    /// Against Redis on loopback.
    Redis,
    /// Queues, in one process and across two.
    Queues,
    /// Compiling, and `easycaching run` end to end.
    Startup,
    /// 1k, 100k, 1M entries (10M with --full).
    Scale,
    /// Python and JavaScript guests.
    Languages,
    /// The original Python easycaching (needs --input PYTHON).
    Original,
    /// The HTTP server (needs --input OUTPUT_OF_HTTP_SH).
    Http,
    /// The PostgreSQL backend (when EASYCACHING_BENCH_POSTGRES names a server).
    Postgres,
}

impl StageName {
    fn file(self) -> &'static str {
        match self {
            StageName::MicroTurns => "micro-turns",
            StageName::Writes => "writes",
            StageName::Spin => "spin",
            StageName::Redis => "redis",
            StageName::Queues => "queues",
            StageName::Startup => "startup",
            StageName::Scale => "scale",
            StageName::Languages => "languages",
            StageName::Original => "original",
            StageName::Http => "http",
            StageName::Postgres => "postgres",
        }
    }
}

/// Every part, in the order the table shows them (the micro figures first).
const PARTS: &[&str] = &[
    "micro",
    "micro-turns",
    "writes",
    "startup",
    "scale",
    "redis",
    "queues",
    "original",
    "spin",
    "languages",
    "http",
    "postgres",
];

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Ops { case, iterations } => {
            let mut run = easycaching_bench::micro::prepare(&case)?;
            std::hint::black_box(run(iterations));
        }
        Cmd::Callgrind => {
            let counts = stages::callgrind::run()?;
            std::fs::create_dir_all(report::parts_dir())?;
            std::fs::write(
                report::parts_dir().join("callgrind-raw.json"),
                serde_json::to_vec_pretty(&counts)?,
            )?;
        }
        Cmd::Stage { stage, full, input } => {
            let budget = Budget::new(full);
            let needs_input = || input.clone().ok_or_else(|| anyhow::anyhow!("this stage needs --input"));
            let figures: Vec<Figure> = match stage {
                StageName::Writes => {
                    let mut figures = vec![stages::writes::single(budget)?];
                    figures.extend(stages::writes::threads(budget)?);
                    figures.extend(stages::writes::processes(budget)?);
                    figures
                }
                StageName::MicroTurns => stages::micro_turns::run(full)?,
                StageName::Spin => vec![stages::writes::spin(budget)?],
                StageName::Redis => stages::versus_redis::run(budget)?,
                StageName::Queues => stages::queues::run(budget)?,
                StageName::Startup => stages::startup::run()?,
                StageName::Scale => stages::scale::run(full)?,
                StageName::Languages => stages::languages::run()?,
                StageName::Original => stages::original::run(&needs_input()?)?,
                StageName::Http => stages::http::run(&needs_input()?)?,
                StageName::Postgres => stages::postgres::run(budget)?,
            };
            print!("{}", report::aligned(&report::markdown(&figures)));
            report::write_part(stage.file(), &figures)?;
        }
        Cmd::Child { role, engine, db, start_at, millis, index, entries, first_key, new_keys } => match role
            .as_str()
        {
            "writer" => {
                let keys = stages::writes::WriterKeys { index, first_key, new_keys };
                println!("{}", stages::writes::writer_child(&engine, &db, start_at, millis, keys)?.line())
            }
            "producer" | "consumer" => {
                println!("{}", stages::queues::peer_child(&role, &engine, &db, start_at, millis)?)
            }
            "scale" => println!("{}", serde_json::to_string(&stages::scale::child(&db, entries, millis)?)?),
            other => anyhow::bail!("no child role {other:?}"),
        },
        Cmd::Report { criterion } => {
            let instructions = report::read_instructions();
            report::write_part("micro", &stages::micro_figures::figures(&criterion, &instructions))?;
            let mut figures = report::read_parts(PARTS)?;
            // By section ("4. durable writes" comes from the micro cases and a stage alike).
            figures
                .sort_by_key(|figure| figure.section.split('.').next().and_then(|n| n.parse::<u32>().ok()));
            let machine = Machine::read();
            let table = report::markdown(&figures);
            println!("\n{}\n", machine.describe());
            print!("{}", report::aligned(&table));
            let met = figures.iter().filter_map(|f| f.target.as_ref()).filter(|t| t.met).count();
            let targets = figures.iter().filter(|f| f.target.is_some()).count();
            println!(
                "\n{met} of {targets} targets met. Ratios are easycaching / baseline, both measured in this run."
            );
            let dir = easycaching_bench::bench_dir();
            std::fs::write(dir.join("results.md"), format!("{}\n\n{table}", machine.describe()))?;
            let results = Results { machine, figures };
            std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(&results)?)?;
            println!("Written: {} and results.md", dir.join("results.json").display());
        }
    }
    Ok(())
}

/// What `target/bench/results.json` holds.
#[derive(Serialize)]
struct Results {
    machine: Machine,
    figures: Vec<Figure>,
}

/// The machine and its state when the report was made: on a shared machine, the load says how
/// much to trust the absolute times.
#[derive(Serialize)]
struct Machine {
    date: String,
    cpus: usize,
    cpu_model: String,
    memory_gib: f64,
    load_average: String,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        };
        let memory_kib: f64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default();
        Machine {
            date,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            memory_gib: (memory_kib / 1048576.0 * 10.0).round() / 10.0,
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}: {} CPUs ({}), {} GiB of memory, load average {} (1, 5, 15 min) at the end of the run",
            self.date, self.cpus, self.cpu_model, self.memory_gib, self.load_average
        )
    }
}
