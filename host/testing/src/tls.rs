//! TLS for test servers: a private CA and a server certificate, made with the `openssl` CLI.

use std::path::Path;
use std::process::Command;

/// Makes a private CA and a certificate for 127.0.0.1 signed by it in `dir`:
/// `{prefix}ca.pem`, `{prefix}srv.pem`, `{prefix}srv.key`.
pub fn private_ca(dir: &Path, prefix: &str) {
    let p = prefix;
    std::fs::create_dir_all(dir).expect("server dir");
    let sh = |script: &str| {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .status()
            .expect("run openssl");
        assert!(ok.success(), "openssl failed: {script}");
    };
    sh(&format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {p}ca.key \
        -out {p}ca.pem -days 2 -subj '/CN=cairn test CA' 2>/dev/null"
    ));
    sh(&format!(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {p}srv.key \
        -out {p}srv.csr -subj '/CN=127.0.0.1' 2>/dev/null"
    ));
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext.cnf");
    sh(&format!(
        "openssl x509 -req -in {p}srv.csr -CA {p}ca.pem -CAkey {p}ca.key -CAcreateserial -out {p}srv.pem \
        -days 2 -extfile ext.cnf 2>/dev/null"
    ));
}
