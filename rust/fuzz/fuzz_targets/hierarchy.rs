//! Hierarchies the fuzzer writes: any store keys with any values (groups, arrays, v2 and v3
//! metadata, consolidated metadata), seeded by `make fuzz` with the metadata of every group in
//! the shared conformance corpus (tools/fuzz_seeds.py).
//!
//! The input is the flags byte, then entries separated by 0xFF (which UTF-8 never holds), each
//! a store key, a 0 byte and the value. The group at the root (or at `g`, by the flags) is
//! walked member by member, plainly and through its consolidated metadata, reading a small box
//! of each array. Then it is consolidated, and perhaps one member is deleted through the
//! consolidated group: after each, the hierarchy as the consolidated metadata tells it must be
//! the one the store holds, array values included. Nothing may crash or hang.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use oxzarr_core::group::NodeKind;
use oxzarr_core::node::Node;
use oxzarr_core::store::{MemoryStore, StoreRef, WritableStore};
use oxzarr_core::{Array, Group};
use oxzarr_fuzz::corner;

/// How deep a walk goes, and how many nodes it visits: enough for every seed's hierarchy.
const MAX_DEPTH: usize = 5;
const MAX_NODES: usize = 64;

/// What reading an array's corner gave.
#[derive(Debug, PartialEq)]
enum Corner {
    /// Its elements are variable-length, or its chunks too large to read here.
    NotRead,
    Failed,
    Values(Vec<u8>),
}

/// A node met on a walk: its path below the walked group, and what it is.
#[derive(Debug, PartialEq)]
enum Seen {
    Group(String),
    Array {
        path: String,
        shape: Vec<u64>,
        chunk_shape: Vec<u64>,
        corner: Corner,
    },
    /// A listed member that does not open (its metadata parses, but the array does not).
    Unopenable(String, NodeKind),
}

fn read_corner(a: &Array) -> Corner {
    let Some((sel, bytes)) = corner(a) else {
        return Corner::NotRead;
    };
    let mut out = vec![0u8; bytes];
    match a.read_into(&sel, &mut out) {
        Ok(()) => Corner::Values(out),
        Err(_) => Corner::Failed,
    }
}

/// Every node below `group` (up to `MAX_NODES`, `MAX_DEPTH` groups down), in an order that
/// depends on the hierarchy alone; `None` if listing a group failed.
fn walk(group: &Group) -> Option<Vec<Seen>> {
    let mut seen = Vec::new();
    let mut stack = vec![(group.clone(), String::new(), 0)];
    while let Some((g, rel, depth)) = stack.pop() {
        let members = g.members().ok()?;
        assert!(
            members.windows(2).all(|w| w[0].0 < w[1].0),
            "members are listed once each, in name order: {members:?}"
        );
        for (name, kind) in &members {
            if seen.len() >= MAX_NODES {
                return Some(seen);
            }
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            match g.child(name) {
                Ok(Node::Group(sub)) => {
                    assert_eq!(*kind, NodeKind::Group, "{path} was listed as an array");
                    seen.push(Seen::Group(path.clone()));
                    if depth < MAX_DEPTH {
                        stack.push((sub, path, depth + 1));
                    }
                }
                Ok(Node::Array(a)) => {
                    assert_eq!(*kind, NodeKind::Array, "{path} was listed as a group");
                    seen.push(Seen::Array {
                        path,
                        shape: a.shape().to_vec(),
                        chunk_shape: a.chunk_shape().to_vec(),
                        corner: read_corner(&a),
                    });
                }
                Err(_) => seen.push(Seen::Unopenable(path, *kind)),
            }
        }
    }
    Some(seen)
}

/// The hierarchy through `consolidated` must be what the store holds below its group.
fn check_against_store(consolidated: &Group) {
    assert!(consolidated.is_consolidated());
    let plain = Group::open(consolidated.store().clone(), consolidated.path())
        .expect("a group just consolidated opens");
    let Some(stored) = walk(&plain) else {
        return;
    };
    let told = walk(consolidated).expect("a consolidated group lists its members");
    assert_eq!(told, stored, "consolidated metadata differs from the store");
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, entries)) = data.split_first() else {
        return;
    };
    let memory = Arc::new(MemoryStore::new());
    for entry in entries.split(|&b| b == 0xFF) {
        let Some(at) = entry.iter().position(|&b| b == 0) else {
            continue;
        };
        let Ok(key) = std::str::from_utf8(&entry[..at]) else {
            continue;
        };
        let _ = memory.set(key, &entry[at + 1..]);
    }
    let store: StoreRef = memory;
    let path = if flags & 1 == 0 { "" } else { "g" };
    let Ok(group) = Group::open(store.clone(), path) else {
        return;
    };
    let _ = walk(&group);
    if let Ok(consolidated) = Group::open_consolidated(store.clone(), path) {
        let _ = walk(&consolidated);
    }
    let Ok(consolidated) = group.consolidate() else {
        return;
    };
    check_against_store(&consolidated);
    // One member (by the flags' other bits) deleted through the consolidated group.
    let Ok(members) = consolidated.members() else {
        return;
    };
    if members.is_empty() || flags & 2 == 0 {
        return;
    }
    let (name, _) = &members[usize::from(flags >> 2) % members.len()];
    let after = consolidated
        .delete_member(name)
        .expect("a listed member of a consolidated group can be deleted");
    assert!(
        after.child(name).is_err(),
        "{name} is still there after its deletion"
    );
    check_against_store(&after);
});
