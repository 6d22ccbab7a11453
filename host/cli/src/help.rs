//! The examples at the end of the long help (`--help`) of the commands people start with.

pub const BACKUP: &str = "\
Examples:
  cairn -r /srv/backup/repo init
  cairn -r /srv/backup/repo backup /etc /home --exclude '*.cache' --tag nightly
  cd /srv/site && cairn backup .        (stores the directory's contents at the root)
  pg_dump shop | cairn backup --stdin --stdin-filename shop.sql
  cairn backup --all-discovered         (every volume the discovery plugins find)
  cairn --config /etc/cairn/cairn.toml backup --for-app shop   (its hooks, volumes, repository)";

pub const RESTORE: &str = "\
Examples:
  cairn restore latest --target /tmp/out
  cairn restore latest:/etc --target /tmp/etc --include 'nginx/**'
  cairn restore 4f2a9c1e --target /srv/site --overwrite if-changed --delete --verify
  cairn restore latest --to-bucket s3:http://127.0.0.1:8333/bucket/prefix";

pub const FORGET: &str = "\
Examples:
  cairn forget 4f2a9c1e                 (one snapshot, by id)
  cairn forget --keep-daily 7 --keep-weekly 6 --keep-monthly 6 --keep-yearly 1 --prune
  cairn forget --keep-last 3 --dry-run  (show what would go)";

pub const DISCOVER: &str = "\
Examples:
  cairn discover                        (the volumes on this node)
  cairn discover --unprotected          (those no configured app covers)
  kubectl get pods,pvc -A -o json > inv.json && cairn discover --inventory inv.json --json";

pub const PLUGIN_INSTALL: &str = "\
Examples:
  cairn plugin install ./target/wasm32-wasip2/release/my_store.wasm   (plugin.toml beside it)
  cairn plugin install my_store.wasm --manifest my-store.toml
  cairn plugin install kubelet.wasm --manifest plugin.toml --override-builtin   (yours, not cairn's)";

pub const REWRITE: &str = "\
Examples:
  cairn rewrite --exclude '*.key' --exclude '/home/*/.cache' --dry-run
  cairn rewrite 4f2a9c1e --exclude-file secrets.txt --forget   (then `cairn prune`)";

pub const MOUNT: &str = "\
Examples:
  mkdir /mnt/cairn && cairn mount /mnt/cairn &
  ls /mnt/cairn/snapshots/latest/etc        (also ids/, hosts/, tags/, apps/, volumes/)
  cp /mnt/cairn/hosts/web1/latest/etc/nginx/nginx.conf /tmp/
  fusermount -u /mnt/cairn                  (or Ctrl-C in the mounting shell)";

pub const FIND: &str = "\
Examples:
  cairn find '*.conf'                   (by name, in every snapshot)
  cairn find '/etc/nginx/*' --snapshot latest --long
  cairn find -i 'README*' --host web1 --newest 2d
  cairn find --blob 8c1f2e0a            (the files holding a blob, e.g. one `check` named)
  cairn find --pack 3e9d7b21 --json     (what a damaged pack held)";

pub const GENERATE: &str = "\
Examples:
  cairn generate --bash-completion /etc/bash_completion.d/cairn
  cairn generate --zsh-completion ~/.zfunc/_cairn --fish-completion ~/.config/fish/completions/cairn.fish
  cairn generate --man /usr/local/share/man/man1";

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::args::Cli;

    /// What `cairn ARGS… --help` prints.
    fn help(args: &[&str]) -> String {
        let mut argv = vec!["cairn"];
        argv.extend_from_slice(args);
        argv.push("--help");
        let err = Cli::command()
            .term_width(100)
            .try_get_matches_from(argv)
            .expect_err("--help ends parsing");
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        err.render().to_string()
    }

    #[test]
    fn global_options_have_their_own_heading() {
        let backup = help(&["backup"]);
        let (own, global) = backup
            .split_once("Global Options:")
            .expect("a Global Options heading");
        let (global, examples) = global.split_once("Examples:").expect("examples");
        assert!(examples.contains("cairn backup ."), "{examples}");
        assert!(own.contains("--exclude"), "{own}");
        assert!(!own.contains("--password-file"), "{own}");
        assert!(global.contains("--password-file"), "{global}");
        assert!(!global.contains("--exclude"), "{global}");
    }

    #[test]
    fn help_output() {
        for args in [
            &["backup"][..],
            &["restore"],
            &["forget"],
            &["discover"],
            &["plugin", "install"],
        ] {
            insta::assert_snapshot!(args.join("-"), help(args));
        }
    }

    #[test]
    fn fish_completion() {
        let mut out = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Fish,
            &mut Cli::command(),
            "cairn",
            &mut out,
        );
        insta::assert_snapshot!(String::from_utf8(out).expect("UTF-8"));
    }
}
