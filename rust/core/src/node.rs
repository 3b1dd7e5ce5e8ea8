//! Node paths and what arrays and groups share: finding a node, making room for a new one.

use serde_json::Map;

use crate::error::{Error, Result};
use crate::metadata::v3::NodeMetadataV3;
use crate::metadata::{GroupMetadataV3, ZARR_JSON};
use crate::store::{join_key, node_prefix, StoreRef};
use crate::{Array, Group};

/// An array or a group.
#[derive(Debug, Clone)]
pub enum Node {
    Array(Box<Array>),
    Group(Group),
}

/// Normalises a node path: no leading, trailing or repeated `/`; `""` is the root. `.` and
/// `..` components are refused.
pub fn normalize_path(path: &str) -> Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in &parts {
        if *part == "." || *part == ".." {
            return Err(Error::InvalidArgument(format!(
                "invalid node path {path:?}: '.' and '..' are not allowed"
            )));
        }
    }
    Ok(parts.join("/"))
}

/// Checks the names of a node about to be created (spec: "Node names").
fn check_new_path(path: &str) -> Result<()> {
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let reason = if part.starts_with("__") {
            Some("names starting with '__' are reserved")
        } else if part.chars().all(|c| c == '.') {
            Some("a name cannot consist of dots only")
        } else if part == ZARR_JSON || part.starts_with(".z") {
            Some("the name is used by Zarr metadata")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::InvalidArgument(format!(
                "invalid node name {part:?} in {path:?}: {reason}"
            )));
        }
    }
    Ok(())
}

/// The parsed metadata of the node at `path`, or `None` if there is no node there.
pub(crate) fn read_node_metadata(store: &StoreRef, path: &str) -> Result<Option<NodeMetadataV3>> {
    let key = join_key(path, ZARR_JSON);
    let Some(bytes) = store.get(&key)? else {
        return Ok(None);
    };
    NodeMetadataV3::parse(&bytes, &key)
        .map(Some)
        .map_err(|source| Error::InvalidMetadata { key, source })
}

/// Describes a node for messages: its path and the store it is in.
pub(crate) fn describe(store: &StoreRef, path: &str) -> String {
    format!(
        "{:?} in {}",
        if path.is_empty() { "/" } else { path },
        store.describe()
    )
}

/// Opens the node at `path`.
pub fn open_node(store: &StoreRef, path: &str) -> Result<Node> {
    let path = normalize_path(path)?;
    match read_node_metadata(store, &path)? {
        Some(NodeMetadataV3::Array(meta)) => {
            Array::from_metadata(store.clone(), &path, *meta).map(|a| Node::Array(Box::new(a)))
        }
        Some(NodeMetadataV3::Group(meta)) => Ok(Node::Group(Group::from_metadata(
            store.clone(),
            &path,
            meta,
        ))),
        None => Err(Error::NodeNotFound {
            kind: "node",
            path: describe(store, &path),
        }),
    }
}

/// Makes room for a new node at `path`: refuses an existing node unless `overwrite` (which
/// deletes it and everything below it), and creates the missing parent groups, as
/// zarr-python does.
pub(crate) fn prepare_new_node(store: &StoreRef, path: &str, overwrite: bool) -> Result<()> {
    check_new_path(path)?;
    if let Some(existing) = node_kind(store, path)? {
        if !overwrite {
            return Err(Error::NodeExists {
                existing,
                path: describe(store, path),
                reason: format!(
                    "{} exists there (pass overwrite=True to replace it)",
                    match existing {
                        "array" => "an array",
                        "group" => "a group",
                        _ => "a node",
                    }
                ),
            });
        }
    }
    if overwrite {
        store.delete_prefix(&node_prefix(path))?;
        if path.is_empty() {
            store.delete(ZARR_JSON)?;
        }
    }
    // Parents: each must be a group, created if missing.
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for depth in 0..parts.len() {
        let parent = parts[..depth].join("/");
        match node_kind(store, &parent)? {
            Some("array") => {
                return Err(Error::NodeExists {
                    existing: "array",
                    path: describe(store, path),
                    reason: format!("its parent {parent:?} is an array"),
                })
            }
            Some(_) => {}
            None => {
                let meta = GroupMetadataV3 {
                    attributes: Map::new(),
                    extra_fields: Map::new(),
                };
                store.set(&join_key(&parent, ZARR_JSON), &meta.to_json())?;
            }
        }
    }
    Ok(())
}

/// What kind of node is at `path` ("array", "group"), treating unreadable metadata as a
/// "node" too (so that it is not silently overwritten).
fn node_kind(store: &StoreRef, path: &str) -> Result<Option<&'static str>> {
    let key = join_key(path, ZARR_JSON);
    let Some(bytes) = store.get(&key)? else {
        return Ok(None);
    };
    Ok(Some(match NodeMetadataV3::parse(&bytes, &key) {
        Ok(NodeMetadataV3::Array(_)) => "array",
        Ok(NodeMetadataV3::Group(_)) => "group",
        Err(_) => "node",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/a//b/").unwrap(), "a/b");
        assert_eq!(normalize_path("").unwrap(), "");
        assert!(normalize_path("a/../b").is_err());
        assert!(check_new_path("a/__b").is_err());
        assert!(check_new_path("...").is_err());
        assert!(check_new_path("a/zarr.json").is_err());
        assert!(check_new_path("a/b.c").is_ok());
    }
}
