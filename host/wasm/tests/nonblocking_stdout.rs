//! Plugin output reaches a host stdout whose description is non-blocking (a parent process set
//! `O_NONBLOCK` on the pipe it shares, as Node.js does), however slowly its reader reads. In a
//! test binary of its own: it redirects the process's stdout.

#[cfg(target_os = "linux")]
#[test]
fn plugin_output_waits_for_a_slow_reader_of_a_non_blocking_stdout_rather_than_failing() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};
    use wasmtime_wasi::cli::StdoutStream;

    const BYTES: usize = 1 << 20;
    // SAFETY: plain descriptor calls, each checked; every descriptor made is owned by a File or
    // OwnedFd, and fd 1 is put back as it was before the test returns.
    let (saved, mut reader) = unsafe {
        let saved = OwnedFd::from_raw_fd(libc::dup(libc::STDOUT_FILENO));
        let mut ends = [0; 2];
        assert_eq!(libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC), 0);
        // The reader polls, to stop once the writes are over (the host keeps a description
        // of its own open on the pipe, so it never sees the end).
        assert_eq!(libc::fcntl(ends[0], libc::F_SETFL, libc::O_NONBLOCK), 0);
        // The description fd 1 shares is the non-blocking one.
        assert_eq!(libc::fcntl(ends[1], libc::F_SETFL, libc::O_NONBLOCK), 0);
        let writer = OwnedFd::from_raw_fd(ends[1]);
        assert!(libc::dup2(writer.as_raw_fd(), libc::STDOUT_FILENO) >= 0);
        (saved, std::fs::File::from_raw_fd(ends[0]))
    };
    let over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = std::thread::spawn({
        let over = over.clone();
        move || {
            let mut got = Vec::new();
            let mut page = [0; 4096];
            while got.len() < BYTES {
                std::thread::sleep(Duration::from_micros(200));
                match reader.read(&mut page) {
                    Ok(read) if read > 0 => got.extend_from_slice(&page[..read]),
                    _ if over.load(std::sync::atomic::Ordering::Acquire) => break,
                    _ => {}
                }
            }
            got
        }
    });

    let output = easycaching_host::HostOutput::stdout();
    let mut stream = output.p2_stream();
    let sent: Vec<u8> = (0..BYTES).map(|n| (n % 251) as u8).collect();
    let mut rest = &sent[..];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut failed = None;
    while !rest.is_empty() && Instant::now() < deadline {
        match stream.check_write() {
            Ok(0) => std::thread::sleep(Duration::from_millis(1)),
            Ok(room) => {
                let now = room.min(rest.len());
                if let Err(error) = stream.write(bytes::Bytes::copy_from_slice(&rest[..now])) {
                    failed = Some(format!("write: {error}"));
                    break;
                }
                rest = &rest[now..];
            }
            Err(error) => {
                failed = Some(format!("check-write: {error}"));
                break;
            }
        }
    }
    let written = output.wait_written(Some(deadline));
    over.store(true, std::sync::atomic::Ordering::Release);
    // SAFETY: puts fd 1 back; ends the slow reader, whose pipe has no writer left.
    assert!(unsafe { libc::dup2(saved.as_raw_fd(), libc::STDOUT_FILENO) } >= 0);
    drop(stream);
    let got = slow.join().unwrap();
    assert_eq!(failed, None, "plugin output failed after {} of {BYTES} bytes", BYTES - rest.len());
    assert!(written, "all written in time");
    assert!(got == sent, "the reader got {} bytes, not the {BYTES} written, in order", got.len());
}
