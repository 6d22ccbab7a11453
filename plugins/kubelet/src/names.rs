//! Stable names from generated ones: a pod's owner from its name (without an inventory) or
//! from its ReplicaSet's name.

/// The alphabet Kubernetes generates name suffixes and pod-template hashes from
/// (`k8s.io/apimachinery/pkg/util/rand`: no vowels, no 0, 1 or 3).
const ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

fn generated(part: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&part.len()) && part.chars().all(|c| ALPHABET.contains(c))
}

/// `name` without a trailing `-<hash>` of 6–10 generated characters (a ReplicaSet's
/// pod-template hash): `web-7d4b9c8f6d` → `web`.
pub fn without_hash(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((head, tail)) if !head.is_empty() && generated(tail, 6, 10) => head,
        _ => name,
    }
}

/// A pod's owner from its name alone: without a trailing `-xxxxx` (5 generated characters)
/// and then without a pod-template hash. `web-7d4b9c8f6d-x2x9k` → `web`, `agent-k9x2p` →
/// `agent`; `db-0` (a StatefulSet's pod, stable already) stays.
pub fn owner_from_pod_name(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((head, tail)) if !head.is_empty() && generated(tail, 5, 5) => without_hash(head),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_parts_are_removed() {
        for (pod, owner) in [
            ("web-7d4b9c8f6d-x2x9k", "web"),
            ("agent-k9x2p", "agent"),
            ("db-0", "db-0"),
            ("ghost-0", "ghost-0"),
            ("my-app-nginx", "my-app-nginx"),
            ("api-server-5f6d7c9b8-q8w2n", "api-server"),
        ] {
            assert_eq!(owner_from_pod_name(pod), owner, "{pod}");
        }
        assert_eq!(without_hash("web-7d4b9c8f6d"), "web");
        assert_eq!(without_hash("web"), "web");
    }
}
