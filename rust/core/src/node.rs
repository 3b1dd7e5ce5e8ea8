//! Node paths, and what arrays and groups share: finding a node and its metadata (v3
//! `zarr.json`, or v2 `.zarray`/`.zgroup` with `.zattrs`), writing it, making room for a new one.

use serde_json::{Map, Value};

use crate::concurrency::ForkSafeMutex;
use crate::error::{Error, Result};
use crate::group::NodeKind;
use crate::metadata::v2::{self, ArrayMetadataV2, ZARRAY, ZATTRS, ZGROUP};
use crate::metadata::v3::NodeMetadataV3;
use crate::metadata::{ArrayMetadata, GroupMetadata, GroupMetadataV3, NodeMetadata, ZARR_JSON};
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

/// Checks the names of a node about to be created (spec: "Node names"). The `__` prefix is
/// reserved by v3 only: v2 names may take it (xarray and others write such members).
pub fn check_new_path(path: &str, zarr_format: u8) -> Result<()> {
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let reason = if part.starts_with("__") && zarr_format == 3 {
            Some("names starting with '__' are reserved")
        } else if part.chars().all(|c| c == '.') {
            Some("a name cannot consist of dots only")
        } else if [ZARR_JSON, ZARRAY, ZGROUP, ZATTRS, ".zmetadata"].contains(&part) {
            // The key of the parent's document: on a file system, a file and a directory.
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

fn invalid(key: String) -> impl FnOnce(crate::error::MetadataError) -> Error {
    move |source| Error::InvalidMetadata { key, source }
}

/// Parses the metadata documents of a node, v3 or v2, from what `get` returns for each key.
pub(crate) fn parse_node_metadata(
    path: &str,
    mut get: impl FnMut(&str) -> Result<Option<Vec<u8>>>,
) -> Result<Option<NodeMetadata>> {
    let key = join_key(path, ZARR_JSON);
    if let Some(bytes) = get(&key)? {
        return Ok(Some(
            match NodeMetadataV3::parse(&bytes, &key).map_err(invalid(key))? {
                NodeMetadataV3::Array(a) => NodeMetadata::Array(ArrayMetadata::V3(a)),
                NodeMetadataV3::Group(g) => NodeMetadata::Group(GroupMetadata::V3(g)),
            },
        ));
    }
    let zarray_key = join_key(path, ZARRAY);
    if let Some(zarray) = get(&zarray_key)? {
        let attributes = v2_attributes(path, &mut get)?;
        let meta = ArrayMetadataV2::parse_with_attributes(&zarray, attributes, &zarray_key)
            .map_err(invalid(zarray_key))?;
        return Ok(Some(NodeMetadata::Array(ArrayMetadata::V2(Box::new(meta)))));
    }
    let zgroup_key = join_key(path, ZGROUP);
    if let Some(zgroup) = get(&zgroup_key)? {
        v2::parse_group(&zgroup, &zgroup_key).map_err(invalid(zgroup_key))?;
        let attributes = v2_attributes(path, &mut get)?;
        return Ok(Some(NodeMetadata::Group(GroupMetadata::V2 { attributes })));
    }
    Ok(None)
}

/// The attributes in the v2 node's `.zattrs` (none if it has none).
fn v2_attributes(
    path: &str,
    get: &mut impl FnMut(&str) -> Result<Option<Vec<u8>>>,
) -> Result<Map<String, Value>> {
    let key = join_key(path, ZATTRS);
    match get(&key)? {
        Some(bytes) => v2::parse_attributes(&bytes, &key).map_err(invalid(key)),
        None => Ok(Map::new()),
    }
}

/// The metadata of the node at `path`, or `None` if there is no node there.
pub(crate) fn read_node_metadata(store: &StoreRef, path: &str) -> Result<Option<NodeMetadata>> {
    parse_node_metadata(path, |key| Ok(store.get(key)?))
}

/// The metadata of the node of Zarr format `format` (2 or 3; `None`: either, v3 first) at
/// `path`. Both formats' documents can lie at one path (zarr-python's mode "a" writes a
/// `zarr.json` beside a `.zarray`): asked for one format, the other's are not looked at.
pub(crate) fn read_node_metadata_as(
    store: &StoreRef,
    path: &str,
    format: Option<u8>,
) -> Result<Option<NodeMetadata>> {
    parse_node_metadata(path, |key| {
        let v3_document = key.rsplit('/').next() == Some(ZARR_JSON);
        match format {
            Some(2) if v3_document => Ok(None),
            Some(3) if !v3_document => Ok(None),
            _ => Ok(store.get(key)?),
        }
    })
    .map_err(|e| e.metadata_in(&store.describe()))
}

/// What the node at `path` is, or `None` if there is no node there, told by its documents
/// (`node_type`, or which v2 document there is) without reading the rest of its metadata: a
/// member whose metadata oxzarr cannot take (an unknown codec or data type) is still listed
/// with its group's members, and only opening it fails. Documents that do not say what they
/// are give the error of parsing them.
pub(crate) fn declared_kind(
    path: &str,
    mut get: impl FnMut(&str) -> Result<Option<Vec<u8>>>,
) -> Result<Option<NodeKind>> {
    let key = join_key(path, ZARR_JSON);
    if let Some(bytes) = get(&key)? {
        let said = crate::metadata::json::parse(&bytes).ok().and_then(|doc| {
            match doc.get("node_type").and_then(Value::as_str) {
                Some("array") => Some(NodeKind::Array),
                Some("group") => Some(NodeKind::Group),
                _ => None,
            }
        });
        return match said {
            Some(kind) => Ok(Some(kind)),
            None => parse_node_metadata(path, |k| Ok((k == key).then(|| bytes.clone())))
                .map(|meta| meta.map(|m| kind_of(&m))),
        };
    }
    if get(&join_key(path, ZARRAY))?.is_some() {
        return Ok(Some(NodeKind::Array));
    }
    Ok(get(&join_key(path, ZGROUP))?.map(|_| NodeKind::Group))
}

/// Whether any of a node's documents is stored at `path`, whatever it holds (a node whose
/// documents cannot be read is there all the same).
pub(crate) fn has_documents(
    path: &str,
    mut get: impl FnMut(&str) -> Result<Option<Vec<u8>>>,
) -> Result<bool> {
    for name in [ZARR_JSON, ZARRAY, ZGROUP] {
        if get(&join_key(path, name))?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether metadata is an array's or a group's.
pub(crate) fn kind_of(meta: &NodeMetadata) -> NodeKind {
    match meta {
        NodeMetadata::Array(_) => NodeKind::Array,
        NodeMetadata::Group(_) => NodeKind::Group,
    }
}

/// A v2 group's `.zgroup`, indented as zarr-python writes it.
const V2_GROUP: &[u8] = b"{\n  \"zarr_format\": 2\n}";

/// A node's metadata document: its key below the node and its bytes.
fn metadata_document(meta: &NodeMetadata) -> (&'static str, Vec<u8>) {
    match meta {
        NodeMetadata::Array(ArrayMetadata::V3(m)) => (ZARR_JSON, m.to_json()),
        NodeMetadata::Group(GroupMetadata::V3(m)) => (ZARR_JSON, m.to_json()),
        NodeMetadata::Array(ArrayMetadata::V2(m)) => (ZARRAY, m.to_json()),
        NodeMetadata::Group(GroupMetadata::V2 { .. }) => (ZGROUP, V2_GROUP.to_vec()),
    }
}

/// A v2 node's attributes document, written (or removed, when there are none).
fn write_v2_attributes(store: &StoreRef, path: &str, meta: &NodeMetadata) -> Result<()> {
    let attributes = match meta {
        NodeMetadata::Array(ArrayMetadata::V2(m)) => &m.attributes,
        NodeMetadata::Group(GroupMetadata::V2 { attributes }) => attributes,
        _ => return Ok(()),
    };
    let key = join_key(path, ZATTRS);
    if attributes.is_empty() {
        store.delete(&key)?;
    } else {
        store.set(
            &key,
            &crate::metadata::v3::to_pretty_json(&Value::Object(attributes.clone())),
        )?;
    }
    Ok(())
}

/// Writes a node's metadata documents (and, for v2, its attributes document).
pub(crate) fn write_node_metadata(store: &StoreRef, path: &str, meta: &NodeMetadata) -> Result<()> {
    let (key, document) = metadata_document(meta);
    store.set(&join_key(path, key), &document)?;
    write_v2_attributes(store, path, meta)
}

/// Describes a node for messages: its path and the store it is in.
pub(crate) fn describe(store: &StoreRef, path: &str) -> String {
    format!(
        "{:?} in {}",
        if path.is_empty() { "/" } else { path },
        store.describe()
    )
}

/// Builds the node for metadata found at `path`.
pub(crate) fn node_from_metadata(store: &StoreRef, path: &str, meta: NodeMetadata) -> Result<Node> {
    Ok(match meta {
        NodeMetadata::Array(m) => {
            Node::Array(Box::new(Array::from_metadata(store.clone(), path, m)?))
        }
        NodeMetadata::Group(m) => Node::Group(Group::from_metadata(store.clone(), path, m)),
    })
}

/// Opens the node at `path`.
pub fn open_node(store: &StoreRef, path: &str) -> Result<Node> {
    open_node_as(store, path, None)
}

/// Opens the node of Zarr format `format` (`None`: either) at `path`.
pub fn open_node_as(store: &StoreRef, path: &str, format: Option<u8>) -> Result<Node> {
    let path = normalize_path(path)?;
    match read_node_metadata_as(store, &path, format)? {
        Some(meta) => node_from_metadata(store, &path, meta),
        None => Err(Error::NodeNotFound {
            kind: "node",
            path: describe(store, &path),
        }),
    }
}

/// Opens the node of Zarr format `format` (`None`: either) at `path`, a group through its
/// own consolidated metadata when it has some (as `Group::open_maybe_consolidated_as`), so
/// that opening a node of either kind reads its document once.
pub fn open_node_maybe_consolidated(
    store: &StoreRef,
    path: &str,
    format: Option<u8>,
) -> Result<Node> {
    let path = normalize_path(path)?;
    match read_node_metadata_as(store, &path, format)? {
        Some(NodeMetadata::Group(meta)) => Group::with_own_consolidated(store.clone(), &path, meta)
            .map(Node::Group)
            .map_err(|e| e.metadata_in(&store.describe())),
        Some(meta) => node_from_metadata(store, &path, meta),
        None => Err(Error::NodeNotFound {
            kind: "node",
            path: describe(store, &path),
        }),
    }
}

/// Makes room for a new node at `path`: refuses an existing node unless `overwrite` (which
/// deletes it and everything below it), and creates the missing parent groups (in the given
/// format), as zarr-python does.
pub(crate) fn prepare_new_node(
    store: &StoreRef,
    path: &str,
    overwrite: bool,
    zarr_format: u8,
) -> Result<()> {
    check_new_path(path, zarr_format)?;
    if let Some(existing) = node_kind(store, path)? {
        if !overwrite {
            return Err(Error::NodeExists {
                existing,
                path: describe(store, path),
                reason: format!(
                    "{} exists there (pass overwrite=True to replace it)",
                    a_node_of_kind(existing)
                ),
            });
        }
    }
    // Parents first: each must be a group, created if missing. An array above refuses the
    // node before anything is deleted: the keys below an array are its chunks, which
    // overwriting would delete. Every parent is looked at before any is created, so that a
    // refused node leaves the store as it was: a v3 root written beside a v2 hierarchy's
    // `.zgroup`, for a node refused further down, would hide that hierarchy from readers.
    let parent_array = |parent: &str| Error::NodeExists {
        existing: "array",
        path: describe(store, path),
        reason: format!("its parent {parent:?} is an array"),
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut missing_parents = Vec::new();
    for depth in 0..parts.len() {
        let parent = parts[..depth].join("/");
        let missing = match node_kind(store, &parent)? {
            Some("array") => return Err(parent_array(&parent)),
            // A group of the other format only is no parent of this node: nothing would list
            // it (a v2 group hides v3 members), so this format's group is written beside it,
            // as zarr-python writes it.
            Some("group") => match read_node_metadata_as(store, &parent, Some(zarr_format)) {
                Ok(Some(NodeMetadata::Array(_))) => return Err(parent_array(&parent)),
                Ok(meta) => meta.is_none(),
                Err(Error::InvalidMetadata { .. }) => false,
                Err(e) => return Err(e),
            },
            Some(_) => false,
            None => true,
        };
        if missing {
            missing_parents.push(parent);
        }
    }
    for parent in missing_parents {
        let meta = if zarr_format == 2 {
            GroupMetadata::V2 {
                attributes: Map::new(),
            }
        } else {
            GroupMetadata::V3(GroupMetadataV3::default())
        };
        // Another writer may make the parent meanwhile: its node stays, and is looked at
        // again (a parent that became an array refuses this node).
        if !create_node_metadata(store, &parent, &NodeMetadata::Group(meta))?
            && node_kind(store, &parent)? == Some("array")
        {
            return Err(parent_array(&parent));
        }
    }
    if overwrite {
        store.delete_prefix(&node_prefix(path))?;
        if path.is_empty() {
            for key in [ZARR_JSON, ZARRAY, ZGROUP, ZATTRS] {
                store.delete(key)?;
            }
        }
    }
    Ok(())
}

/// Writes the metadata of a new node at `path` unless a node's metadata document is there
/// already (written by another writer since `prepare_new_node` looked), and says whether
/// it wrote it.
pub(crate) fn create_node_metadata(
    store: &StoreRef,
    path: &str,
    meta: &NodeMetadata,
) -> Result<bool> {
    let (key, document) = metadata_document(meta);
    // v2 keeps an array's document and a group's under different keys, which claiming one's
    // own does not tell apart: the other is looked for first, under a lock of the process
    // that every v2 creation takes. (Between processes, an array and a group made at one
    // path at the same moment can both stay, as with zarr-python.)
    static CREATING_V2: ForkSafeMutex<()> = ForkSafeMutex::new(());
    let other = match meta {
        NodeMetadata::Array(ArrayMetadata::V2(_)) => Some(ZGROUP),
        NodeMetadata::Group(GroupMetadata::V2 { .. }) => Some(ZARRAY),
        _ => None,
    };
    let _held = other.map(|_| CREATING_V2.lock());
    if let Some(other) = other {
        if store.exists(&join_key(path, other))? {
            return Ok(false);
        }
    }
    if !store.set_if_absent(&join_key(path, key), &document)? {
        return Ok(false);
    }
    // A v2 node's attributes are a document of their own, written once the node is this
    // writer's.
    write_v2_attributes(store, path, meta)?;
    Ok(true)
}

/// A new node where `prepare_new_node` found none: created unless another writer made one
/// there meanwhile, which is then refused as an existing node is.
pub(crate) fn write_new_node(
    store: &StoreRef,
    path: &str,
    meta: &NodeMetadata,
    overwrite: bool,
) -> Result<()> {
    if overwrite {
        return write_node_metadata(store, path, meta);
    }
    if create_node_metadata(store, path, meta)? {
        return Ok(());
    }
    let existing = node_kind(store, path)?.unwrap_or("node");
    Err(Error::NodeExists {
        existing,
        path: describe(store, path),
        reason: format!(
            "{} was created there meanwhile (pass overwrite=True to replace it)",
            a_node_of_kind(existing)
        ),
    })
}

/// "an array", "a group" or "a node", for messages.
fn a_node_of_kind(kind: &str) -> &'static str {
    match kind {
        "array" => "an array",
        "group" => "a group",
        _ => "a node",
    }
}

/// What kind of node is at `path` ("array", "group"), treating unreadable metadata as a
/// "node" too (so that it is not silently overwritten).
fn node_kind(store: &StoreRef, path: &str) -> Result<Option<&'static str>> {
    match read_node_metadata(store, path) {
        Ok(meta) => Ok(meta.map(|m| m.kind())),
        Err(Error::InvalidMetadata { .. }) => Ok(Some("node")),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/a//b/").unwrap(), "a/b");
        assert_eq!(normalize_path("").unwrap(), "");
        assert!(normalize_path("a/../b").is_err());
        assert!(check_new_path("a/__b", 3).is_err());
        assert!(check_new_path("a/__b", 2).is_ok());
        assert!(check_new_path("...", 2).is_err());
        assert!(check_new_path("a/zarr.json", 3).is_err());
        assert!(check_new_path("a/.zarray", 2).is_err());
        assert!(check_new_path("a/b.c", 3).is_ok());
    }

    #[test]
    fn a_node_made_by_another_writer_is_kept() -> std::result::Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let stores: [StoreRef; 2] = [
            std::sync::Arc::new(crate::store::MemoryStore::new()),
            std::sync::Arc::new(crate::store::FilesystemStore::new(dir.path())),
        ];
        for store in stores {
            let group = |attributes: Map<String, Value>| {
                NodeMetadata::Group(GroupMetadata::V3(GroupMetadataV3 {
                    attributes,
                    extra_fields: Map::new(),
                }))
            };
            let mut units = Map::new();
            units.insert("units".into(), Value::from("m"));
            assert!(create_node_metadata(&store, "g", &group(units.clone()))?);
            // Another writer's parent group, or its own node, made since it looked.
            assert!(!create_node_metadata(&store, "g", &group(Map::new()))?);
            match write_new_node(&store, "g", &group(Map::new()), false) {
                Err(Error::NodeExists { existing, .. }) => assert_eq!(existing, "group"),
                other => {
                    return Err(format!("not refused as a node made meanwhile: {other:?}").into())
                }
            }
            assert_eq!(read_node_metadata(&store, "g")?, Some(group(units)));
            write_new_node(&store, "g", &group(Map::new()), true)?;
            assert_eq!(read_node_metadata(&store, "g")?, Some(group(Map::new())));
            assert_eq!(store.list_prefix("")?, ["g/zarr.json"]);
        }
        Ok(())
    }
}
