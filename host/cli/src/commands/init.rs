//! `cairn init`

use anyhow::{Result, bail};
use cairn_repo::{InitOptions, KdfParams, Repository};

use crate::Outcome;
use crate::args::InitArgs;
use crate::output;
use crate::settings::{Ctx, parse_size};

fn size_u32(s: &str) -> Result<u32> {
    let n = parse_size(s)?;
    u32::try_from(n).or_else(|_| bail!("size `{s}` is too large"))
}

pub fn run(ctx: &Ctx, args: InitArgs) -> Result<Outcome> {
    let backend = ctx.backend()?;
    let chunker = match &args.chunker {
        Some(spec) => {
            let parts: Vec<&str> = spec.split('/').collect();
            let [min, avg, max] = parts[..] else {
                bail!("--chunker wants MIN/AVG/MAX, e.g. 512K/1M/8M; got `{spec}`");
            };
            Some((size_u32(min)?, size_u32(avg)?, size_u32(max)?))
        }
        None => None,
    };
    let pack_size = args.pack_size.as_deref().map(size_u32).transpose()?;
    let mut kdf = KdfParams::default();
    if let Some(m) = args.kdf_memory {
        kdf.memory_kib = m;
    }
    if let Some(i) = args.kdf_iterations {
        kdf.iterations = i;
    }
    let password = ctx.password("enter a password for the new repository: ")?;
    let mut opts = InitOptions::default()
        .chunker_sizes(chunker)
        .pack_size(pack_size)
        .kdf(kdf)
        .kdf_limits(ctx.kdf_limits());
    if args.copy_chunker_params {
        if chunker.is_some() {
            bail!("--chunker and --copy-chunker-params contradict each other; give one");
        }
        opts.copy_chunker_params = Some(ctx.open_from(&args.from)?.config().chunker);
    }
    let repo = Repository::init(backend, password.bytes(), &opts, &ctx.actor())?;
    let c = repo.config();
    if !repo.backend().guarantees().atomic_create {
        tracing::warn!(
            "{} does not refuse a second write of the same name (no conditional put): cairn checks \
             before every write, which two writers racing for one name can defeat; let one \
             process write to this repository at a time",
            repo.backend().location()
        );
    }
    if ctx.global.json {
        output::json(&serde_json::json!({
            "message_type": "initialized",
            "id": c.id,
            "repository": repo.backend().location(),
            "chunker": { "min_size": c.chunker.min_size, "avg_size": c.chunker.avg_size, "max_size": c.chunker.max_size },
            "pack_size": c.pack_size,
            "atomic_create": repo.backend().guarantees().atomic_create,
        }))?;
    } else if !ctx.global.quiet {
        output::line(format!(
            "created cairn repository {} at {}",
            c.id.short(),
            repo.backend().location()
        ))?;
        output::line(
            "keep the password safe: losing it means the data in the repository cannot be read",
        )?;
    }
    Ok(Outcome::Ok)
}
