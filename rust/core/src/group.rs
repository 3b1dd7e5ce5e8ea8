//! Groups: nodes that hold other nodes, and attributes.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::metadata::v3::NodeMetadataV3;
use crate::metadata::{GroupMetadataV3, ZARR_JSON};
use crate::node::{self, describe, normalize_path, read_node_metadata};
use crate::store::{join_key, node_prefix, StoreRef};

/// What a member of a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Array,
    Group,
}

/// An open group. Immutable: changing attributes gives a new `Group`.
#[derive(Debug, Clone)]
pub struct Group {
    store: StoreRef,
    path: String,
    metadata: GroupMetadataV3,
}

impl Group {
    pub(crate) fn from_metadata(store: StoreRef, path: &str, metadata: GroupMetadataV3) -> Self {
        Self {
            store,
            path: path.to_string(),
            metadata,
        }
    }

    /// Opens the group at `path`.
    pub fn open(store: StoreRef, path: &str) -> Result<Self> {
        let path = normalize_path(path)?;
        match read_node_metadata(&store, &path)? {
            Some(NodeMetadataV3::Group(meta)) => Ok(Self::from_metadata(store, &path, meta)),
            Some(NodeMetadataV3::Array(_)) => Err(Error::NotAGroup {
                path: describe(&store, &path),
            }),
            None => Err(Error::NodeNotFound {
                kind: "group",
                path: describe(&store, &path),
            }),
        }
    }

    /// Creates a group at `path` (and any missing parents).
    pub fn create(
        store: StoreRef,
        path: &str,
        attributes: Map<String, Value>,
        overwrite: bool,
    ) -> Result<Self> {
        let path = normalize_path(path)?;
        let metadata = GroupMetadataV3 {
            attributes,
            extra_fields: Map::new(),
        };
        node::prepare_new_node(&store, &path, overwrite)?;
        store.set(&join_key(&path, ZARR_JSON), &metadata.to_json())?;
        Ok(Self::from_metadata(store, &path, metadata))
    }

    pub fn store(&self) -> &StoreRef {
        &self.store
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn metadata(&self) -> &GroupMetadataV3 {
        &self.metadata
    }

    pub fn attributes(&self) -> &Map<String, Value> {
        &self.metadata.attributes
    }

    /// Replaces the attributes, writing `zarr.json`; returns the updated group.
    pub fn with_attributes(&self, attributes: Map<String, Value>) -> Result<Self> {
        let mut metadata = self.metadata.clone();
        metadata.attributes = attributes;
        self.store
            .set(&join_key(&self.path, ZARR_JSON), &metadata.to_json())?;
        Ok(Self::from_metadata(
            self.store.clone(),
            &self.path,
            metadata,
        ))
    }

    /// The path of a child of this group.
    pub fn child_path(&self, name: &str) -> Result<String> {
        normalize_path(&join_key(&self.path, name))
    }

    /// The direct members of the group, by name, sorted.
    pub fn members(&self) -> Result<Vec<(String, NodeKind)>> {
        let prefix = node_prefix(&self.path);
        let listed = self.store.list_dir(&prefix)?;
        let mut members = Vec::new();
        for child in listed.prefixes {
            let name = child[prefix.len()..].trim_end_matches('/').to_string();
            let path = join_key(&self.path, &name);
            match read_node_metadata(&self.store, &path) {
                Ok(Some(NodeMetadataV3::Array(_))) => members.push((name, NodeKind::Array)),
                Ok(Some(NodeMetadataV3::Group(_))) => members.push((name, NodeKind::Group)),
                // A directory without metadata (chunk folders, stray files) is not a member.
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(members)
    }
}
