//! Plugin start-up cost, for bench/plugin.sh.
//!
//! `instantiate COMPONENT MANIFEST CACHE_DIR REPO_DIR` prints, in milliseconds:
//! `cold` — a new runtime loading the compiled component from the cache, linking, instantiating
//! and opening a store (what a `cairn` process pays before its first plugin call), and `warm` —
//! the median of 200 fresh instances (store, instantiation, `open`) from the linked plugin.

use std::path::PathBuf;
use std::time::Instant;

use cairn_plugin_host::{
    Access, CompiledCache, DirGrant, Grants, Manifest, PluginBackend, Runtime,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [component, manifest, cache, repo] = args.as_slice() else {
        return Err("usage: instantiate COMPONENT MANIFEST CACHE_DIR REPO_DIR".into());
    };
    let wasm = std::fs::read(component)?;
    let manifest = Manifest::load(manifest)?;
    let config = vec![("path".to_owned(), repo.display().to_string())];
    let grants = Grants {
        dirs: vec![DirGrant {
            path: repo.clone(),
            access: Access::ReadWrite,
        }],
        ..Grants::default()
    };

    let start = Instant::now();
    let runtime = Runtime::new(Some(CompiledCache::new(
        cache.clone(),
        cache.with_extension("key"),
    )))?;
    let plugin = runtime.load(&wasm, manifest)?;
    let caps = grants.resolve(&plugin.manifest, &config, "")?;
    let backend = PluginBackend::open(runtime, &plugin, "bench", config, caps, 1)?;
    let cold = start.elapsed();

    let mut warm: Vec<f64> = (0..200)
        .map(|_| {
            let t = Instant::now();
            backend
                .fresh_instance()
                .map(|()| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    warm.sort_by(f64::total_cmp);
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    writeln!(out, "cold {:.3}", cold.as_secs_f64() * 1e3)?;
    writeln!(out, "warm {:.3}", warm[warm.len() / 2])?;
    Ok(())
}
