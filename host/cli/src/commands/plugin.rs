//! `cairn plugin install | list | inspect | remove`.

use std::path::Path;

use anyhow::{Context, Result};
use cairn_plugin_host::{Installed, Manifest, Plugin};
use serde_json::{Value, json};

use crate::Outcome;
use crate::args::{PluginCommand, PluginInspectArgs, PluginInstallArgs, PluginRemoveArgs};
use crate::output;
use crate::plugins::manifest_for;
use crate::settings::Ctx;
use cairn_apps::config::setting_value;

pub fn run(ctx: &Ctx, command: PluginCommand) -> Result<Outcome> {
    match command {
        PluginCommand::Install(a) => install(ctx, a),
        PluginCommand::List => list(ctx),
        PluginCommand::Inspect(a) => inspect(ctx, a),
        PluginCommand::Remove(a) => remove(ctx, a),
    }
}

fn read_component(file: &Path) -> Result<Vec<u8>> {
    std::fs::read(file).with_context(|| format!("cannot read plugin file {}", file.display()))
}

/// What a manifest requests, as one line and as JSON.
fn requests(m: &Manifest) -> (String, Value) {
    let mut parts: Vec<String> = m
        .capabilities
        .http
        .iter()
        .map(|h| format!("http {h}"))
        .collect();
    parts.extend(
        m.capabilities
            .dirs
            .iter()
            .map(|d| format!("{} dir {} at {}", d.access, d.path, d.mount)),
    );
    let limits = &m.limits;
    for (name, value, unit) in [
        ("memory", limits.memory_mib, "MiB"),
        ("cpu", limits.cpu_ms, "ms/call"),
        ("wall", limits.wall_ms, "ms/call"),
    ] {
        if let Some(v) = value {
            parts.push(format!("{name} {v} {unit}"));
        }
    }
    let line = if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join(", ")
    };
    let value = json!({
        "http": m.capabilities.http,
        "dirs": m.capabilities.dirs.iter().map(|d| json!({
            "mount": d.mount, "path": d.path, "access": d.access.to_string(),
        })).collect::<Vec<_>>(),
        "memory_mib": limits.memory_mib,
        "cpu_ms": limits.cpu_ms,
        "wall_ms": limits.wall_ms,
    });
    (line, value)
}

fn summary(m: &Manifest, digest: &str) -> Value {
    json!({
        "name": m.name,
        "version": m.version,
        "world": m.world,
        "description": m.description,
        "digest": digest,
        "requests": requests(m).1,
    })
}

fn install(ctx: &Ctx, args: PluginInstallArgs) -> Result<Outcome> {
    let manifest = manifest_for(&args.file, args.manifest.as_deref())?;
    let wasm = read_component(&args.file)?;
    let runtime = ctx.plugin_runtime()?;
    let store = ctx.plugin_store()?;
    let (plugin, previous) = store
        .install(&runtime, &wasm, manifest)
        .with_context(|| format!("cannot install {}", args.file.display()))?;
    let m = &plugin.manifest;
    if ctx.global.json {
        let mut v = summary(m, &plugin.digest);
        v["replaced"] = json!(previous.as_ref().map(|p| &p.manifest.version));
        output::json(&v)?;
    } else {
        let replaced = previous
            .map(|p| format!(" (replacing version {})", p.manifest.version))
            .unwrap_or_default();
        output::line(format!(
            "installed {} {} ({}) {}{replaced}",
            m.name, m.version, plugin.world, plugin.digest
        ))?;
        output::line(format!("requests: {}", requests(m).0))?;
    }
    Ok(Outcome::Ok)
}

