//! Plugin output follows the host's stdout when an embedder points it elsewhere (`dup2`) after
//! a plugin first wrote to it. In a test binary of its own: it redirects the process's stdout.

/// Writes `text` to the host's stdout as a plugin's stream would, and waits until it is out.
#[cfg(target_os = "linux")]
fn write(text: &[u8]) {
    use std::time::{Duration, Instant};
    use wasmtime_wasi::cli::StdoutStream;

    let output = easycaching_host::HostOutput::stdout();
    let mut stream = output.p2_stream();
    assert!(stream.check_write().expect("stdout takes bytes") >= text.len());
    stream.write(bytes::Bytes::copy_from_slice(text)).expect("written");
    assert!(output.wait_written(Some(Instant::now() + Duration::from_secs(10))), "written in time");
}

#[cfg(target_os = "linux")]
#[test]
fn plugin_output_goes_where_stdout_was_redirected_after_a_plugin_wrote_to_it() {
    use std::io::{Read, Seek};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    // SAFETY: plain descriptor calls, each checked; every descriptor made is owned by a File or
    // OwnedFd, and fd 1 is put back as it was before the test returns.
    unsafe {
        let saved = OwnedFd::from_raw_fd(libc::dup(libc::STDOUT_FILENO));
        let mut ends = [0; 2];
        assert_eq!(libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC), 0);
        assert_eq!(libc::fcntl(ends[0], libc::F_SETFL, libc::O_NONBLOCK), 0);
        let mut reader = std::fs::File::from_raw_fd(ends[0]);
        let writer = OwnedFd::from_raw_fd(ends[1]);
        assert!(libc::dup2(writer.as_raw_fd(), libc::STDOUT_FILENO) >= 0);
        drop(writer);

        write(b"to the pipe\n");
        let mut piped = [0; 64];
        let read = reader.read(&mut piped).expect("the pipe holds the first write");
        assert_eq!(&piped[..read], b"to the pipe\n");

        let mut file = tempfile::tempfile().unwrap();
        assert!(libc::dup2(file.as_raw_fd(), libc::STDOUT_FILENO) >= 0);
        write(b"to the file\n");
        assert!(libc::dup2(saved.as_raw_fd(), libc::STDOUT_FILENO) >= 0);

        let mut filed = String::new();
        file.rewind().unwrap();
        file.read_to_string(&mut filed).unwrap();
        let after = reader.read(&mut piped);
        let went = after.as_ref().map(|n| String::from_utf8_lossy(&piped[..*n]).into_owned());
        assert_eq!(filed, "to the file\n", "the old pipe got {went:?}");
        // Nothing holds the old pipe open for writing any more: its reader sees its end.
        assert_eq!(after.expect("the pipe's end, not would-block"), 0);
    }
}
