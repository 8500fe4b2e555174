//! An on-disk cache of compiled components, so a plugin is compiled once, not on every run.
//!
//! Compiling a component to machine code takes 4-5 s for a Python or JavaScript plugin. The
//! compiled code is kept in a directory (by default `$XDG_CACHE_HOME/easycaching/compiled`, or
//! `~/.cache/easycaching/compiled`), named by a SHA-256 of the component's bytes together with
//! everything about the engine that compiled code depends on; the next run maps that file
//! into memory and starts at once. Entries are written to a temporary name and renamed into
//! place, so concurrent runs never see half a file.
//!
//! Loading compiled code trusts it as much as the easycaching binary itself: keep the
//! directory private to the user (it is created with mode 0700).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept. [`Runtime`](crate::Runtime) uses one; hosts with an engine
/// of their own (such as `easycaching serve`) use it directly.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
}

impl CompiledCache {
    /// The default directory, when the environment names a home or cache directory.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(base.join("easycaching").join("compiled"))
    }

    /// Compiled components kept in `dir`, created when the first one is stored.
    pub fn new(dir: PathBuf) -> CompiledCache {
        CompiledCache { dir }
    }

    /// The compiled form of `wasm`: from the cache when it is there, else compiled and kept.
    /// Failing to read or write the cache only costs a compile, never the run.
    pub fn load(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        let path = self.dir.join(format!("{}.cwasm", key(engine, wasm)));
        if path.exists() {
            // SAFETY: the file was written by `store` below from `Component::serialize` of this
            // very engine configuration (its name covers both), into a directory only the
            // user can write. `deserialize_file` also checks the engine's compatibility.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    tracing::debug!(path = %path.display(), "loaded the compiled component");
                    return Ok(component);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "ignoring a compiled component that does not load")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
        tracing::debug!(path = %path.display(), "compiled the component; keeping it");
        if let Err(error) = self.store(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot keep the compiled component; the next run compiles it again");
        }
        Ok(component)
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        create_private_dir(&self.dir)?;
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, component.serialize()?)?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    }
}

/// SHA-256 over the engine's compatibility hash and the component's bytes.
fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let mut digest = Sha256::new();
    digest.update(engine_hash.finish().to_le_bytes());
    digest.update(wasm);
    digest.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
