//! Waits on its standard streams, for the host to take or give bytes.
//!
//! - `write stdout BYTES [CHUNK]` (or `stderr`): writes BYTES bytes of numbered lines
//!   (`00000000000\n`, `00000000001\n`, ...: 12 bytes each) to that stream, CHUNK bytes (64 KiB
//!   unless given) a `write_all`, then `wrote BYTES` to the other.
//!   To a pipe nobody reads, it blocks once the pipe is full, in a host call: the host must
//!   stop it at its time limit all the same.
//! - `queue stdout BYTES` (or `stderr`): writes the same bytes with `output-stream.write`, as
//!   much at a time as `check-write` allows, never waiting for them to be written (only for
//!   `check-write` to allow more), then `wrote BYTES` to the other stream, then loops until
//!   its time limit stops it: to a stdout slower than it, bytes it wrote are still queued in
//!   the host when it is stopped.
//! - `lines N`: prints N numbered lines, one `println!` (one host call) each.
//! - `read`: reads stdin to its end, then prints `read N bytes`. A stdin that never ends
//!   blocks it in a host call too.

use std::io::{Read, Write};

mod bindings {
    wit_bindgen::generate!({
        inline: "package test:stdio; world streams { import wasi:cli/stdout@0.2.12; import wasi:cli/stderr@0.2.12; }",
        path: "../../../wit",
        generate_all,
    });
}

/// The numbered lines of `write` and `queue`: `00000000000\n`, `00000000001\n`, ..., cut at
/// `bytes`.
fn flood(bytes: usize) -> String {
    let lines = bytes.div_ceil(12);
    let mut text = String::with_capacity(lines * 12);
    for line in 0..lines {
        text.push_str(&format!("{line:011}\n"));
    }
    text.truncate(bytes);
    text
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["write", stream, bytes, chunk @ ..] => {
            let bytes: usize = bytes.parse().expect("a number of bytes");
            let chunk: usize = match chunk {
                [] => 64 * 1024,
                [chunk] => chunk.parse().expect("a number of bytes a write"),
                _ => panic!("write: too many arguments"),
            };
            let text = flood(bytes);
            let mut out: Box<dyn Write> = match *stream {
                "stdout" => Box::new(std::io::stdout()),
                _ => Box::new(std::io::stderr()),
            };
            for chunk in text.as_bytes().chunks(chunk) {
                out.write_all(chunk).expect("writing");
            }
            out.flush().expect("flushing");
            match *stream {
                "stdout" => eprintln!("wrote {bytes}"),
                _ => println!("wrote {bytes}"),
            }
        }
        ["queue", stream, bytes] => {
            let bytes: usize = bytes.parse().expect("a number of bytes");
            let text = flood(bytes);
            let out = match *stream {
                "stdout" => bindings::wasi::cli::stdout::get_stdout(),
                _ => bindings::wasi::cli::stderr::get_stderr(),
            };
            let mut rest = text.as_bytes();
            while !rest.is_empty() {
                let allowed = out.check_write().expect("the stream takes bytes");
                if allowed == 0 {
                    out.subscribe().block();
                    continue;
                }
                let (now, later) = rest.split_at(rest.len().min(allowed as usize));
                out.write(now).expect("writing");
                rest = later;
            }
            match *stream {
                "stdout" => eprintln!("wrote {bytes}"),
                _ => println!("wrote {bytes}"),
            }
            loop {
                std::hint::black_box(());
            }
        }
        ["lines", count] => {
            for line in 0..count.parse::<u64>().expect("a number of lines") {
                println!("{line:011}");
            }
        }
        ["read"] => {
            let mut input = Vec::new();
            std::io::stdin().read_to_end(&mut input).expect("reading stdin");
            println!("read {} bytes", input.len());
        }
        _ => panic!(
            "usage: stdio_flood write stdout|stderr BYTES [CHUNK] | queue stdout|stderr BYTES | lines N | read"
        ),
    }
}
