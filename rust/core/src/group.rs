//! Groups: nodes that hold other nodes, and attributes; consolidated metadata.
//!
//! Consolidated metadata gathers the metadata of every node below a group into one document
//! (v2: `.zmetadata`; v3: `consolidated_metadata` inline in the group's `zarr.json`), so that
//! opening a hierarchy costs one read. A group opened through it answers member lookups from
//! that document, without reading the store.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};

use crate::error::{Error, MetadataError, Result};
use crate::metadata::v2::{ZARRAY, ZATTRS, ZGROUP, ZMETADATA};
use crate::metadata::v3::to_pretty_json;
use crate::metadata::{ArrayMetadata, GroupMetadata, GroupMetadataV3, NodeMetadata, ZARR_JSON};
use crate::node::{self, describe, normalize_path, parse_node_metadata, write_node_metadata, Node};
use crate::store::{join_key, node_prefix, StoreRef};

/// What a member of a group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Array,
    Group,
}

/// A node below a group as [`Group::descendants`] finds it.
enum Found {
    Parsed(NodeMetadata),
    /// An array whose documents oxzarr cannot take (an unknown codec or data type): the
    /// documents as they are, by name (`zarr.json`, `.zarray`, `.zattrs`).
    Unreadable(Vec<(&'static str, Value)>),
}

/// The error for a node of one format below a group of the other.
fn mixed(rel: &str, node: &str, group: &str) -> Error {
    Error::InvalidArgument(format!(
        "cannot consolidate {rel:?}: a Zarr {node} node inside a {group} group"
    ))
}

/// The attributes written through the nodes opened from one consolidated document since it
/// was read. zarr-python's nodes share their attributes with the consolidated metadata they
/// were opened through: a write through one is seen by later lookups through the group and
/// by the other nodes opened from it, and the next write, through any of them, starts from
/// it. (Shapes are not shared there: a resize is not seen through the group; nor here.)
#[derive(Debug, Default)]
struct Written {
    /// Held by a write from reading the attributes it starts from to recording what it
    /// stored, so that writes through different nodes (in different threads) go one at a
    /// time and none is lost to another that started from the same attributes.
    turn: Mutex<()>,
    /// The attributes last written, by node path. Held only to read or record them, never
    /// across a store write: lookups do not wait for a write's I/O.
    attributes: Mutex<HashMap<String, Map<String, Value>>>,
    /// How many writes have been recorded: a node's view of its attributes made at a
    /// generation is current while the generation is the same.
    generation: AtomicU64,
}

/// `meta` with `attributes` in place of its own.
fn with_attributes(meta: &NodeMetadata, attributes: Map<String, Value>) -> NodeMetadata {
    let mut meta = meta.clone();
    match &mut meta {
        NodeMetadata::Array(m) => m.set_attributes(attributes),
        NodeMetadata::Group(m) => m.set_attributes(attributes),
    }
    meta
}

impl Written {
    /// The recorded attributes. (A panic elsewhere while they were held leaves them
    /// whole: they change by one insert or one retain, so they are used as they are.)
    fn attributes(&self) -> MutexGuard<'_, HashMap<String, Map<String, Value>>> {
        self.attributes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A write's turn among the writes through nodes opened from one consolidated document
/// (see [`Consolidated::write_turn`]).
pub(crate) struct WriteTurn<'a> {
    written: &'a Written,
    _turn: MutexGuard<'a, ()>,
}

impl WriteTurn<'_> {
    /// Whether a write started from the attributes as they were at generation `seen`
    /// (`None`: from none it read) has seen every write recorded before it.
    pub(crate) fn saw_every_write(&self, seen: Option<u64>) -> bool {
        seen.is_none_or(|seen| seen == self.written.generation.load(Ordering::Acquire))
    }

    /// The attributes last written to the node at `path`, if any were.
    pub(crate) fn attributes(&self, path: &str) -> Option<Map<String, Value>> {
        self.written.attributes().get(path).cloned()
    }

    /// Records `attributes` as written to the node at `path`, a new generation.
    pub(crate) fn record(self, path: &str, attributes: Map<String, Value>) {
        self.written
            .attributes()
            .insert(path.to_string(), attributes);
        self.written.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The metadata of every node below a group, by path from the store's root.
#[derive(Debug, Default, Clone)]
pub struct Consolidated {
    /// The path of the group whose document this is (groups below it share it).
    root: String,
    nodes: BTreeMap<String, NodeMetadata>,
    /// Nodes whose documents there oxzarr cannot take (an unknown codec or data type): what
    /// they are, and the documents by store key, parsed again (to the same error) when the
    /// node is opened. The other nodes open as usual.
    unreadable: BTreeMap<String, (NodeKind, BTreeMap<String, Vec<u8>>)>,
    /// What the nodes opened from it have written since (shared by the groups and arrays
    /// opened through it).
    written: Arc<Written>,
}

impl Consolidated {
    fn new(root: &str) -> Self {
        Self {
            root: root.to_string(),
            ..Self::default()
        }
    }

    /// Adds a member's documents (store key -> bytes): parsed, or kept as they are when
    /// oxzarr cannot take them, if they say what the node is.
    fn add(&mut self, node_path: String, docs: BTreeMap<String, Vec<u8>>) -> Result<()> {
        match parse_node_metadata(&node_path, |k| Ok(docs.get(k).cloned())) {
            Ok(Some(meta)) => {
                self.nodes.insert(node_path, meta);
            }
            Ok(None) => {}
            Err(e) => match node::declared_kind(&node_path, |k| Ok(docs.get(k).cloned())) {
                Ok(Some(kind)) => {
                    self.unreadable.insert(node_path, (kind, docs));
                }
                _ => return Err(e),
            },
        }
        Ok(())
    }

    /// The consolidated metadata inline in the v3 document `meta` of the group at `path`;
    /// `None` if it has none.
    fn inline(path: &str, meta: &GroupMetadataV3) -> Result<Option<Self>> {
        let Some(consolidated) = meta.extra_fields.get("consolidated_metadata") else {
            return Ok(None);
        };
        let key = join_key(path, ZARR_JSON);
        let invalid = |value: &Value, reason: &str| Error::InvalidMetadata {
            key: key.clone(),
            source: MetadataError::invalid("consolidated_metadata", value, reason),
        };
        // zarr-python writes its members' documents inline; another kind would be read as a
        // group with no members.
        let kind = consolidated.get("kind").unwrap_or(&Value::Null);
        if kind != "inline" {
            return Err(invalid(
                kind,
                "only \"inline\" consolidated metadata is read",
            ));
        }
        let docs = consolidated
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(consolidated, "expected a metadata object"))?;
        let mut found = Self::new(path);
        // Two entries spelt differently ("a" and "a/") can name one member: which document
        // it is read with must not be the order of their names, so that is refused.
        let mut named: HashMap<String, &str> = HashMap::new();
        for (rel, doc) in docs {
            let node_path = normalize_path(&join_key(path, rel))?;
            if let Some(other) = named.insert(node_path.clone(), rel) {
                return Err(invalid(
                    &Value::String(rel.clone()),
                    &format!("{other:?} and {rel:?} name the same member"),
                ));
            }
            let bytes = crate::metadata::json::to_string(doc).into_bytes();
            let key = join_key(&node_path, ZARR_JSON);
            found.add(node_path, BTreeMap::from([(key, bytes)]))?;
        }
        Ok(Some(found))
    }

    /// The turn of a write through a node opened from this document, waiting for the one
    /// going on to be recorded.
    pub(crate) fn write_turn(&self) -> WriteTurn<'_> {
        WriteTurn {
            written: &self.written,
            _turn: self
                .written
                .turn
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// How many writes through the nodes opened from this document have been recorded.
    pub(crate) fn generation(&self) -> u64 {
        self.written.generation.load(Ordering::Acquire)
    }

    /// The attributes last written through a node opened from this document to the node at
    /// `path`, if any were.
    pub(crate) fn written_attributes(&self, path: &str) -> Option<Map<String, Value>> {
        self.written.attributes().get(path).cloned()
    }

    /// The metadata of the node at `path` as the document holds it, with the attributes
    /// last written to it through the nodes opened from it.
    fn current(&self, path: &str) -> Option<NodeMetadata> {
        let meta = self.nodes.get(path)?;
        Some(match self.written_attributes(path) {
            Some(attributes) => with_attributes(meta, attributes),
            None => meta.clone(),
        })
    }

    /// `self`, sharing the record of what was written through the nodes opened from
    /// `earlier` (a document of the same group written again in its place), less what
    /// was written below `deleted` (a node deleted, with everything below it): the nodes
    /// opened from `earlier` and those opened from this one see each other's writes.
    fn sharing_writes_of(mut self, earlier: &Self, deleted: &str) -> Self {
        let below = node_prefix(deleted);
        earlier
            .written
            .attributes()
            .retain(|path, _| path != deleted && !path.starts_with(&below));
        earlier.written.generation.fetch_add(1, Ordering::AcqRel);
        self.written = earlier.written.clone();
        self
    }

    /// The v3 document `meta` of the group holding this consolidated metadata with the
    /// attributes written through the nodes opened from it in its members' entries, as
    /// zarr-python's group writes its document from the metadata its members share.
    fn with_written_attributes(&self, meta: &mut GroupMetadataV3) {
        let written = self.written.attributes();
        if written.is_empty() {
            return;
        }
        let entries = meta
            .extra_fields
            .get_mut("consolidated_metadata")
            .and_then(|c| c.get_mut("metadata"))
            .and_then(Value::as_object_mut);
        for (rel, entry) in entries.into_iter().flatten() {
            let Ok(path) = normalize_path(&join_key(&self.root, rel)) else {
                continue;
            };
            if let (Some(attributes), Value::Object(entry)) = (written.get(&path), entry) {
                entry.insert("attributes".into(), Value::Object(attributes.clone()));
            }
        }
    }

    /// What the document holds at `path`.
    fn kind(&self, path: &str) -> Option<NodeKind> {
        match self.nodes.get(path) {
            Some(meta) => Some(node::kind_of(meta)),
            None => self.unreadable.get(path).map(|(kind, _)| *kind),
        }
    }

    /// The nodes below the group at `path` from their documents in `docs`, by store key from
    /// the group (`"a/b/.zarray"` and `"a/b/.zattrs"`, as a v2 `.zmetadata` holds them;
    /// `"a/b/zarr.json"`): those of Zarr format `zarr_format` only. The group's own documents
    /// there are not those of a node below it, and are passed over.
    fn from_documents(path: &str, docs: &Map<String, Value>, zarr_format: u8) -> Result<Self> {
        let (declaring, names): (&[&str], &[&str]) = match zarr_format {
            2 => (&[ZARRAY, ZGROUP], &[ZARRAY, ZGROUP, ZATTRS]),
            _ => (&[ZARR_JSON], &[ZARR_JSON]),
        };
        // The node paths the documents describe ("a/b/.zarray" -> "a/b").
        let mut rels: Vec<&str> = docs
            .keys()
            .filter_map(|k| {
                declaring
                    .iter()
                    .find_map(|name| k.strip_suffix(name))
                    .map(|rest| rest.trim_end_matches('/'))
            })
            .filter(|rel| !rel.is_empty())
            .collect();
        rels.sort();
        rels.dedup();
        let mut consolidated = Self::new(path);
        for rel in rels {
            let node_path = normalize_path(&join_key(path, rel))?;
            let node_docs = names
                .iter()
                .filter_map(|name| {
                    let doc = docs.get(&join_key(rel, name))?;
                    let bytes = crate::metadata::json::to_string(doc).into_bytes();
                    Some((join_key(&node_path, name), bytes))
                })
                .collect();
            consolidated.add(node_path, node_docs)?;
        }
        Ok(consolidated)
    }

    /// The documents of the nodes below the group at `path`, by store key from it, as
    /// [`Consolidated::from_documents`] takes them back.
    fn documents_below(&self, path: &str) -> Result<Map<String, Value>> {
        let prefix = node_prefix(path);
        // Their paths follow the prefix in order.
        let below = |p: &&String| p.starts_with(&prefix);
        let mut docs = Map::new();
        // With the attributes written through the nodes opened from this document since it
        // was read, as those nodes show them.
        let written = self.written.attributes();
        for (node_path, stored) in self.nodes.range(prefix.clone()..) {
            if !below(&node_path) {
                break;
            }
            let updated = (written.get(node_path.as_str()))
                .map(|attributes| with_attributes(stored, attributes.clone()));
            let meta = updated.as_ref().unwrap_or(stored);
            let rel = &node_path[prefix.len()..];
            let (attributes, (name, doc)) = match meta {
                NodeMetadata::Array(ArrayMetadata::V3(m)) => (None, (ZARR_JSON, m.to_value())),
                NodeMetadata::Group(GroupMetadata::V3(m)) => (None, (ZARR_JSON, m.to_value())),
                NodeMetadata::Array(ArrayMetadata::V2(m)) => {
                    (Some(&m.attributes), (ZARRAY, m.to_value()))
                }
                NodeMetadata::Group(GroupMetadata::V2 { attributes }) => (
                    Some(attributes),
                    (ZGROUP, serde_json::json!({"zarr_format": 2})),
                ),
            };
            docs.insert(join_key(rel, name), doc);
            if let Some(attributes) = attributes.filter(|a| !a.is_empty()) {
                docs.insert(join_key(rel, ZATTRS), Value::Object(attributes.clone()));
            }
        }
        for (node_path, (_, node_docs)) in self.unreadable.range(prefix.clone()..) {
            if !below(&node_path) {
                break;
            }
            for (key, bytes) in node_docs {
                // Made from JSON values (see `add`'s callers): they parse.
                let doc =
                    crate::metadata::json::parse(bytes).map_err(|e| Error::InvalidMetadata {
                        key: key.clone(),
                        source: MetadataError::NotJson {
                            path: key.clone(),
                            reason: e.to_string(),
                        },
                    })?;
                docs.insert(key[prefix.len()..].to_string(), doc);
            }
        }
        Ok(docs)
    }
}

/// `nodes` in the order of zarr-python's consolidated documents: by depth, then by path
/// NFKC-normalised and case-folded (its `unicodedata.normalize("NFKC", p).casefold()`), so
/// that the document written is the one zarr-python writes. Paths that key leaves equal
/// ("B" and "b"), which zarr-python leaves in the order its listing found them, go by
/// their own order.
fn consolidated_order(nodes: &[(String, Found)]) -> Vec<&(String, Found)> {
    use unicode_normalization::UnicodeNormalization;
    let mut keyed: Vec<_> = nodes
        .iter()
        .map(|node| {
            let rel = node.0.as_str();
            let folded = caseless::default_case_fold_str(&rel.nfkc().collect::<String>());
            ((rel.matches('/').count(), folded, rel), node)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, node)| node).collect()
}

/// An open group. Immutable: changing attributes gives a new `Group`.
#[derive(Debug, Clone)]
pub struct Group {
    store: StoreRef,
    path: String,
    metadata: GroupMetadata,
    consolidated: Option<Arc<Consolidated>>,
}

impl Group {
    pub(crate) fn from_metadata(store: StoreRef, path: &str, metadata: GroupMetadata) -> Self {
        Self {
            store,
            path: path.to_string(),
            metadata,
            consolidated: None,
        }
    }

    /// Opens the group at `path`.
    pub fn open(store: StoreRef, path: &str) -> Result<Self> {
        Self::open_as(store, path, None)
    }

    /// Opens the group of Zarr format `format` (2 or 3; `None`: either) at `path`.
    pub fn open_as(store: StoreRef, path: &str, format: Option<u8>) -> Result<Self> {
        let path = normalize_path(path)?;
        match node::read_node_metadata_as(&store, &path, format)? {
            Some(NodeMetadata::Group(meta)) => Ok(Self::from_metadata(store, &path, meta)),
            Some(NodeMetadata::Array(_)) => Err(Error::NotAGroup {
                path: describe(&store, &path),
            }),
            None => Err(Error::NodeNotFound {
                kind: "group",
                path: describe(&store, &path),
            }),
        }
    }

    /// Creates a group at `path` (and any missing parents), in Zarr format 2 or 3.
    pub fn create(
        store: StoreRef,
        path: &str,
        attributes: Map<String, Value>,
        overwrite: bool,
        zarr_format: u8,
    ) -> Result<Self> {
        let path = normalize_path(path)?;
        let metadata = match zarr_format {
            2 => GroupMetadata::V2 { attributes },
            _ => GroupMetadata::V3(GroupMetadataV3 {
                attributes,
                extra_fields: Map::new(),
            }),
        };
        node::prepare_new_node(&store, &path, overwrite, zarr_format)?;
        node::write_new_node(
            &store,
            &path,
            &NodeMetadata::Group(metadata.clone()),
            overwrite,
        )?;
        Ok(Self::from_metadata(store, &path, metadata))
    }

    pub fn store(&self) -> &StoreRef {
        &self.store
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn metadata(&self) -> &GroupMetadata {
        &self.metadata
    }

    pub fn attributes(&self) -> &Map<String, Value> {
        self.metadata.attributes()
    }

    pub fn zarr_format(&self) -> u8 {
        self.metadata.zarr_format()
    }

    /// Whether the group was opened through consolidated metadata.
    pub fn is_consolidated(&self) -> bool {
        self.consolidated.is_some()
    }

    /// The path of the group whose consolidated metadata this group was opened through (its
    /// own, or that of a group above it), if any.
    pub fn consolidated_root(&self) -> Option<&str> {
        self.consolidated.as_deref().map(|c| c.root.as_str())
    }

    /// The consolidated metadata this group was opened through, as
    /// [`Group::from_documents`] takes it back to make the group again without reading the
    /// store: the documents of the nodes below the group by store key from it (`"a/zarr.json"`;
    /// `"a/.zarray"`, `"a/.zattrs"`), as many as lookups through the group can reach. `None`
    /// for a group opened without, and for a v3 group opened through its own: its metadata
    /// holds them already.
    pub fn consolidated_documents(&self) -> Result<Option<Map<String, Value>>> {
        let Some(c) = &self.consolidated else {
            return Ok(None);
        };
        let own_document_holds_them = matches!(&self.metadata, GroupMetadata::V3(m)
            if m.extra_fields.contains_key("consolidated_metadata"));
        if c.root == self.path && own_document_holds_them {
            return Ok(None);
        }
        c.documents_below(&self.path).map(Some)
    }

    /// The group at `path` made again from what a handle held, reading nothing from the
    /// store: its metadata `document` (as [`GroupMetadata::to_value`] gives it) and, for a
    /// group opened through consolidated metadata, the path of the group holding that
    /// (`consolidated_root`, this group's or one above it) and
    /// [`Group::consolidated_documents`].
    pub fn from_documents(
        store: StoreRef,
        path: &str,
        document: &[u8],
        consolidated_root: Option<&str>,
        consolidated: Option<&[u8]>,
    ) -> Result<Self> {
        let path = normalize_path(path)?;
        let key = format!(
            "the metadata given for the group {}",
            describe(&store, &path)
        );
        let invalid = |source| Error::InvalidMetadata {
            key: key.clone(),
            source,
        };
        let metadata = GroupMetadata::parse(document, &key).map_err(invalid)?;
        let Some(root) = consolidated_root else {
            return Ok(Self::from_metadata(store, &path, metadata));
        };
        let mut found = match (consolidated, &metadata) {
            (Some(bytes), _) => {
                let docs = match crate::metadata::json::parse(bytes) {
                    Ok(Value::Object(docs)) => docs,
                    Ok(other) => {
                        let reason = "expected an object of documents by store key";
                        return Err(invalid(MetadataError::invalid(
                            "consolidated_metadata",
                            &other,
                            reason,
                        )));
                    }
                    Err(e) => {
                        return Err(invalid(MetadataError::NotJson {
                            path: key.clone(),
                            reason: e.to_string(),
                        }))
                    }
                };
                Consolidated::from_documents(&path, &docs, metadata.zarr_format())?
            }
            (None, GroupMetadata::V3(meta)) if root == path => {
                match Consolidated::inline(&path, meta)? {
                    Some(found) => found,
                    None => {
                        return Err(invalid(MetadataError::missing("consolidated_metadata")));
                    }
                }
            }
            (None, _) => {
                return Err(Error::InvalidArgument(format!(
                    "the consolidated metadata of the group {} opened through that of {:?} \
                     is not given",
                    describe(&store, &path),
                    root
                )))
            }
        };
        found.root = normalize_path(root)?;
        Ok(Self {
            store,
            path,
            metadata,
            consolidated: Some(Arc::new(found)),
        })
    }

    /// How many attribute writes through the nodes opened from the consolidated metadata
    /// the group was opened through have been recorded (see [`Group::with_attributes`]);
    /// `None` if it was opened without.
    pub fn consolidated_generation(&self) -> Option<u64> {
        self.consolidated.as_deref().map(Consolidated::generation)
    }

    /// The group's metadata as it is now: for a group opened through an ancestor's
    /// consolidated metadata, with the attributes last written to it through any node
    /// opened from it; for the group holding the consolidated metadata, with those of its
    /// members in their entries.
    pub fn current_metadata(&self) -> Cow<'_, GroupMetadata> {
        let Some(c) = self.consolidated.as_deref() else {
            return Cow::Borrowed(&self.metadata);
        };
        if c.root != self.path {
            return match c.written_attributes(&self.path) {
                Some(attributes) => {
                    let mut metadata = self.metadata.clone();
                    metadata.set_attributes(attributes);
                    Cow::Owned(metadata)
                }
                None => Cow::Borrowed(&self.metadata),
            };
        }
        match &self.metadata {
            GroupMetadata::V3(meta) if c.generation() > 0 => {
                let mut meta = meta.clone();
                c.with_written_attributes(&mut meta);
                Cow::Owned(GroupMetadata::V3(meta))
            }
            _ => Cow::Borrowed(&self.metadata),
        }
    }

    /// Replaces the attributes, writing them to the store; returns the updated group.
    ///
    /// A group opened through an ancestor's consolidated metadata shares its attributes with
    /// the nodes opened from it, as zarr-python's do: the write is recorded there, and with
    /// `seen` (the [generation](Group::consolidated_generation) of the attributes the new
    /// ones were made from) it is made only if no write through them came after that;
    /// `None` is returned if one did, for the caller to start again from the attributes as
    /// they now are. The group holding the consolidated metadata writes its members'
    /// entries with the attributes written to them, as zarr-python does (its members'
    /// writes leave the document as it is).
    pub fn with_attributes(
        &self,
        attributes: Map<String, Value>,
        seen: Option<u64>,
    ) -> Result<Option<Self>> {
        let shared = self.consolidated.as_deref().filter(|c| c.root != self.path);
        let turn = shared.map(Consolidated::write_turn);
        if turn.as_ref().is_some_and(|t| !t.saw_every_write(seen)) {
            return Ok(None);
        }
        let mut metadata = self.metadata.clone();
        metadata.set_attributes(attributes.clone());
        if let GroupMetadata::V3(meta) = &mut metadata {
            if let Some(own) = self.own_inline_consolidated()? {
                meta.extra_fields
                    .insert("consolidated_metadata".into(), own);
            } else if let Some(c) = self.consolidated.as_deref().filter(|_| shared.is_none()) {
                c.with_written_attributes(meta);
            }
        }
        write_node_metadata(
            &self.store,
            &self.path,
            &NodeMetadata::Group(metadata.clone()),
        )?;
        if let Some(turn) = turn {
            turn.record(&self.path, attributes);
        }
        Ok(Some(Self {
            metadata,
            ..self.clone()
        }))
    }

    /// For a v3 group opened through an ancestor's consolidated document (which holds none
    /// of the group's own), the consolidated metadata its stored `zarr.json` holds, so that a
    /// rewrite of the document keeps it; `None` otherwise.
    fn own_inline_consolidated(&self) -> Result<Option<Value>> {
        let from_document = self
            .consolidated
            .as_ref()
            .is_some_and(|c| c.root != self.path);
        if !from_document || !matches!(self.metadata, GroupMetadata::V3(_)) {
            return Ok(None);
        }
        let Some(bytes) = self.store.get(&join_key(&self.path, ZARR_JSON))? else {
            return Ok(None);
        };
        // A document that is not JSON is written over anyway.
        Ok(crate::metadata::json::parse(&bytes)
            .ok()
            .and_then(|doc| doc.get("consolidated_metadata").cloned())
            .filter(|own| !own.is_null()))
    }

    /// The document at `key` (below this group) if it is one of this group's format: a v3
    /// group's members are the nodes with a `zarr.json`, a v2 group's those with `.zarray`
    /// or `.zgroup`, as zarr-python reads them, so a node of the other format below a group
    /// is neither listed, opened as its member, nor consolidated with it.
    fn member_document(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let v3_document = key.rsplit('/').next() == Some(ZARR_JSON);
        if v3_document != matches!(self.metadata, GroupMetadata::V3(_)) {
            return Ok(None);
        }
        Ok(self.store.get(key)?)
    }

    /// The path of a member given its name or a relative path ("a/b").
    pub fn child_path(&self, name: &str) -> Result<String> {
        normalize_path(&join_key(&self.path, name))
    }

    /// What is at `name` (a member's name or a path below this group), told by its
    /// documents without opening it (see [`node::declared_kind`]); `None` if nothing is.
    pub fn child_kind(&self, name: &str) -> Result<Option<NodeKind>> {
        let path = self.child_path(name)?;
        match &self.consolidated {
            Some(c) => Ok(c.kind(&path)),
            None => node::declared_kind(&path, |k| self.member_document(k)),
        }
    }

    /// The node at `name` (a member's name or a path below this group).
    pub fn child(&self, name: &str) -> Result<Node> {
        self.child_with(name, true)
    }

    /// [`Group::child`]; with `own_consolidated` false, a group below a group opened without
    /// consolidated metadata is opened without its own too, to be listed from the store
    /// (zarr-python's `use_consolidated_for_children=False`).
    pub fn child_with(&self, name: &str, own_consolidated: bool) -> Result<Node> {
        self.child_in_store(name, own_consolidated)
            .map_err(|e| e.metadata_in(&self.store.describe()))
    }

    fn child_in_store(&self, name: &str, own_consolidated: bool) -> Result<Node> {
        let path = self.child_path(name)?;
        let meta = match &self.consolidated {
            Some(c) => match c.unreadable.get(&path) {
                // Its documents again, for the error they give.
                Some((_, docs)) => parse_node_metadata(&path, |k| Ok(docs.get(k).cloned()))?,
                None => c.current(&path),
            },
            None => parse_node_metadata(&path, |k| self.member_document(k))?,
        };
        let Some(meta) = meta else {
            return Err(Error::NodeNotFound {
                kind: "node",
                path: describe(&self.store, &path),
            });
        };
        Ok(match node::node_from_metadata(&self.store, &path, meta)? {
            Node::Group(mut g) => {
                match (&self.consolidated, &mut g.metadata) {
                    // A group below the one holding the consolidated document has, there, an
                    // empty nested `consolidated_metadata` (zarr-python writes it so): kept, a
                    // write of the group's attributes would store it in the group's own
                    // `zarr.json`, and the group, opened alone, would seem to have no members.
                    (Some(c), GroupMetadata::V3(meta)) if c.root != path => {
                        meta.extra_fields.remove("consolidated_metadata");
                        g.consolidated = Some(c.clone());
                    }
                    (Some(c), _) => g.consolidated = Some(c.clone()),
                    // Read from its own `zarr.json`: consolidated metadata there is the
                    // group's own, and it opens through it, as it would opened by its path
                    // (and as zarr-python opens it), so that a delete through it rewrites it.
                    (None, GroupMetadata::V3(meta)) if own_consolidated => {
                        g.consolidated = Consolidated::inline(&path, meta)?.map(Arc::new);
                    }
                    (None, _) => {}
                }
                Node::Group(g)
            }
            // It shares its attributes with the other nodes opened from the document.
            Node::Array(array) => {
                Node::Array(Box::new(array.opened_through(self.consolidated.clone())))
            }
        })
    }

    /// Deletes the member (or node below) at `name` and everything stored under it, as
    /// zarr-python's `del group[name]`; returns the group as it now is. Every consolidated
    /// document that names what was deleted is written again from what the store then holds:
    /// the one this group was opened through, and the own ones of the groups from this one
    /// down to the deleted node (zarr-python's subgroups keep theirs).
    pub fn delete_member(&self, name: &str) -> Result<Self> {
        let path = self.child_path(name)?;
        if path == self.path {
            return Err(Error::InvalidArgument(format!(
                "cannot delete {name:?} from the group at {:?}: it is the group itself",
                self.path
            )));
        }
        let in_document = self
            .consolidated
            .as_ref()
            .is_some_and(|c| c.kind(&path).is_some());
        // (By its documents being there: a member whose documents oxzarr cannot read, or
        // that say no node type it knows, can still be deleted.)
        let stored = || node::has_documents(&path, |k| self.member_document(k));
        if !in_document && !stored()? {
            return Err(Error::NodeNotFound {
                kind: "node",
                path: describe(&self.store, &path),
            });
        }
        // The documents are gathered before the delete, less what is deleted, and written
        // after it: a hierarchy one cannot be written for is found out before anything goes.
        let opened_through = self.consolidated.as_ref().map(|c| c.root.clone());
        // The groups holding documents are this group's format: beside a v2 group, a v3
        // zarr.json (zarr-python's mode "a" can leave one) is another hierarchy, whose
        // document was rewritten while the v2 .zmetadata kept naming the deleted node.
        let format = Some(self.zarr_format());
        let mut holders = Vec::new();
        if let Some(root) = &opened_through {
            holders.push(Self::open_as(self.store.clone(), root, format)?);
        }
        // This group and those below it down to the deleted node's parent.
        let mut between = vec![self.path.clone()];
        let rel = &path[node_prefix(&self.path).len()..];
        for (at, _) in rel.match_indices('/') {
            between.push(join_key(&self.path, &rel[..at]));
        }
        for group_path in between {
            if Some(&group_path) == opened_through.as_ref() {
                continue;
            }
            match Self::open_consolidated_as(self.store.clone(), &group_path, format) {
                Ok(own)
                    if own
                        .consolidated
                        .as_ref()
                        .is_some_and(|c| c.kind(&path).is_some()) =>
                {
                    holders.push(Self {
                        consolidated: None,
                        ..own
                    });
                }
                Ok(_) | Err(Error::NodeNotFound { .. } | Error::NotAGroup { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut rewrites = Vec::new();
        for holder in holders {
            let deleted = path
                .strip_prefix(&node_prefix(&holder.path))
                .unwrap_or(&path)
                .to_string();
            let below = format!("{deleted}/");
            let mut nodes = holder.descendants()?;
            nodes.retain(|(rel, _)| *rel != deleted && !rel.starts_with(&below));
            rewrites.push((holder, nodes));
        }
        self.store.delete_prefix(&node_prefix(&path))?;
        let mut group = self.clone();
        for (holder, nodes) in rewrites {
            let written = holder.write_consolidated(&nodes)?;
            if Some(&written.path) != opened_through.as_ref() {
                continue;
            }
            // The nodes opened from the document before see the writes of those opened
            // from it after, and the other way round, as zarr-python's share its metadata.
            let consolidated = match (written.consolidated, &self.consolidated) {
                (Some(new), Some(old)) => Some(Arc::new(
                    Arc::unwrap_or_clone(new).sharing_writes_of(old, &path),
                )),
                (new, _) => new,
            };
            let written = Self {
                consolidated,
                ..written
            };
            group = if written.path == self.path {
                // This group holds the document: its metadata (written again with the
                // group's attributes) must carry the new one, not the one naming what was
                // deleted.
                written
            } else {
                Self {
                    consolidated: written.consolidated,
                    ..group
                }
            };
        }
        Ok(group)
    }

    /// The direct members of the group, by name, sorted.
    pub fn members(&self) -> Result<Vec<(String, NodeKind)>> {
        let prefix = node_prefix(&self.path);
        let direct = |p: &String| !p[prefix.len()..].is_empty() && !p[prefix.len()..].contains('/');
        if let Some(c) = &self.consolidated {
            let mut members: Vec<(String, NodeKind)> = c
                .nodes
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .filter(|(p, _)| direct(p))
                .map(|(p, m)| (p[prefix.len()..].to_string(), node::kind_of(m)))
                .chain(
                    c.unreadable
                        .range(prefix.clone()..)
                        .take_while(|(p, _)| p.starts_with(&prefix))
                        .filter(|(p, _)| direct(p))
                        .map(|(p, (kind, _))| (p[prefix.len()..].to_string(), *kind)),
                )
                .collect();
            members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            return Ok(members);
        }
        let listed = self.store.list_dir(&prefix)?;
        let mut members = Vec::new();
        for child in listed.prefixes {
            let name = child[prefix.len()..].trim_end_matches('/').to_string();
            // A directory without metadata (chunk folders, stray files) is not a member.
            let path = join_key(&self.path, &name);
            if let Some(kind) = node::declared_kind(&path, |k| self.member_document(k))? {
                members.push((name, kind));
            }
        }
        // The store lists `name/` prefixes in order: `a.b/` comes before `a/`, but `a` before
        // `a.b`.
        members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(members)
    }

    /// Every node below the group, with paths relative to it, depth first in name order.
    fn descendants(&self) -> Result<Vec<(String, Found)>> {
        // Listed from the store: never from a consolidated document, this group's or one a
        // subgroup holds of its own.
        let top = Self {
            consolidated: None,
            ..self.clone()
        };
        let mut out = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            let group = if rel.is_empty() {
                top.clone()
            } else {
                match top.child_with(&rel, false)? {
                    Node::Group(g) => g,
                    Node::Array(_) => continue,
                }
            };
            let members = group.members()?;
            for (name, kind) in members.iter().rev() {
                let child_rel = join_key(&rel, name);
                if *kind == NodeKind::Group {
                    stack.push(child_rel.clone());
                }
                let path = join_key(&self.path, &child_rel);
                match parse_node_metadata(&path, |k| self.member_document(k)) {
                    Ok(Some(meta)) => out.push((child_rel, Found::Parsed(meta))),
                    Ok(None) => {}
                    // An array oxzarr cannot open keeps its documents as they are, so that
                    // consolidating (and deleting a member of) its group still works.
                    Err(e) if *kind == NodeKind::Array => {
                        let docs = self.raw_documents(&path)?.ok_or(e)?;
                        out.push((child_rel, Found::Unreadable(docs)));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The metadata documents at `path` as JSON, by name; `None` if one is not JSON.
    fn raw_documents(&self, path: &str) -> Result<Option<Vec<(&'static str, Value)>>> {
        let mut docs = Vec::new();
        for name in [ZARR_JSON, ZARRAY, ZGROUP, ZATTRS] {
            if let Some(bytes) = self.member_document(&join_key(path, name))? {
                match crate::metadata::json::parse(&bytes) {
                    Ok(doc) => docs.push((name, doc)),
                    Err(_) => return Ok(None),
                }
            }
        }
        Ok(Some(docs))
    }

    /// Writes consolidated metadata for everything below this group (v2: `.zmetadata`; v3:
    /// inline in the group's `zarr.json`); returns the group as opened through it.
    pub fn consolidate(&self) -> Result<Self> {
        self.write_consolidated(&self.descendants()?)
    }

    /// Writes consolidated metadata holding `nodes` (paths relative to this group).
    fn write_consolidated(&self, nodes: &[(String, Found)]) -> Result<Self> {
        match &self.metadata {
            GroupMetadata::V3(meta) => {
                let mut docs = Map::new();
                for (rel, node) in consolidated_order(nodes) {
                    let doc = match node {
                        Found::Unreadable(docs) => match docs.iter().find(|d| d.0 == ZARR_JSON) {
                            Some((_, doc)) => doc.clone(),
                            None => return Err(mixed(rel, "v2", "v3")),
                        },
                        Found::Parsed(NodeMetadata::Array(ArrayMetadata::V3(m))) => m.to_value(),
                        Found::Parsed(NodeMetadata::Group(GroupMetadata::V3(m))) => {
                            // Nested consolidated metadata would repeat what is here; zarr-python
                            // writes an empty one into each subgroup's entry, and so does this,
                            // so that the documents are the same bytes. (Opening a subgroup
                            // through them drops it again: see `child`.)
                            let mut m = m.clone();
                            m.extra_fields.insert(
                                "consolidated_metadata".into(),
                                serde_json::json!(
                                    {"kind": "inline", "must_understand": false, "metadata": {}}
                                ),
                            );
                            m.to_value()
                        }
                        Found::Parsed(_) => return Err(mixed(rel, "v2", "v3")),
                    };
                    docs.insert(rel.clone(), doc);
                }
                let mut meta = meta.clone();
                meta.extra_fields.insert(
                    "consolidated_metadata".into(),
                    serde_json::json!({"kind": "inline", "must_understand": false, "metadata": docs}),
                );
                write_node_metadata(
                    &self.store,
                    &self.path,
                    &NodeMetadata::Group(GroupMetadata::V3(meta)),
                )?;
            }
            GroupMetadata::V2 { attributes } => {
                let mut docs = Map::new();
                docs.insert(ZGROUP.into(), serde_json::json!({"zarr_format": 2}));
                if !attributes.is_empty() {
                    docs.insert(ZATTRS.into(), Value::Object(attributes.clone()));
                }
                for (rel, node) in nodes {
                    let (name, doc, attrs) = match node {
                        Found::Unreadable(raw) => {
                            if raw.iter().any(|d| d.0 == ZARR_JSON) {
                                return Err(mixed(rel, "v3", "v2"));
                            }
                            for (name, doc) in raw {
                                docs.insert(join_key(rel, name), doc.clone());
                            }
                            continue;
                        }
                        Found::Parsed(NodeMetadata::Array(ArrayMetadata::V2(m))) => {
                            (ZARRAY, m.to_value(), &m.attributes)
                        }
                        Found::Parsed(NodeMetadata::Group(GroupMetadata::V2 { attributes })) => {
                            (ZGROUP, serde_json::json!({"zarr_format": 2}), attributes)
                        }
                        Found::Parsed(_) => return Err(mixed(rel, "v3", "v2")),
                    };
                    docs.insert(join_key(rel, name), doc);
                    if !attrs.is_empty() {
                        docs.insert(join_key(rel, ZATTRS), Value::Object(attrs.clone()));
                    }
                }
                let doc = serde_json::json!({"zarr_consolidated_format": 1, "metadata": docs});
                self.store
                    .set(&join_key(&self.path, ZMETADATA), &to_pretty_json(&doc))?;
            }
        }
        Self::open_consolidated_as(self.store.clone(), &self.path, Some(self.zarr_format()))
    }

    /// Opens the group at `path` through its consolidated metadata: member lookups then read
    /// nothing more from the store. An error if the group has none.
    pub fn open_consolidated(store: StoreRef, path: &str) -> Result<Self> {
        Self::open_consolidated_as(store, path, None)
    }

    /// Opens the group of Zarr format `format` (2 or 3; `None`: either, v3 first) at `path`
    /// through its consolidated metadata. A v2 group's `.zmetadata` is found even when a v3
    /// `zarr.json` lies beside it, as zarr-python finds it when asked for v2.
    pub fn open_consolidated_as(store: StoreRef, path: &str, format: Option<u8>) -> Result<Self> {
        let described = store.describe();
        Self::open_consolidated_in(store, path, format).map_err(|e| e.metadata_in(&described))
    }

    fn open_consolidated_in(store: StoreRef, path: &str, format: Option<u8>) -> Result<Self> {
        let group = Self::open_with_own_consolidated(store, path, format)?;
        if group.consolidated.is_none() {
            return Err(Error::NodeNotFound {
                kind: "consolidated metadata",
                path: describe(&group.store, &group.path),
            });
        }
        Ok(group)
    }

    /// Opens the group of Zarr format `format` (2 or 3; `None`: either, v3 first) at `path`
    /// through its consolidated metadata if it has some, else without, reading its document
    /// once either way. Errors are those of [`Group::open_consolidated_as`], less the one
    /// for a group without consolidated metadata.
    pub fn open_maybe_consolidated_as(
        store: StoreRef,
        path: &str,
        format: Option<u8>,
    ) -> Result<Self> {
        let described = store.describe();
        Self::open_with_own_consolidated(store, path, format).map_err(|e| e.metadata_in(&described))
    }

    /// The group at `path` with its own consolidated metadata, if it has some.
    fn open_with_own_consolidated(store: StoreRef, path: &str, format: Option<u8>) -> Result<Self> {
        let path = normalize_path(path)?;
        match node::read_node_metadata_as(&store, &path, format)? {
            Some(NodeMetadata::Group(meta)) => Self::with_own_consolidated(store, &path, meta),
            Some(NodeMetadata::Array(_)) => Err(Error::NotAGroup {
                path: describe(&store, &path),
            }),
            None => Err(Error::NodeNotFound {
                kind: "group",
                path: describe(&store, &path),
            }),
        }
    }

    /// The group whose document `metadata` was read at `path` (normalized), with its own
    /// consolidated metadata if it has some: inline in a v3 document, or a v2 `.zmetadata`
    /// beside it (read here).
    pub(crate) fn with_own_consolidated(
        store: StoreRef,
        path: &str,
        metadata: GroupMetadata,
    ) -> Result<Self> {
        let path = path.to_string();
        let invalid = |key: &str, value: &Value, reason: &str| Error::InvalidMetadata {
            key: key.to_string(),
            source: MetadataError::invalid("consolidated_metadata", value, reason),
        };
        let (group, consolidated) = match metadata {
            GroupMetadata::V3(meta) => {
                let consolidated = Consolidated::inline(&path, &meta)?;
                (GroupMetadata::V3(meta), consolidated)
            }
            meta @ GroupMetadata::V2 { .. } => {
                let key = join_key(&path, ZMETADATA);
                let Some(bytes) = store.get(&key)? else {
                    return Ok(Self::from_metadata(store, &path, meta));
                };
                let doc: Value =
                    crate::metadata::json::parse(&bytes).map_err(|e| Error::InvalidMetadata {
                        key: key.clone(),
                        source: MetadataError::NotJson {
                            path: key.clone(),
                            reason: e.to_string(),
                        },
                    })?;
                let docs = doc
                    .get("metadata")
                    .and_then(Value::as_object)
                    .ok_or_else(|| invalid(&key, &doc, "expected a metadata object"))?;
                (meta, Some(Consolidated::from_documents(&path, docs, 2)?))
            }
        };
        Ok(Self {
            store,
            path,
            metadata: group,
            consolidated: consolidated.map(Arc::new),
        })
    }
}
