//! `cairn plugin install | list | inspect | remove`.

use std::path::Path;

use anyhow::{Context, Result};
use cairn_plugin_host::{Installed, Manifest, Plugin, Source};
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

fn summary(m: &Manifest, digest: &str, source: Source) -> Value {
    json!({
        "name": m.name,
        "version": m.version,
        "world": m.world,
        "description": m.description,
        "digest": digest,
        "source": source.as_str(),
        "requests": requests(m).1,
    })
}

fn install(ctx: &Ctx, args: PluginInstallArgs) -> Result<Outcome> {
    let manifest = manifest_for(&args.file, args.manifest.as_deref())?;
    let wasm = read_component(&args.file)?;
    let runtime = ctx.plugin_runtime()?;
    let store = ctx.plugin_store()?;
    let done = store
        .install(&runtime, &wasm, manifest, args.override_builtin)
        .with_context(|| format!("cannot install {}", args.file.display()))?;
    let (plugin, previous) = (&done.plugin, &done.replaced);
    let m = &plugin.manifest;
    let source = if done.recorded {
        Source::Installed
    } else {
        Source::Builtin
    };
    if ctx.global.json {
        let mut v = summary(m, &plugin.digest, source);
        v["installed"] = json!(done.recorded);
        v["replaced"] = json!(previous.as_ref().map(|p| &p.manifest.version));
        output::json(&v)?;
    } else if !done.recorded {
        let back = if previous.is_some() {
            "; the override installed before is removed"
        } else {
            ""
        };
        output::line(format!(
            "{} {} ({}) {} is built in: nothing to install{back}",
            m.name, m.version, plugin.world, plugin.digest
        ))?;
    } else {
        let replaced = previous
            .as_ref()
            .map(|p| format!(" (replacing version {})", p.manifest.version))
            .unwrap_or_default();
        // (`--override-builtin` is refused for a name that is not built in.)
        let instead = if args.override_builtin {
            " instead of the built-in one"
        } else {
            ""
        };
        output::line(format!(
            "installed {} {} ({}) {}{replaced}{instead}",
            m.name, m.version, plugin.world, plugin.digest
        ))?;
        output::line(format!("requests: {}", requests(m).0))?;
    }
    Ok(Outcome::Ok)
}

fn list(ctx: &Ctx) -> Result<Outcome> {
    let store = ctx.plugins();
    let listed = store.list()?;
    let lacking = &store.builtins().lacking;
    if !lacking.is_empty() {
        tracing::warn!(
            "this cairn was built without its built-in plugins ({}): {}",
            lacking.join(", "),
            store.builtins().why
        );
    }
    if ctx.global.json {
        let v: Vec<Value> = listed
            .iter()
            .map(|i| {
                let mut v = summary(&i.manifest, &i.digest, i.source);
                v["override_builtin"] = json!(i.override_builtin);
                v
            })
            .collect();
        output::json(&v)?;
        return Ok(Outcome::Ok);
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(
            |Installed {
                 digest,
                 manifest: m,
                 source,
                 override_builtin,
             }| {
                let source = match (source, override_builtin) {
                    (Source::Installed, true) => "installed (overrides built-in)",
                    (Source::Shadowed, _) => "installed (unused: built in)",
                    (s, _) => s.as_str(),
                };
                vec![
                    m.name.clone(),
                    m.version.clone(),
                    m.world().to_string(),
                    source.to_owned(),
                    digest.chars().take(19).collect(),
                    m.description.clone(),
                ]
            },
        )
        .collect();
    output::table(
        &[
            "name",
            "version",
            "world",
            "source",
            "digest",
            "description",
        ],
        &rows,
    )?;
    Ok(Outcome::Ok)
}

fn inspect(ctx: &Ctx, args: PluginInspectArgs) -> Result<Outcome> {
    let runtime = ctx.plugin_runtime()?;
    let file = Path::new(&args.plugin);
    let (plugin, source): (Plugin, Option<Source>) =
        if args.plugin.ends_with(".wasm") || file.is_file() {
            let manifest = manifest_for(file, args.manifest.as_deref())?;
            (runtime.load(&read_component(file)?, manifest)?, None)
        } else {
            let store = ctx.plugins();
            let source = store.get(&args.plugin)?.source;
            (store.load(&runtime, &args.plugin)?, Some(source))
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
        let mut v = summary(m, &plugin.digest, source.unwrap_or_default());
        if source.is_none() {
            v["source"] = json!("file");
        }
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
    output::line(format!(
        "source:      {}",
        source.map_or("file", Source::as_str)
    ))?;
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
        output::line(format!("  grant: {}", grant_line(&i["grant"])))?;
    }
    Ok(Outcome::Ok)
}

fn remove(ctx: &Ctx, args: PluginRemoveArgs) -> Result<Outcome> {
    let removed = ctx.plugin_store()?.remove(&args.name)?;
    if ctx.global.json {
        output::json(&summary(&removed.manifest, &removed.digest, removed.source))?;
    } else if !ctx.global.quiet {
        output::line(format!(
            "removed {} {}",
            removed.manifest.name, removed.manifest.version
        ))?;
    }
    Ok(Outcome::Ok)
}

/// An instance's grant as the configuration file writes it, on one line.
fn grant_line(g: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(http) = g["http"].as_array().filter(|h| !h.is_empty()) {
        let list: Vec<String> = http.iter().map(|h| format!("{h}")).collect();
        parts.push(format!("http = [{}]", list.join(", ")));
    }
    if let Some(dirs) = g["dirs"].as_array().filter(|d| !d.is_empty()) {
        let list: Vec<String> = dirs
            .iter()
            .map(|d| format!("{{ path = {}, access = {} }}", d["path"], d["access"]))
            .collect();
        parts.push(format!("dirs = [{}]", list.join(", ")));
    }
    for (key, name) in [
        ("memory_mib", "memory-mib"),
        ("cpu_ms", "cpu-ms"),
        ("wall_ms", "wall-ms"),
    ] {
        if let Some(v) = g[key].as_u64() {
            parts.push(format!("{name} = {v}"));
        }
    }
    if parts.is_empty() {
        "nothing".to_owned()
    } else {
        parts.join("; ")
    }
}
