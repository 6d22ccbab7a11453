//! Builds the WebAssembly components the tests run, into `target/wasm`, from source:
//! - the Rust plugins (`plugins/`) and the misbehaving test guests (`tests/guests/`), each a
//!   workspace of its own, with cargo for wasm32-wasip2 (the pattern of wasmtime's
//!   test-programs artifacts build script);
//! - the C plugin (`plugins/dir-c`): bindings from wit-bindgen's C generator, Debian's clang
//!   and wasi-libc, then wit-component with the WASI preview 1 adapter;
//! - the Python plugin (`plugins/dir-py`) with componentize-py;
//! - the JavaScript plugin (`plugins/dir-js`) with componentize-js.
//!
//! The tests find them through `CAIRN_WASM_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf();
    let target = cairn_wasm_build::target_dir(&root);
    for watched in ["wit", "sdk", "plugins", "tests/guests", "tests/build.rs"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for workspace in [root.join("plugins"), root.join("tests/guests")] {
        // The same command as the built-in plugins' build (host/builtin): the same components.
        if let Err(e) = cairn_wasm_build::cargo_build(&workspace, &target) {
            panic!("{e}");
        }
    }
    let out = cairn_wasm_build::out_dir(&target);
    c_plugin(
        &root,
        &target.join("c"),
        &out.join("cairn_plugin_dir_c.wasm"),
    );
    python_plugin(
        &root,
        &target.join("python"),
        &out.join("cairn_plugin_dir_py.wasm"),
    );
    js_plugin(&root, &out.join("cairn_plugin_dir_js.wasm"));
    println!("cargo:rustc-env=CAIRN_WASM_DIR={}", out.display());
}

fn run(cmd: &mut Command, what: &str, hint: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e}); {hint}"));
    assert!(status.success(), "{what} failed; {hint}");
}

/// The C plugin: generate the bindings for the storage-backend world, compile with clang for
/// wasm32-wasi (preview 1, Debian's wasi-libc), and wrap the module into a component.
fn c_plugin(root: &Path, work: &Path, component: &Path) {
    use wit_bindgen_core::wit_parser::Resolve;

    let gen_dir = work.join("gen");
    std::fs::create_dir_all(&gen_dir).expect("create the C work directory");
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(root.join("wit")).expect("parse wit/");
    let world = resolve
        .select_world(&[package], Some("storage-backend"))
        .expect("the storage-backend world");
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .expect("generate the C bindings");
    let mut sources = Vec::new();
    for (name, contents) in files.iter() {
        let path = gen_dir.join(name);
        std::fs::write(&path, contents).expect("write a generated C file");
        if name.ends_with(".c") || name.ends_with(".o") {
            sources.push(path);
        }
    }
    let core = work.join("core.wasm");
    let hint = "install Debian's clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 \
                (scripts/test.sh does)";
    run(
        Command::new("clang-19")
            .args([
                "--target=wasm32-wasi",
                "--sysroot=/usr",
                "-mexec-model=reactor",
                "-O2",
                "-s",
                "-Wall",
                "-Werror",
                "-o",
            ])
            .arg(&core)
            .arg("-I")
            .arg(&gen_dir)
            .arg(root.join("plugins/dir-c/dir.c"))
            .args(&sources),
        "clang-19 for the C plugin",
        hint,
    );
    let module = std::fs::read(&core).expect("read the C module");
    let bytes = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| {
            e.adapter(
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|e| e.validate(true).encode())
        .expect("wrap the C module into a component");
    std::fs::write(component, bytes).expect("write the C component");
}

/// The Python plugin: componentize-py bundles CPython, the plugin's modules and the generated
/// bindings into one component.
fn python_plugin(root: &Path, work: &Path, component: &Path) {
    std::fs::create_dir_all(work).expect("create the Python work directory");
    run(
        Command::new("componentize-py")
            .current_dir(work)
            .arg("-d")
            .arg(root.join("wit"))
            .args(["-w", "storage-backend", "componentize", "-p"])
            .arg(root.join("plugins/dir-py"))
            .args(["app", "-o"])
            .arg(component),
        "componentize-py for the Python plugin",
        "install it with `pip install componentize-py` (scripts/test.sh does)",
    );
}

/// The JavaScript plugin: componentize-js embeds StarlingMonkey and the module into one
/// component of the plugin's world (the storage backend and the WASI file system), without
/// the engine's HTTP features (a storage plugin has no network unless granted).
fn js_plugin(root: &Path, component: &Path) {
    let dir = root.join("plugins/dir-js");
    run(
        Command::new("componentize-js")
            .arg(dir.join("store.js"))
            .arg("--wit")
            .arg(dir.join("wit"))
            .args([
                "--world-name",
                "dir-js",
                "--disable",
                "http",
                "fetch-event",
                "--out",
            ])
            .arg(component),
        "componentize-js for the JavaScript plugin",
        "install it with `npm install --global @bytecodealliance/componentize-js@0.23.0` \
         (scripts/test.sh does)",
    );
}
