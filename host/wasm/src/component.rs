//! What a plugin file holds: compiling it, and telling which host runs it from what it exports.
//!
//! `easycaching run` and `easycaching serve` (and [`Runtime`](crate::Runtime) and the HTTP
//! server of `easycaching-http`) load plugins the same way and fail the same ways. A file that
//! is not WebAssembly at all, or a plugin built for the other host, is said so in plain words
//! before anything else is tried: an HTTP handler given to `run` would otherwise be reported
//! as importing interfaces the host does not provide.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::CompiledCache;

/// The bytes every WebAssembly binary begins with, module or component.
const WASM_MAGIC: &[u8] = b"\0asm";

/// Which host a plugin was built for, told from the interface its component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PluginKind {
    /// It exports `wasi:cli/run` (the `easycaching:cache/plugin` world): a command, run with
    /// `easycaching run` or [`Runtime::load`](crate::Runtime::load).
    Command,
    /// It exports `wasi:http/incoming-handler` (the `easycaching:cache/http-handler` world),
    /// served with `easycaching serve`.
    HttpHandler,
}

impl PluginKind {
    /// The kind of `component`, or `None` when it exports neither interface.
    pub fn of(engine: &Engine, component: &Component) -> Option<PluginKind> {
        let component_type = component.component_type();
        let mut exports = component_type.exports(engine).map(|(name, _)| name);
        exports.find_map(|name| match interface_name(name) {
            "wasi:cli/run" => Some(PluginKind::Command),
            "wasi:http/incoming-handler" => Some(PluginKind::HttpHandler),
            _ => None,
        })
    }

    /// Why a plugin of this kind cannot be used where `wanted` is: which command runs it.
    pub fn mismatch(self, wanted: PluginKind) -> Option<String> {
        match (self, wanted) {
            (PluginKind::HttpHandler, PluginKind::Command) => Some(
                "it is an HTTP handler (it exports wasi:http/incoming-handler), not a command: serve it with `easycaching serve`"
                    .into(),
            ),
            (PluginKind::Command, PluginKind::HttpHandler) => Some(
                "it is a command (it exports wasi:cli/run), not an HTTP handler: run it with `easycaching run`".into(),
            ),
            _ => None,
        }
    }
}

/// An export's interface without its version: `wasi:cli/run@0.2.12` is `wasi:cli/run`.
fn interface_name(export: &str) -> &str {
    export.split_once('@').map_or(export, |(name, _version)| name)
}

/// Compiles `wasm` for `engine`, or maps its compiled form from `compiled` when it is there.
/// The error says what the bytes are when they are not a component this host can compile.
pub fn compile_component(
    engine: &Engine,
    compiled: Option<&CompiledCache>,
    wasm: &[u8],
) -> Result<Component, String> {
    let component = match compiled {
        Some(cache) => cache.load(engine, wasm),
        None => Component::new(engine, wasm),
    };
    component.map_err(|error| {
        if wasm.starts_with(WASM_MAGIC) {
            format!("not a WebAssembly component this host can compile: {error:#}")
        } else {
            "not a WebAssembly file (it does not begin with the bytes \\0asm)".into()
        }
    })
}

/// Fails with why a component of another kind than `wanted` cannot be used here.
pub fn expect_plugin_kind(engine: &Engine, component: &Component, wanted: PluginKind) -> Result<(), String> {
    match PluginKind::of(engine, component).and_then(|kind| kind.mismatch(wanted)) {
        Some(mismatch) => Err(mismatch),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_known_by_their_interface_whatever_the_version() {
        assert_eq!(interface_name("wasi:cli/run@0.2.12"), "wasi:cli/run");
        assert_eq!(interface_name("wasi:http/incoming-handler@0.2.0"), "wasi:http/incoming-handler");
        assert_eq!(interface_name("run"), "run");
    }

    #[test]
    fn bytes_that_are_not_wasm_are_named_as_such() {
        let engine = Engine::default();
        let text = compile_component(&engine, None, b"just some notes").unwrap_err();
        assert!(text.contains("not a WebAssembly file"), "{text}");
        let module = compile_component(&engine, None, b"\0asm\x01\0\0\0").unwrap_err();
        assert!(module.contains("not a WebAssembly component"), "{module}");
    }
}