fn list(ctx: &Ctx) -> Result<Outcome> {
    let installed = ctx.plugin_store()?.list()?;
    if ctx.global.json {
        let v: Vec<Value> = installed
            .iter()
            .map(|i| summary(&i.manifest, &i.digest))
            .collect();
        output::json(&v)?;
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = installed
        .iter()
        .map(
            |Installed {
                 digest,
                 manifest: m,
             }| {
                vec![
                    m.name.clone(),
                    m.version.clone(),
                    m.world().to_string(),
                    digest.chars().take(19).collect(),
                    m.description.clone(),
                ]
            },
        )
        .collect();
    output::table(
        &["name", "version", "world", "digest", "description"],
        &rows,
    )?;
    Ok(Outcome::Ok)
}

fn inspect(ctx: &Ctx, args: PluginInspectArgs) -> Result<Outcome> {
    let runtime = ctx.plugin_runtime()?;
    let file = Path::new(&args.plugin);
    let plugin: Plugin = if args.plugin.ends_with(".wasm") || file.is_file() {
        let manifest = manifest_for(file, args.manifest.as_deref())?;
        runtime.load(&read_component(file)?, manifest)?
    } else {
        ctx.plugin_store()?.load(&runtime, &args.plugin)?
    };
    let m = &plugin.manifest;
    // Instances of this plugin in the configuration file, secrets redacted.
    let config = ctx.config()?;
    let instances: Vec<Value> = config
        .plugins
        .iter()
        .filter(|(name, i)| i.plugin.as_deref().unwrap_or(name) == m.name)
        .map(|(name, i)| {
            let settings: serde_json::Map<String, Value> = i
                .config
                .iter()
                .map(|(k, v)| {
                    let shown = if m.is_secret(k) {
                        "<redacted>".to_owned()
                    } else {
                        setting_value(k, v).unwrap_or_else(|e| e.to_string())
                    };
                    (k.clone(), json!(shown))
                })
                .collect();
            json!({
                "instance": name,
                "config": settings,
                "grant": {
                    "http": i.grant.http,
                    "dirs": i.grant.dirs.iter().map(|d| json!({
                        "path": d.path, "access": d.access.to_string(),
                    })).collect::<Vec<_>>(),
                    "memory_mib": i.grant.memory_mib,
                    "cpu_ms": i.grant.cpu_ms,
                    "wall_ms": i.grant.wall_ms,
                },
            })
        })
        .collect();
    let settings: Vec<Value> = m
        .config
        .iter()
        .map(|c| {
            json!({
                "key": c.key, "description": c.description,
                "required": c.required, "secret": m.is_secret(&c.key),
            })
        })
        .collect();
    if ctx.global.json {
        let mut v = summary(m, &plugin.digest);
        v["imports"] = json!(plugin.imports);
        v["exports"] = json!(plugin.exports);
        v["settings"] = json!(settings);
        v["instances"] = json!(instances);
        output::json(&v)?;
        return Ok(Outcome::Ok);
    }
    output::line(format!("name:        {}", m.name))?;
    output::line(format!("version:     {}", m.version))?;
    output::line(format!("world:       {}", m.world))?;
    output::line(format!("digest:      {}", plugin.digest))?;
    output::line(format!("description: {}", m.description))?;
    output::line(format!("requests:    {}", requests(m).0))?;
    output::line("settings:")?;
    for c in &m.config {
        let flags = match (c.required, m.is_secret(&c.key)) {
            (true, true) => " (required, secret)",
            (true, false) => " (required)",
            (false, true) => " (secret)",
            (false, false) => "",
        };
        output::line(format!("  {}{flags}  {}", c.key, c.description))?;
    }
    output::line("imports:")?;
    for i in &plugin.imports {
        output::line(format!("  {i}"))?;
    }
    output::line("exports:")?;
    for e in &plugin.exports {
        output::line(format!("  {e}"))?;
    }
    for i in &instances {
        output::line(format!(
            "instance {}:",
            i["instance"].as_str().unwrap_or("")
        ))?;
        if let Some(cfg) = i["config"].as_object() {
            for (k, v) in cfg {
                output::line(format!("  {k} = {}", v.as_str().unwrap_or("")))?;
            }
        }
        output::line(format!("  grant: {}", i["grant"]))?;
    }
    Ok(Outcome::Ok)
}

fn remove(ctx: &Ctx, args: PluginRemoveArgs) -> Result<Outcome> {
    let removed = ctx.plugin_store()?.remove(&args.name)?;
    if ctx.global.json {
        output::json(&summary(&removed.manifest, &removed.digest))?;
    } else if !ctx.global.quiet {
        output::line(format!(
            "removed {} {}",
            removed.manifest.name, removed.manifest.version
        ))?;
    }
    Ok(Outcome::Ok)
}
