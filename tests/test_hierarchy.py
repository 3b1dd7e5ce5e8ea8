"""Hierarchies: members, tree, require_*, consolidated metadata (v2 and v3), open by content."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import oxzarr
from oxzarr.errors import ContainsArrayError, ReadOnlyError
from oxzarr.storage import CountingStore, LocalStore
from tests.conftest import assert_same


def build(path: Path, zarr_format: int) -> oxzarr.Group:
    root = oxzarr.create_group(path, zarr_format=zarr_format, attributes={"title": "root"})
    root.create_array("a", shape=(4,), dtype="i4", chunks=(2,))[...] = [1, 2, 3, 4]
    sub = root.create_group("g", attributes={"level": 1})
    sub.create_array("b", shape=(2, 2), dtype="f8")[...] = 1.5
    sub.create_group("h").create_array("c", shape=(3,), dtype="u1")[...] = [7, 8, 9]
    return root


def _spoil(path: Path, zarr_format: int) -> None:
    """Gives the member "bad" of the group at `path` metadata oxzarr cannot take, in its own
    documents and in the group's consolidated metadata."""
    if zarr_format == 3:
        docs = [
            (path / "bad" / "zarr.json", []),
            (path / "zarr.json", ["consolidated_metadata", "metadata", "bad"]),
        ]
        for file, where in docs:
            doc = json.loads(file.read_text())
            node = doc
            for key in where:
                node = node[key]
            node["codecs"].append({"name": "no_such_codec"})
            file.write_text(json.dumps(doc))
    else:
        zarray = path / "bad" / ".zarray"
        doc = json.loads(zarray.read_text())
        doc.update(dtype="|O", filters=[{"id": "json2"}])
        zarray.write_text(json.dumps(doc))
        zmetadata = json.loads((path / ".zmetadata").read_text())
        zmetadata["metadata"]["bad/.zarray"] = doc
        (path / ".zmetadata").write_text(json.dumps(zmetadata))


@pytest.mark.parametrize("consolidated", [False, True])
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_member_oxzarr_cannot_open_leaves_the_others(
    tmp_path: Path, zarr_format: int, consolidated: bool
) -> None:
    # One member with an unknown codec or object codec made the whole group fail to open
    # through consolidated metadata, and (v2) to list its members; now only opening that
    # member fails, with the error naming its document.
    path = tmp_path / "r.zarr"
    root = oxzarr.create_group(path, zarr_format=zarr_format)
    root.create_array("good", shape=(2,), dtype="i1")[...] = [1, 2]
    root.create_array("bad", shape=(2,), dtype="i1")
    root.create_group("sub")
    oxzarr.consolidate_metadata(path)
    _spoil(path, zarr_format)
    group = oxzarr.open_group(path, mode="r", use_consolidated=consolidated)
    assert list(group.keys()) == ["bad", "good", "sub"]
    assert list(group.array_keys()) == ["bad", "good"]
    assert "bad" in group and "nope" not in group
    assert group["good"][...].tolist() == [1, 2]
    if consolidated:
        # Its metadata leaves it out, saying so.
        with pytest.warns(UserWarning, match="'bad' .* left out of the consolidated metadata"):
            metadata = group.metadata
        assert metadata.consolidated_metadata is not None
        assert sorted(metadata.consolidated_metadata.metadata) == ["good", "sub"]
    # Drawn as a tree with its error in its place (the tree failed whole).
    assert re.search(
        r"├── bad \(cannot be opened: bad/.*\n├── good \(2,\) int8\n└── sub\n$", str(group.tree())
    )
    with pytest.raises(ValueError, match="bad/"):
        group["bad"]
    # Deleting a member rewrites the consolidated metadata, keeping the documents of the one
    # oxzarr cannot open as they are (the delete failed after deleting, and left metadata
    # naming what was gone).
    writable = oxzarr.open_group(path, mode="r+", use_consolidated=consolidated)
    del writable["good"]
    assert not (path / "good").exists()
    # (A group opened without its consolidated metadata rewrites that document too, as it
    # names what was deleted; zarr-python leaves it naming it.)
    for again in (
        oxzarr.open_group(path, mode="r", use_consolidated=consolidated),
        oxzarr.open_consolidated(path),
    ):
        assert list(again.keys()) == ["bad", "sub"]
        with pytest.raises(ValueError, match="bad/"):
            again["bad"]
    # The member oxzarr cannot open can be deleted too (it was looked for by opening it).
    writable = oxzarr.open_group(path, mode="r+", use_consolidated=consolidated)
    del writable["bad"]
    assert not (path / "bad").exists()
    assert list(oxzarr.open_group(path, mode="r", use_consolidated=consolidated)) == ["sub"]
    # A document that does not say what it is fails the listing, and `in`, alike (in a v3
    # group: a v2 group's members are nodes of v2 documents, so it is no member there).
    (path / "odd").mkdir()
    (path / "odd" / "zarr.json").write_text("{}")
    plain = oxzarr.open_group(path, mode="r", use_consolidated=False)
    if zarr_format == 2:
        assert list(plain.keys()) == ["sub"] and "odd" not in plain
        return
    with pytest.raises(ValueError, match=r"odd/zarr\.json"):
        list(plain.keys())
    with pytest.raises(ValueError, match=r"odd/zarr\.json"):
        "odd" in plain  # noqa: B015


def test_dataset_names_of_h5py_and_zarr_python_2(tmp_path: Path) -> None:
    # Deprecated in zarr-python 3 but still there, and in much code written for zarr 2.
    root = oxzarr.create_group(tmp_path / "r.zarr")
    data = np.arange(6, dtype="i2").reshape(2, 3)
    with pytest.warns(DeprecationWarning, match="create_array"):
        a = root.create_dataset("d", data=data, chunks=(1, 3))
    assert a.dtype == data.dtype and a.chunks == (1, 3)
    assert zarr.open_array(tmp_path / "r.zarr" / "d", mode="r")[...].tolist() == data.tolist()
    with pytest.warns(DeprecationWarning, match="require_array"):
        assert root.require_dataset("d", shape=(2, 3), dtype="i4").path == "d"
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="shape"):
        root.require_dataset("d", shape=(3, 3))
    with pytest.warns(DeprecationWarning):
        assert root.require_dataset("e", shape=(5,), dtype="f4").shape == (5,)
    assert root.info.splitlines()[1:3] == ["Type        : Group", "Zarr format : 3"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_members_come_in_name_order(tmp_path: Path, zarr_format: int) -> None:
    # The directory listing gives "a.b/" before "a/": names are sorted, not store prefixes,
    # so the order is the same plainly and through consolidated metadata.
    root = oxzarr.create_group(tmp_path / "r.zarr", zarr_format=zarr_format)
    for name in ["a_b", "a.b", "a", "a-b"]:
        root.create_group(name)
    assert list(root.keys()) == ["a", "a-b", "a.b", "a_b"]
    assert [name for name, _ in root.members()] == ["a", "a-b", "a.b", "a_b"]
    consolidated = oxzarr.consolidate_metadata(tmp_path / "r.zarr")
    assert list(consolidated.keys()) == list(root.keys())


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_members_and_lookups(tmp_path: Path, zarr_format: int) -> None:
    root = build(tmp_path / "r.zarr", zarr_format)
    assert sorted(root.keys()) == ["a", "g"]
    assert "g/h/c" in root and "g/x" not in root and len(root) == 2
    assert [name for name, _ in root.arrays()] == ["a"]
    assert [name for name, _ in root.groups()] == ["g"]
    assert list(root.array_keys()) == ["a"] and list(root.group_keys()) == ["g"]
    assert root["g/h/c"][...].tolist() == [7, 8, 9]
    assert root["g"].attrs["level"] == 1
    assert isinstance(root["g"]["h"], oxzarr.Group)
    assert list(iter(root)) == ["a", "g"]
    assert root.require_group("g").path == "g"
    assert root.require_array("a", shape=(4,), dtype="i4").shape == (4,)
    # The other kind of node where one is required: a TypeError both ways, as in zarr-python.
    with pytest.raises(TypeError, match="is an array, not a group"):
        root.require_group("a")
    with pytest.raises(TypeError, match="is a group, not an array"):
        root.require_array("g", shape=(4,), dtype="i4")
    tree = str(root.tree())
    assert tree.splitlines()[0] == "/"
    assert "a (4,) int32" in tree and "c (3,) uint8" in tree
    # As zarr-python: level 0 draws the direct members, level 1 theirs too.
    assert len(str(root.tree(level=0)).splitlines()) == 3
    assert len(str(root.tree(level=1)).splitlines()) == 5


def test_member_handles_parse_no_documents_until_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each member's handle serialised its document in the engine and parsed it again, which
    # nothing read unless its attributes or metadata were asked for: members() of 5,000
    # arrays took 3x zarr-python's time.
    p = tmp_path / "g.zarr"
    root = oxzarr.open_group(p, mode="w")
    for i in range(50):
        root.create_array(
            f"a{i}",
            shape=(4 + i, 2),
            chunks=(3, 2),
            dtype="f4" if i % 2 else ">i2",
            fill_value=i,
            attributes={"i": i},
            dimension_names=["y", None],
        )
    root.create_array("s", shape=(4,), dtype="f8", chunks=(2,), shards=(4,))
    oxzarr.consolidate_metadata(p)
    parses = 0
    loads = json.loads

    def counting(text: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal parses
        parses += 1
        return loads(text, *args, **kwargs)

    for consolidated in (True, False):
        group = oxzarr.open_group(p, mode="r", use_consolidated=consolidated)
        monkeypatch.setattr(json, "loads", counting)
        parses = 0
        members = dict(group.members())
        handles = [members[f"a{i}"] for i in range(50)]
        described = [(a.shape, a.chunks, a.shards, a.dtype, a.order) for a in handles]
        # One parse at most, of the dtype description the engine gives.
        assert parses <= 1
        monkeypatch.undo()
        for i, a in enumerate(handles):
            stored = json.loads((p / f"a{i}" / "zarr.json").read_text())
            dtype = np.dtype("f4" if i % 2 else "i2")
            assert described[i] == ((4 + i, 2), (3, 2), None, dtype, "C")
            assert a.fill_value == i and dict(a.attrs) == {"i": i}
            assert a.metadata.to_dict() == stored and a.metadata.dimension_names == ("y", None)
        assert (members["s"].shards, members["s"].chunks) == ((4,), (2,))


def test_tree_takes_zarr_pythons_keywords(tmp_path: Path) -> None:
    # oxzarr.tree named its group `group`, so zarr-python's call tree(grp=g) failed with a
    # TypeError: the parameters are zarr-python's, names included.
    root = oxzarr.open_group(tmp_path / "t.zarr", mode="w")
    root.create_group("g").create_array("a", shape=(4,), dtype="i4")
    assert str(oxzarr.tree(grp=root, level=0)) == str(root.tree(level=0))
    assert str(oxzarr.tree(grp=root, expand=None)) == str(root.tree())
    assert list(inspect.signature(oxzarr.tree).parameters) == list(
        inspect.signature(zarr.tree).parameters
    )


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_consolidated_metadata(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "r.zarr"
    build(path, zarr_format)
    oxzarr.consolidate_metadata(path)
    if zarr_format == 2:
        assert (path / ".zmetadata").is_file()
    else:
        doc = json.loads((path / "zarr.json").read_text())
        assert doc["consolidated_metadata"]["kind"] == "inline"
        assert set(doc["consolidated_metadata"]["metadata"]) == {"a", "g", "g/b", "g/h", "g/h/c"}
    # zarr-python reads it, and its own consolidation reads here.
    zg = zarr.open_consolidated(path, mode="r")
    assert sorted(zg.array_keys()) == ["a"]
    # Through consolidated metadata, opening nodes reads no metadata from the store.
    store = CountingStore(LocalStore(path, read_only=True))
    g = oxzarr.open_consolidated(store, mode="r")
    assert g.is_consolidated
    opened = store.requests
    arrays = [g["a"], g["g/b"], g["g"]["h"]["c"]]
    assert sorted(g["g"].keys()) == ["b", "h"]
    assert store.requests == opened, "no metadata reads after the consolidated document"
    assert [a.shape for a in arrays] == [(4,), (2, 2), (3,)]
    assert arrays[2][...].tolist() == [7, 8, 9]
    # open_group uses consolidated metadata when present.
    assert oxzarr.open_group(path, mode="r").is_consolidated
    assert not oxzarr.open_group(path, mode="r", use_consolidated=False).is_consolidated


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_group_metadata_has_zarr_pythons_fields(tmp_path: Path, zarr_format: int) -> None:
    # Group.metadata was a dict, the stored document (no node_type in v2, and the
    # consolidated metadata only as a v3 zarr.json holds it); it is an object with
    # zarr-python's fields and to_dict, the consolidated metadata it was opened through among
    # them, each member group's members under it.
    path = tmp_path / "r.zarr"
    build(path, zarr_format)
    oxzarr.consolidate_metadata(path)
    for use_consolidated in (False, None):
        ours = oxzarr.open_group(path, mode="r", use_consolidated=use_consolidated).metadata
        theirs = zarr.open_group(path, mode="r", use_consolidated=use_consolidated).metadata
        assert (ours.zarr_format, ours.node_type, ours.attributes) == (
            theirs.zarr_format,
            theirs.node_type,
            theirs.attributes,
        )
        assert (ours.consolidated_metadata is None) == (use_consolidated is False)
        assert ours.to_dict() == json.loads(json.dumps(theirs.to_dict()))
    consolidated = ours.consolidated_metadata
    assert consolidated is not None and theirs.consolidated_metadata is not None
    members = consolidated.metadata
    assert sorted(members) == ["a", "g"] and members["a"].shape == (4,)
    from oxzarr.group import GroupMetadata

    g = members["g"]
    assert isinstance(g, GroupMetadata) and g.attributes == {"level": 1}
    assert g.consolidated_metadata is not None
    assert sorted(g.consolidated_metadata.metadata) == ["b", "h"]
    flattened = theirs.consolidated_metadata.flattened_metadata
    assert list(consolidated.flattened_metadata) == list(flattened)
    # A member group opened through them has its own members; opened alone, none.
    sub = oxzarr.open_group(path, mode="r")["g"]
    assert sub.metadata.to_dict() == json.loads(
        json.dumps(zarr.open_group(path, mode="r")["g"].metadata.to_dict())
    )
    assert oxzarr.open_group(path, path="g", mode="r").metadata.consolidated_metadata is None
    # Its keys still read as those of the dict it was.
    assert ours["attributes"] == {"title": "root"} and ours["zarr_format"] == zarr_format
    assert dict(ours) == ours.to_dict()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_delete_members(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "r.zarr"
    root = build(path, zarr_format)
    del root["g/h/c"]
    assert "g/h/c" not in root and list(root["g/h"].keys()) == []
    del root["a"]
    assert list(root.keys()) == ["g"]
    assert not (path / "a").exists(), "the array's chunks and metadata are gone"
    with pytest.raises(KeyError, match="'a'"):
        del root["a"]
    with pytest.raises(KeyError):
        del root["g/nothing"]
    with pytest.raises(ValueError, match="the group itself"):
        del root[""]
    # zarr-python sees the same hierarchy; a deleted group takes its members with it.
    assert sorted(zarr.open_group(path, mode="r").keys()) == ["g"]
    del root["g"]
    assert list(root.keys()) == [] and list(zarr.open_group(path, mode="r").keys()) == []
    # A read-only group refuses.
    build(tmp_path / "s.zarr", zarr_format)
    ro = oxzarr.open_group(tmp_path / "s.zarr", mode="r")
    with pytest.raises(ReadOnlyError, match="read-only"):
        del ro["a"]
    assert "a" in oxzarr.open_group(tmp_path / "s.zarr", mode="r")


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("document", ["{", "", '{"zarr_format": 3, "node_type": "table"}'])
def test_delete_members_whose_documents_cannot_be_read(
    tmp_path: Path, zarr_format: int, document: str
) -> None:
    """A member whose metadata document is damaged, or names no node type, is deleted as
    zarr-python deletes it (v3 members raised MetadataValidationError, so the usual way to
    remove a broken node failed)."""
    root = oxzarr.open_group(tmp_path / "r.zarr", mode="w", zarr_format=zarr_format)
    root.create_array("y", shape=(3,), dtype="i2")[...] = 5
    name = "zarr.json" if zarr_format == 3 else ".zarray"
    (tmp_path / "r.zarr" / "y" / name).write_text(document)
    del root["y"]
    assert not (tmp_path / "r.zarr" / "y").exists()
    with pytest.raises(KeyError):
        del root["y"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_delete_from_a_consolidated_group(tmp_path: Path, zarr_format: int) -> None:
    # The consolidated document is written again, so neither oxzarr nor zarr-python opening
    # it later finds what was deleted, even when deleted through a group below its holder.
    path = tmp_path / "r.zarr"
    build(path, zarr_format)
    oxzarr.consolidate_metadata(path)
    root = oxzarr.open_consolidated(path, mode="r+")
    del root["a"]
    sub = root["g"]
    assert sub.is_consolidated
    del sub["h"]
    assert list(root.keys()) == ["g"] and list(sub.keys()) == ["b"]
    again = oxzarr.open_consolidated(path, mode="r")
    assert list(again.keys()) == ["g"] and list(again["g"].keys()) == ["b"]
    assert again["g/b"][...].tolist() == [[1.5, 1.5], [1.5, 1.5]]
    zg = zarr.open_consolidated(path, mode="r")
    assert sorted(zg.keys()) == ["g"] and sorted(zg["g"].keys()) == ["b"]
    # Writing the group's attributes afterwards keeps the new document, not the old one.
    root.attrs["after"] = 1
    assert list(oxzarr.open_consolidated(path, mode="r").keys()) == ["g"]
    assert sorted(zarr.open_consolidated(path, mode="r").keys()) == ["g"]


def _consolidated_members(path: Path, group: str) -> dict[str, list[str]]:
    """The members of `group` its own consolidated document names, as oxzarr and zarr-python
    read it."""
    return {
        lib.__name__: sorted(lib.open_consolidated(path, path=group, mode="r").keys())
        for lib in (oxzarr, zarr)
    }


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_subgroups_own_consolidated_metadata(tmp_path: Path, zarr_format: int) -> None:
    """A v3 subgroup consolidated on its own, reached through its parent, opens through its
    own document, as opened by its path and as in zarr-python: a delete through it rewrote no
    document, and its deleted member was still listed (reading as fill values). A delete
    from above rewrites it too; an attribute write through the root's document kept none of
    it (and open_consolidated at the subgroup then failed)."""
    path = tmp_path / "r.zarr"
    build(path, zarr_format)
    oxzarr.consolidate_metadata(path, path="g")
    sub = oxzarr.open_group(path, mode="a", use_consolidated=False)["g"]
    # (zarr-python opens a v2 member without its .zmetadata; the delete rewrites it anyway.)
    assert isinstance(sub, oxzarr.Group) and sub.is_consolidated == (zarr_format == 3)
    del sub["h"]
    assert list(sub.keys()) == ["b"] and "h" not in sub
    assert _consolidated_members(path, "g") == {"oxzarr": ["b"], "zarr": ["b"]}
    with pytest.raises(KeyError):
        oxzarr.open_group(path, path="g", mode="r")["h"]

    build(path := tmp_path / "both.zarr", zarr_format)
    oxzarr.consolidate_metadata(path, path="g")
    oxzarr.consolidate_metadata(path)
    root = oxzarr.open_group(path, mode="a")
    del root["g/h"]
    assert _consolidated_members(path, "g") == {"oxzarr": ["b"], "zarr": ["b"]}
    for use_consolidated in (True, False):
        group = oxzarr.open_group(path, mode="r", use_consolidated=use_consolidated)
        assert [name for name, _ in group.members(max_depth=None)] == ["a", "g", "g/b"]
    root["g"].attrs["k"] = 1
    assert _consolidated_members(path, "g") == {"oxzarr": ["b"], "zarr": ["b"]}
    assert dict(zarr.open_group(path, path="g", mode="r").attrs) == {"level": 1, "k": 1}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_read_what_zarr_python_consolidates(tmp_path: Path, zarr_format: int) -> None:
    path = tmp_path / "z.zarr"
    g = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    g.create_array("x", shape=(3,), dtype="i8")[...] = [4, 5, 6]
    g.create_group("y").attrs["k"] = "v"
    zarr.consolidate_metadata(path)
    og = oxzarr.open_consolidated(path, mode="r")
    assert og["x"][...].tolist() == [4, 5, 6]
    assert og["y"].attrs["k"] == "v"


def test_consolidated_documents_order_nodes_as_zarr_python(tmp_path: Path) -> None:
    # The nodes were in the order of their paths' code points ("B", "B/x", "C", "a"), where
    # zarr-python puts them by depth, then by NFKC-normalised case-folded path: the same
    # hierarchy consolidated by both gave two different zarr.json files.
    import unicodedata

    names = ["B", "B/x", "a", "C", "B/Y", "st", "\u00df", "sr", "\ufb01", "fj", "fh", "\u2168"]
    names += ["iy", "iw", "\u00c9", "e", "f"]
    written = {}
    for lib in (zarr, oxzarr):
        p = tmp_path / f"{lib.__name__}.zarr"
        root = zarr.open_group(p, mode="w")
        for name in names:
            root.create_group(name)
        root.create_array("C/\u00df/q", shape=(2,), dtype="i4")
        lib.consolidate_metadata(p)
        written[lib.__name__] = (p / "zarr.json").read_bytes()
    assert written["oxzarr"] == written["zarr"]
    order = list(json.loads(written["oxzarr"])["consolidated_metadata"]["metadata"])
    assert order[:5] == ["a", "B", "C", "e", "f"]
    assert order[-4:] == ["B/x", "B/Y", "C/\u00df", "C/\u00df/q"]
    # Paths the key holds equal ("B" and "b": zarr-python leaves them in the order its listing
    # found them) come in the order of their code points, between the others as in zarr-python.
    p = tmp_path / "zarr.zarr"
    zarr.open_group(p / "b", mode="w")
    oxzarr.consolidate_metadata(p)
    order = list(json.loads((p / "zarr.json").read_text())["consolidated_metadata"]["metadata"])
    assert order[:4] == ["a", "B", "b", "C"]

    def key(path: str) -> tuple[int, str]:
        return path.count("/"), unicodedata.normalize("NFKC", path).casefold()

    assert order == sorted(order, key=key)


def test_open_picks_format_and_kind(tmp_path: Path) -> None:
    zarr.create_array(tmp_path / "a2.zarr", shape=(2,), dtype="i1", zarr_format=2)
    zarr.create_array(tmp_path / "a3.zarr", shape=(2,), dtype="i1", zarr_format=3)
    zarr.open_group(tmp_path / "g2.zarr", mode="w", zarr_format=2)
    for name, kind, fmt in [
        ("a2", oxzarr.Array, 2),
        ("a3", oxzarr.Array, 3),
        ("g2", oxzarr.Group, 2),
    ]:
        node = oxzarr.open(tmp_path / f"{name}.zarr", mode="r")
        assert isinstance(node, kind) and node.zarr_format == fmt
    with pytest.raises(FileNotFoundError):
        oxzarr.open_consolidated(tmp_path / "g2.zarr", mode="r")


def test_a_consolidated_group_reads_new_data(tmp_path: Path) -> None:
    path = tmp_path / "r.zarr"
    root = build(path, 3)
    g = oxzarr.consolidate_metadata(path)
    root["a"][...] = np.array([9, 9, 9, 9])
    # Data is read from the store; only metadata comes from the consolidated document.
    assert g["a"][...].tolist() == [9, 9, 9, 9]


@pytest.mark.parametrize("consolidate", [oxzarr.consolidate_metadata, zarr.consolidate_metadata])
def test_attributes_of_a_subgroup_opened_through_consolidated_metadata(
    tmp_path: Path, consolidate: Any
) -> None:
    # A subgroup's entry in the consolidated document carries an empty nested
    # `consolidated_metadata` (zarr-python writes one): a write of the subgroup's attributes
    # must not put it into the subgroup's own zarr.json, where it hid the subgroup's members.
    path = tmp_path / "c.zarr"
    root = oxzarr.open_group(path, mode="w")
    root.create_group("sub").create_array("y", shape=(2,), dtype="i1")
    consolidate(path)
    oxzarr.open_group(path, mode="r+")["sub"].attrs["k"] = 1
    assert "consolidated_metadata" not in json.loads((path / "sub" / "zarr.json").read_text())
    for lib in (oxzarr, zarr):
        sub = lib.open_group(path / "sub", mode="r")
        assert list(sub.keys()) == ["y"] and dict(sub.attrs) == {"k": 1}, lib


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_attribute_writes_through_a_consolidated_group_keep_the_earlier_ones(
    tmp_path: Path, zarr_format: int
) -> None:
    # Each g[name] was made from the group's copy of its consolidated metadata, and a write
    # changed that copy and wrote the whole document: the second write through g dropped the
    # first from the store ({"long_name": ...} alone), and g[name] showed neither.
    path = tmp_path / "c.zarr"
    g = oxzarr.open_group(path, mode="w", zarr_format=zarr_format)
    g.create_array("temperature", shape=(4,), chunks=(2,), dtype="f4")
    oxzarr.consolidate_metadata(path)
    g = oxzarr.open_group(path, mode="r+")
    assert g.is_consolidated
    g["temperature"].attrs["units"] = "K"
    g["temperature"].attrs["long_name"] = "air temperature"
    expected = {"units": "K", "long_name": "air temperature"}
    assert dict(g["temperature"].attrs) == expected
    assert dict(zarr.open_array(path / "temperature", mode="r").attrs) == expected
    assert dict(oxzarr.open_array(path / "temperature", mode="r").attrs) == expected


def _member_writes(lib: Any, path: Path) -> list[Any]:
    """Attribute writes (and a resize) through the members of the group at `path`, opened
    through its consolidated metadata with `lib`, and what lookups through it see after."""
    g = lib.open_group(path, mode="r+")
    seen: list[Any] = []
    early, late = g["a"], g["a"]
    early.attrs["units"] = "K"
    late.attrs["long_name"] = "t"  # from the handle made before the first write
    seen += [dict(g["a"].attrs), dict(early.attrs), dict(late.attrs)]
    sub = g["g"]
    g["g"].attrs["x"] = 1
    g["g"].update_attributes({"y": 2})
    seen += [dict(sub.attrs), dict(g["g"].attrs)]
    g["g/h/c"].attrs["deep"] = True
    g["g"]["h"]["c"].attrs.update({"deeper": 1, "gone": 0})
    del sub["h/c"].attrs["gone"]
    g["g"]["b"].update_attributes({"k": [1, 2]})
    g["a"].attrs.put({"only": 1})
    # The shape is the handle's own, and not seen through the group, as in zarr-python; the
    # attributes written with it are the shared ones.
    early.resize((6,))
    seen += [g["a"].shape, early.shape, dict(g["a"].attrs), dict(early.attrs)]
    seen.append({name: dict(node.attrs) for name, node in g.members(max_depth=None)})
    consolidated = g.metadata.consolidated_metadata.flattened_metadata
    seen.append({name: dict(node.attributes) for name, node in consolidated.items()})
    # A delete writes the document again: the handles made before still share the attributes.
    del g["g/b"]
    sub.attrs["after_delete"] = 1
    g["g/h"].attrs["h"] = 1
    seen += [dict(g["g"].attrs), dict(sub["h"].attrs)]
    return seen


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_attribute_writes_through_a_consolidated_groups_members_are_shared(
    tmp_path: Path, zarr_format: int
) -> None:
    # A member looked up again through the group, members(), the group's metadata and
    # handles made before a write showed the attributes of the consolidated document, not
    # those written through other handles from the group; a write from such a handle dropped
    # what the others wrote. zarr-python's members share their attributes with the group's
    # consolidated metadata, at every level; so do oxzarr's now.
    build(tmp_path / "ours.zarr", zarr_format)
    oxzarr.consolidate_metadata(tmp_path / "ours.zarr")
    shutil.copytree(tmp_path / "ours.zarr", tmp_path / "theirs.zarr")
    ours = _member_writes(oxzarr, tmp_path / "ours.zarr")
    assert ours == _member_writes(zarr, tmp_path / "theirs.zarr")
    assert ours[0] == {"units": "K", "long_name": "t"} and ours[-1] == {"h": 1}
    for lib in (oxzarr, zarr):
        for name in ("ours.zarr", "theirs.zarr"):
            stored = lib.open_group(tmp_path / name, mode="r", use_consolidated=False)
            assert dict(stored["a"].attrs) == {"only": 1}, (lib, name)
            assert dict(stored["g"].attrs) == {"level": 1, "x": 1, "y": 2, "after_delete": 1}
            assert dict(stored["g/h/c"].attrs) == {"deep": True, "deeper": 1}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_member_attribute_writes_leave_the_consolidated_document_as_zarr_python_does(
    tmp_path: Path, zarr_format: int
) -> None:
    # zarr-python writes a member's document alone: the consolidated document keeps the
    # attributes it was written with until the group holding it writes its own document
    # (v3), which then holds those its members wrote, as zarr-python's holds them.
    build(tmp_path / "ours.zarr", zarr_format)
    oxzarr.consolidate_metadata(tmp_path / "ours.zarr")
    shutil.copytree(tmp_path / "ours.zarr", tmp_path / "theirs.zarr")
    document = "zarr.json" if zarr_format == 3 else ".zmetadata"
    before = (tmp_path / "ours.zarr" / document).read_bytes()

    def files(name: str) -> dict[str, bytes]:
        root = tmp_path / name
        return {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()}

    groups = {}
    for lib, name in ((oxzarr, "ours.zarr"), (zarr, "theirs.zarr")):
        g = lib.open_group(tmp_path / name, mode="r+")
        g["a"].attrs["units"] = "K"
        g["a"].attrs["long_name"] = "t"
        g["g/h/c"].attrs["deep"] = True
        g["g"]["b"].attrs["k"] = 1
        groups[lib] = g
    assert (tmp_path / "ours.zarr" / document).read_bytes() == before
    assert files("ours.zarr") == files("theirs.zarr")
    if zarr_format == 3:
        for g in groups.values():
            g.attrs["title"] = "again"
        assert files("ours.zarr") == files("theirs.zarr")
        written = oxzarr.open_consolidated(tmp_path / "ours.zarr", mode="r")
        assert dict(written["a"].attrs) == {"units": "K", "long_name": "t"}


THREADS_WRITING_ATTRIBUTES = """
import sys
from concurrent.futures import ThreadPoolExecutor
import oxzarr

path, zarr_format = sys.argv[1], int(sys.argv[2])
g = oxzarr.open_group(path, mode="w", zarr_format=zarr_format)
g.create_array("a", shape=(2,), dtype="i1")
g.create_group("s").create_array("b", shape=(2,), dtype="i1")
oxzarr.consolidate_metadata(path)
g = oxzarr.open_group(path, mode="r+")

def change(i):
    # A handle of its own for every write, each made from the group's consolidated metadata.
    for name in ("a", "s", "s/b"):
        for j in range(10):
            g[name].attrs[f"t{i}-{j}"] = j
        g[name].update_attributes({f"u{i}": i})
        del g[name].attrs[f"t{i}-0"]

with ThreadPoolExecutor(4) as pool:
    list(pool.map(change, range(4)))
expected = {f"t{i}-{j}": j for i in range(4) for j in range(1, 10)}
expected.update({f"u{i}": i for i in range(4)})
for name in ("a", "s", "s/b"):
    assert g[name].attrs.asdict() == expected, name
    stored = oxzarr.open_group(path, mode="r", use_consolidated=False)[name]
    assert stored.attrs.asdict() == expected, name
print("ok")
"""


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_threads_writing_attributes_through_a_consolidated_group_lose_nothing(
    tmp_path: Path, zarr_format: int
) -> None:
    # Threads writing the attributes of one member, each through a handle of its own from the
    # group: each write started from the attributes of the consolidated document. Now a write
    # made from attributes another handle's write has since replaced is made again from those.
    # (In a process of its own: a write made again and again would not end.)
    script = [sys.executable, "-c", THREADS_WRITING_ATTRIBUTES]
    run = subprocess.run(
        [*script, str(tmp_path / "c.zarr"), str(zarr_format)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and run.stdout == "ok\n", run.stderr[-2000:]


def test_groups_written_by_zarr_python_3_0_to_3_1_3(tmp_path: Path) -> None:
    """zarr-python 3.0.0 to 3.1.3 wrote `"consolidated_metadata": null` into every group it did
    not consolidate (their own documents, as those versions wrote them, are below); zarr-python
    reads that as no consolidated metadata, and so does oxzarr."""
    path = tmp_path / "old.zarr"
    for rel, attributes in [("", {"ome": {"version": "0.5"}}), ("labels", {})]:
        (path / rel).mkdir(parents=True, exist_ok=True)
        doc = {
            "attributes": attributes,
            "zarr_format": 3,
            "consolidated_metadata": None,
            "node_type": "group",
        }
        (path / rel / "zarr.json").write_text(json.dumps(doc, indent=2))
    zarr.create_array(path / "labels" / "a", shape=(3,), dtype="i2", chunks=(2,))[...] = [4, 5, 6]

    root = oxzarr.open_group(path, mode="r")
    assert dict(root.attrs) == {"ome": {"version": "0.5"}}
    assert sorted(name for name, _ in root.members(max_depth=None)) == ["labels", "labels/a"]
    np.testing.assert_array_equal(root["labels/a"][...], [4, 5, 6])
    assert isinstance(oxzarr.open(path / "labels", mode="r"), oxzarr.Group)
    with pytest.raises(ValueError, match="consolidated"):
        oxzarr.open_consolidated(path, mode="r")

    # Written again, the group leaves the null out; zarr-python reads it as before.
    oxzarr.open_group(path, mode="r+").attrs["more"] = 1
    written = json.loads((path / "zarr.json").read_text())
    assert "consolidated_metadata" not in written
    assert dict(zarr.open_group(path, mode="r").attrs) == {"ome": {"version": "0.5"}, "more": 1}
    assert zarr.open_group(path, mode="r").metadata.consolidated_metadata is None


def test_member_names_that_are_not_strings_are_type_errors() -> None:
    g = oxzarr.group()
    for make in (
        lambda: g.__setitem__(0, np.zeros(2)),
        lambda: g.create_group(1),  # type: ignore[arg-type]
        lambda: g.create_array(None, shape=(1,), dtype="i1"),  # type: ignore[arg-type]
        lambda: g[0],  # type: ignore[index]
    ):
        with pytest.raises(TypeError):
            make()
    assert list(g) == []


@pytest.mark.parametrize("lib", [oxzarr, zarr])
def test_a_format_asked_for_opens_beside_the_other(tmp_path: Path, lib: Any) -> None:
    # Both formats' documents at one path (zarr-python's mode "a" can leave them): asked for
    # v2, the v2 node opens, as in zarr-python; unasked, v3 is taken first.
    array, group = tmp_path / "a.zarr", tmp_path / "g.zarr"
    oxzarr.create_array(array, shape=(3,), dtype="i4", fill_value=2, zarr_format=2)
    oxzarr.create_group(group, zarr_format=2, attributes={"fmt": 2})
    for path in (array, group):
        doc = {"zarr_format": 3, "node_type": "group", "attributes": {"fmt": 3}}
        (path / "zarr.json").write_text(json.dumps(doc))
    assert lib.open_array(array, mode="r", zarr_format=2)[...].tolist() == [2, 2, 2]
    assert lib.open(array, mode="r", zarr_format=2)[...].tolist() == [2, 2, 2]
    assert dict(lib.open_group(group, mode="r", zarr_format=2).attrs) == {"fmt": 2}
    assert dict(lib.open(group, mode="r", zarr_format=2).attrs) == {"fmt": 2}
    assert dict(lib.open_group(group, mode="r").attrs) == {"fmt": 3}
    with pytest.raises(ValueError, match="array"):  # v3 holds a group there
        lib.open_array(array, mode="r", zarr_format=3)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_nodes_of_the_other_format_are_not_members(tmp_path: Path, zarr_format: int) -> None:
    # As zarr-python reads hierarchies: a v3 group's members are the nodes with a zarr.json,
    # a v2 group's those with .zarray/.zgroup. A node of the other format below a group (as
    # zarr-python 3.1.6's v2 group helpers write) is not listed, opened nor consolidated as
    # a member; consolidating such a group failed.
    other = 5 - zarr_format
    built = {}
    for lib in (zarr, oxzarr):
        path = tmp_path / lib.__name__
        zarr.open_group(path, mode="w", zarr_format=zarr_format)
        zarr.create_array(path / "own", shape=(1,), dtype="i1", zarr_format=zarr_format)
        zarr.create_array(path / "other", shape=(1,), dtype="i1", zarr_format=other)
        zarr.open_group(path / "sub", mode="w", zarr_format=other)
        group = lib.open_group(path, mode="r")
        built[lib.__name__] = (sorted(group.keys()), "other" in group, "sub" in group)
        with pytest.raises(KeyError):
            group["other"]
        lib.consolidate_metadata(path)
        built[lib.__name__] += (sorted(lib.open_consolidated(path).keys()),)
    assert built["oxzarr"] == built["zarr"] == (["own"], False, False, ["own"])
    # Opened on its own, a node of either format still opens.
    assert oxzarr.open_array(tmp_path / "oxzarr" / "other").zarr_format == other


def test_a_node_named_like_a_temporary_file_is_a_member(tmp_path: Path) -> None:
    # Only the engine's own temporary files (".name.pid-n.oxzarr-tmp") are left out of
    # listings: a node a user named "run.oxzarr-tmp" was readable by name but missing from
    # members, consolidated metadata and convert's copy (verify then saw the copy "equal").
    from oxzarr.convert import convert

    root = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
    root.create_array("run.oxzarr-tmp", data=np.arange(4))
    root.create_array("plain", data=np.arange(3))
    (tmp_path / "g.zarr" / ".zarr.json.1-2.oxzarr-tmp").write_bytes(b"{")  # a write cut short
    expected = ["plain", "run.oxzarr-tmp"]
    assert sorted(root.array_keys()) == expected
    assert sorted(zarr.open_group(tmp_path / "g.zarr", mode="r").array_keys()) == expected
    consolidated = oxzarr.consolidate_metadata(tmp_path / "g.zarr")
    assert sorted(consolidated.array_keys()) == expected
    convert(str(tmp_path / "g.zarr"), str(tmp_path / "copy.zarr"))
    copy = zarr.open_group(tmp_path / "copy.zarr", mode="r")
    assert sorted(copy.array_keys()) == expected
    np.testing.assert_array_equal(copy["run.oxzarr-tmp"][...], np.arange(4))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_overwriting_below_an_array_keeps_its_chunks(tmp_path: Path, zarr_format: int) -> None:
    """A node asked for below an array is refused; with overwrite=True (or mode 'w') the keys
    below its path were deleted first: the array's chunks (zarr-python deletes them too)."""
    path = tmp_path / "g.zarr"
    root = oxzarr.open_group(path, mode="w", zarr_format=zarr_format)
    values = np.arange(16, dtype="i4").reshape(4, 4)
    key_encoding = {"name": "v2", "separator": "/"} if zarr_format == 2 else None
    arr = root.create_array(
        "arr", shape=(4, 4), chunks=(2, 2), dtype="i4", chunk_key_encoding=key_encoding
    )
    arr[...] = values
    below = "arr/0" if zarr_format == 2 else "arr/c"
    with pytest.raises(ContainsArrayError, match="is an array"):
        root.create_group(below, overwrite=True)
    with pytest.raises(ContainsArrayError, match="is an array"):
        root.create_array(below, shape=(1,), dtype="u1", overwrite=True)
    with pytest.raises(ContainsArrayError, match="is an array"):
        oxzarr.open_group(path, path=below, mode="w", zarr_format=zarr_format)
    assert_same(oxzarr.open_array(path, path="arr")[...], values)
    assert_same(zarr.open_array(path, path="arr")[...], values)


def test_a_member_named_in_bytes_that_are_not_utf8_is_refused_not_dropped(
    tmp_path: Path,
) -> None:
    """zarr-python lists a directory named in Latin-1 ("caf\\xe9") as a member; oxzarr left it
    out of members, consolidation and convert, whose copy verify then called equal."""
    import os

    from oxzarr.convert import convert

    path = tmp_path / "g.zarr"
    root = zarr.open_group(path, mode="w")
    root.create_array("ok", shape=(2,), dtype="i4")[...] = [1, 2]
    root.create_array("cafe", shape=(2,), dtype="i4")[...] = [3, 4]
    # A file so named is no key and no node: it is left out, as before.
    (path / "ok").joinpath("notes").write_text("x")
    os.rename(os.fsencode(path / "cafe"), os.fsencode(path) + b"/caf\xe9")
    assert sorted(zarr.open_group(path).keys()) == ["caf\udce9", "ok"]
    group = oxzarr.open_group(path, mode="r")
    with pytest.raises(ValueError, match=r"caf.*not UTF-8"):
        group.keys()
    with pytest.raises(ValueError, match=r"caf.*not UTF-8"):
        oxzarr.consolidate_metadata(path)
    with pytest.raises(ValueError, match=r"caf.*not UTF-8"):
        convert(path, tmp_path / "copy.zarr")
    # Names that are no node stay left out: a file, a directory without node metadata (in
    # a group, or among an array's chunks).
    os.mkdir(os.fsencode(path / "ok") + b"/\xff")
    os.rename(os.fsencode(path) + b"/caf\xe9", os.fsencode(path / "cafe"))
    open(os.fsencode(path) + b"/read\xe9", "w").close()
    os.mkdir(os.fsencode(path) + b"/notes\xe9")
    assert sorted(oxzarr.open_group(path, mode="r").keys()) == ["cafe", "ok"]
    ok = oxzarr.open_array(path, path="ok", mode="r+")
    assert ok.nchunks_initialized == 1
    ok.resize((1,))
    assert_same(ok[...], np.array([1], dtype="i4"))


def test_get_takes_zarr_pythons_keyword(tmp_path: Path) -> None:
    """Group.get(path=...) as zarr-python names it (it was `key`: a TypeError)."""
    root = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
    root.create_group("sub").create_array("a", shape=(1,), dtype="u1")
    theirs = zarr.open_group(tmp_path / "g.zarr", mode="r")
    for group in (root, theirs):
        sub = group.get(path="sub/a")
        assert sub is not None and sub.shape == (1,)
        assert group.get(path="none", default=5) == 5
        assert group.get("none") is None


def test_consolidated_metadata_of_another_kind_is_refused(tmp_path: Path) -> None:
    """Only "inline" is zarr-python's kind: another was read as a group with no members.
    And the field is one oxzarr knows, whatever its "must_understand" says: true made the
    group unopenable, even with use_consolidated=False."""
    path = tmp_path / "g.zarr"
    zarr.create_group(path).create_array("a", shape=(1,), dtype="i1")
    document = json.loads((path / "zarr.json").read_text())

    def consolidated_as(field: dict[str, Any]) -> None:
        (path / "zarr.json").write_text(json.dumps({**document, "consolidated_metadata": field}))

    consolidated_as({"kind": "external", "must_understand": False, "metadata": {}})
    with pytest.raises(ValueError, match=r"zarr\.json.*external.*inline"):
        oxzarr.open_group(path, mode="r")
    with pytest.raises(ValueError, match="external"):
        zarr.open_group(path, mode="r")
    assert list(oxzarr.open_group(path, mode="r", use_consolidated=False).keys()) == ["a"]
    consolidated_as({"kind": "inline", "must_understand": True, "metadata": {}})
    assert list(zarr.open_group(path, mode="r", use_consolidated=False).keys()) == ["a"]
    assert list(oxzarr.open_group(path, mode="r", use_consolidated=False).keys()) == ["a"]
    assert list(oxzarr.open_group(path, mode="r").keys()) == []  # as consolidated, as zarr


@pytest.mark.parametrize("alias", ["a/", "/a"])
def test_two_consolidated_entries_naming_one_member_are_refused(tmp_path: Path, alias: str) -> None:
    """An entry "a/" beside "a" replaced it, being later in name order: the member's int32
    chunks were read as float32, with no error."""
    path = tmp_path / "g.zarr"
    group = oxzarr.open_group(path, mode="w")
    group.create_array("a", shape=(4,), dtype="i4", chunks=(2,), fill_value=0)[...] = 7
    oxzarr.consolidate_metadata(path)
    document = json.loads((path / "zarr.json").read_text())
    entries = document["consolidated_metadata"]["metadata"]
    entries[alias] = {**entries["a"], "data_type": "float32", "fill_value": 0.0}
    (path / "zarr.json").write_text(json.dumps(document))
    refusal = rf"zarr\.json.*\"a\" and \"{alias}\" name the same member"
    with pytest.raises(ValueError, match=refusal):
        oxzarr.open_group(path, mode="r")
    # A lone entry spelt so still names its member.
    entries["a"] = entries.pop(alias)
    entries[alias] = entries.pop("a")
    (path / "zarr.json").write_text(json.dumps(document))
    assert oxzarr.open_group(path, mode="r")["a"].dtype == np.float32


def test_a_link_to_nothing_is_no_stored_chunk_or_member(tmp_path: Path) -> None:
    """A chunk replaced by a dangling symbolic link read as the fill value (as zarr-python
    reads it) but was counted as initialized; zarr-python counts only what reads."""
    import os

    path = tmp_path / "g.zarr"
    group = oxzarr.open_group(path, mode="w")
    a = group.create_array("a", shape=(4,), chunks=(2,), dtype="i4", fill_value=0)
    a[...] = [1, 2, 3, 4]
    (path / "a" / "c" / "0").unlink()
    os.symlink(tmp_path / "nowhere", path / "a" / "c" / "0")
    os.symlink(tmp_path / "nowhere", path / "b")
    for lib in (oxzarr, zarr):
        opened = lib.open_group(path, mode="r")
        assert opened["a"][...].tolist() == [0, 0, 3, 4]
        assert opened["a"].nchunks_initialized == 1
        assert list(opened.keys()) == ["a"]


def test_a_link_to_itself_is_no_stored_chunk(tmp_path: Path) -> None:
    """A chunk replaced by a symbolic link to itself (or a pair leading to each other), which
    no read gets through, was counted as initialized: the link's own metadata failed with
    "too many levels of symbolic links", not "not found", and it was taken for a value.
    zarr-python's is_file() is False for it: neither counts it."""
    import os

    path = tmp_path / "g.zarr"
    group = oxzarr.open_group(path, mode="w")
    a = group.create_array("a", shape=(8,), chunks=(2,), dtype="i4", fill_value=0)
    a[...] = [1, 2, 3, 4, 5, 6, 7, 8]
    chunks = path / "a" / "c"
    (chunks / "0").unlink()
    os.symlink(chunks / "0", chunks / "0")
    (chunks / "1").unlink()
    os.symlink(chunks / "2", chunks / "1")
    (chunks / "2").unlink()
    os.symlink(chunks / "1", chunks / "2")
    for lib in (oxzarr, zarr):
        opened = lib.open_array(path / "a", mode="r")
        assert opened.nchunks_initialized == 1, lib.__name__
        assert opened[6:].tolist() == [7, 8], lib.__name__


@pytest.mark.timeout(120)  # without the check, the walks never end
def test_a_symbolic_link_looping_back_is_named_not_followed(tmp_path: Path) -> None:
    """Links followed without end: two made listings and group walks take forever (the
    paths double at each level), one made consolidation record made-up members."""
    import os

    path = tmp_path / "g.zarr"
    root = oxzarr.open_group(path, mode="w")
    a = root.create_array("a", shape=(4,), chunks=(2,), dtype="i2")
    a[...] = [1, 2, 3, 4]
    os.symlink("..", path / "a" / "up0")
    os.symlink("..", path / "a" / "up1")
    os.symlink(".", path / "self0")
    os.symlink(".", path / "self1")
    with pytest.raises(OSError, match=r"leads back to .*a loop: '.*/a/up[01]'"):
        _ = oxzarr.open_array(path, path="a").nchunks_initialized
    # A loop through a sibling: each link leads to a directory the walk came through.
    siblings = tmp_path / "siblings.zarr"
    top = oxzarr.open_group(siblings, mode="w")
    top.create_group("A")
    top.create_group("B")
    os.symlink("../B", siblings / "A" / "to_b")
    os.symlink("../A", siblings / "B" / "to_a")
    with pytest.raises(OSError, match=r"leads back to .*a loop: '.*/to_[ab]'"):
        list(oxzarr.open_group(siblings).members(max_depth=None))
    for walk in (
        lambda: list(oxzarr.open_group(path).members(max_depth=None)),
        lambda: oxzarr.consolidate_metadata(path),
    ):
        with pytest.raises(OSError, match=r"leads back to .*a loop: '.*/self[01]'"):
            walk()
    # A link elsewhere (a chunk directory on another disk, say) is followed as before.
    os.remove(path / "a" / "up0")
    os.remove(path / "a" / "up1")
    os.remove(path / "self0")
    os.remove(path / "self1")
    (path / "a" / "c").rename(tmp_path / "chunks")
    os.symlink(tmp_path / "chunks", path / "a" / "c")
    assert oxzarr.open_array(path, path="a").nchunks_initialized == 2
    assert_same(oxzarr.open_array(path, path="a")[...], np.array([1, 2, 3, 4], dtype="i2"))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_metadata_name_held_by_a_directory_or_a_dead_link(
    tmp_path: Path, zarr_format: int
) -> None:
    """A directory named zarr.json was read as a node another writer had just made (a
    ContainsArrayError, for a group too); a link leading nowhere is replaced, as
    zarr-python's rename replaces it."""
    import os

    key = "zarr.json" if zarr_format == 3 else ".zgroup"
    (tmp_path / "d.zarr" / key).mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match=key):
        oxzarr.create_group(tmp_path / "d.zarr", zarr_format=zarr_format)
    (tmp_path / "l.zarr").mkdir()
    os.symlink(tmp_path / "nowhere", tmp_path / "l.zarr" / key)
    oxzarr.create_group(tmp_path / "l.zarr", zarr_format=zarr_format, attributes={"k": 1})
    assert (tmp_path / "l.zarr" / key).is_file()
    assert zarr.open_group(tmp_path / "l.zarr", mode="r").attrs["k"] == 1


class _ListThenChange:
    """A group's engine handle whose listing is followed at once by another writer's change
    (as a thread or process may make it between the listing and the opening of members)."""

    def __init__(self, core: Any, change: Any) -> None:
        self._core, self._change = core, change

    def members(self) -> Any:
        listed = self._core.members()
        self._change()
        return listed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)


def test_members_deleted_or_replaced_while_listed_are_left_out(tmp_path: Path) -> None:
    # As zarr-python: a member gone by the time it is opened is left out with a warning; one
    # replaced by the other kind is not an array (or a group) of arrays() (or groups()).
    def group_with(change: Any) -> oxzarr.Group:
        g = oxzarr.open_group(tmp_path / "g.zarr", mode="w")
        g.create_array("m", shape=(4,), dtype="i4")
        g.create_array("n", shape=(4,), dtype="i4")
        g._core = _ListThenChange(g._core, change)
        return g

    def delete() -> None:
        shutil.rmtree(tmp_path / "g.zarr" / "m")

    def replace_by_group() -> None:
        delete()
        oxzarr.create_group(tmp_path / "g.zarr", path="m")

    for listing in (
        lambda g: [name for name, _ in g.members()],
        lambda g: [name for name, _ in g.arrays()],
        lambda g: g.tree(),
    ):
        with pytest.warns(UserWarning, match="'m' .* deleted while the group was listed"):
            found = listing(group_with(delete))
        assert "m" not in found and "n" in found
    assert [name for name, _ in group_with(replace_by_group).arrays()] == ["n"]
    assert [name for name, _ in group_with(delete).groups()] == []


def test_deleting_from_a_v2_group_beside_a_v3_one_keeps_to_v2(tmp_path: Path) -> None:
    """A delete from a consolidated v2 group with a v3 zarr.json beside it (zarr-python's
    mode "a" can leave one) rewrote the v3 document, left .zmetadata naming the deleted
    array, and turned the handle into the v3 group's."""
    g2 = zarr.create_group(tmp_path, zarr_format=2)
    g2.create_array("x", shape=(3,), dtype="i4")[:] = 1
    g2.create_array("y", shape=(3,), dtype="i4")[:] = 2
    zarr.consolidate_metadata(tmp_path, zarr_format=2)
    zarr.create_group(tmp_path, zarr_format=3)
    v3_document = (tmp_path / "zarr.json").read_bytes()
    g = oxzarr.open_group(tmp_path, mode="r+", zarr_format=2)
    del g["x"]
    assert (g.zarr_format, sorted(g.keys())) == (2, ["y"])
    consolidated = json.loads((tmp_path / ".zmetadata").read_text())["metadata"]
    assert sorted(k for k in consolidated if k.endswith(".zarray")) == ["y/.zarray"]
    assert (tmp_path / "zarr.json").read_bytes() == v3_document
    assert sorted(zarr.open_group(tmp_path, mode="r", zarr_format=2).keys()) == ["y"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_node_under_a_group_of_the_other_format_gets_a_parent_of_its_own(
    tmp_path: Path, zarr_format: int
) -> None:
    """A node made under a group of the other format only had no parent of its own format:
    no group listed it (a v2 group hides v3 members). This format's group is written beside
    the other, as zarr-python writes it."""
    other = 5 - zarr_format
    for lib in (zarr, oxzarr):
        root = tmp_path / lib.__name__
        zarr.create_group(root, zarr_format=other).create_group("a")
        lib.create_array(root, name="a/new", shape=(3,), dtype="i4", zarr_format=zarr_format)
        ours = oxzarr.open_group(root, mode="r", zarr_format=zarr_format)
        assert [k for k, _ in ours.members(max_depth=None)] == ["a", "a/new"], lib
        theirs = zarr.open_group(root, mode="r", zarr_format=zarr_format)
        assert sorted(k for k, _ in theirs.members(max_depth=None)) == ["a", "a/new"], lib
        # The other format's hierarchy is as it was.
        older = zarr.open_group(root, mode="r", zarr_format=other)
        assert [k for k, _ in older.members(max_depth=None)] == ["a"], lib
    # A parent that is an array in this format is refused, whatever the other says.
    zarr.create_group(tmp_path / "b", zarr_format=other)
    zarr.create_array(tmp_path / "b", shape=(1,), dtype="i1", zarr_format=zarr_format)
    with pytest.raises(ContainsArrayError):
        oxzarr.create_group(tmp_path / "b", path="c", zarr_format=zarr_format)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_groups_methods_create_arrays_in_its_own_format_only(
    tmp_path: Path, zarr_format: int
) -> None:
    # zarr_format=None, or the other format, made an array of the default or other format
    # inside the group (a v3 array in a v2 group, which readers of the group do not see).
    # None or the group's own format is its format; another is refused (zarr-python refuses
    # the keyword on create_array, create_group and the like).
    other = 5 - zarr_format
    root = oxzarr.create_group(tmp_path / "g", zarr_format=zarr_format)
    made = {
        "create_array": lambda n, f: root.create_array(n, shape=(2,), dtype="i1", zarr_format=f),
        "create": lambda n, f: root.create(n, shape=(2,), dtype="i1", zarr_format=f),
        "require_array": lambda n, f: root.require_array(n, shape=(2,), dtype="i1", zarr_format=f),
        "zeros": lambda n, f: root.zeros(name=n, shape=(2,), zarr_format=f),
        "full": lambda n, f: root.full(name=n, shape=(2,), fill_value=1, zarr_format=f),
        "zeros_like": lambda n, f: root.zeros_like(name=n, data=np.ones(2), zarr_format=f),
    }
    for method, make in made.items():
        for given in (None, zarr_format):
            name = f"{method}_{given}"
            assert make(name, given).zarr_format == zarr_format, (method, given)
            assert root[name].zarr_format == zarr_format, (method, given)
        with pytest.raises(TypeError, match=f"zarr_format={other}"):
            make(f"{method}_other", other)
        assert f"{method}_other" not in root
    # An existing array is checked too, as one being made is.
    with pytest.raises(TypeError, match=f"zarr_format={other}"):
        root.require_array("create_array_None", shape=(2,), dtype="i1", zarr_format=other)
    # Groups take no zarr_format at all, as in zarr-python.
    for method in (root.create_group, root.require_group):
        with pytest.raises(TypeError, match="zarr_format"):
            method("sub", zarr_format=other)
    # Every array is a member as seen by zarr-python, which reads only the group's format.
    theirs = zarr.open_group(tmp_path / "g", mode="r", zarr_format=zarr_format)
    assert sorted(theirs.array_keys()) == sorted(root.array_keys())
    assert len(sorted(root.array_keys())) == 2 * len(made)


def _stored(root: Path) -> dict[str, bytes]:
    """Every file below `root`, by its path relative to it, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _below_an_array(root: Path, layout: str) -> tuple[str, Path]:
    """A store at `root` with an array that a node is then asked for below; gives that
    node's path, and where a group handle above it is (for its methods)."""
    if layout == "v2 hierarchy":
        # A v3 node asked for below a v2 array: its v3 root group is missing.
        group = oxzarr.open_group(root, mode="w", zarr_format=2)
        group.attrs["title"] = "v2 root"
        group.create_array("arr", shape=(4,), chunks=(2,), dtype="i1")[...] = 5
        return "arr/x", root
    # An array at a/b/arr without the group documents above it (as TensorStore writes it);
    # with "a group above", the root and a are groups, and a/b is missing.
    oxzarr.create_array(root, name="a/b/arr", shape=(4,), chunks=(2,), dtype="i1")[...] = 5
    (root / "a" / "b" / "zarr.json").unlink()
    if layout == "no groups":
        (root / "a" / "zarr.json").unlink()
        (root / "zarr.json").unlink()
    return "a/b/arr/x", root / "a"


@pytest.mark.parametrize("layout", ["v2 hierarchy", "no groups", "a group above"])
def test_a_create_refused_below_an_array_writes_nothing(tmp_path: Path, layout: str) -> None:
    """A node asked for below an array was refused only once the parent groups above that
    array were written: the v3 root zarr.json written beside a v2 hierarchy's .zgroup hid
    that hierarchy (its attributes and members) from oxzarr and zarr-python alike. Every
    parent is looked at first: a refused create leaves the store as it was."""
    root = tmp_path / "s.zarr"
    path, above = _below_an_array(root, layout)
    before = _stored(root)
    rel = path.removeprefix("a/") if layout == "a group above" else path
    data = np.arange(2, dtype="i1")
    creations: list[Any] = [
        lambda: oxzarr.create_array(root, name=path, shape=(1,), dtype="i1"),
        lambda: oxzarr.create_array(root, name=path, shape=(1,), dtype="i1", overwrite=True),
        lambda: oxzarr.create_group(root, path=path),
        lambda: oxzarr.create_group(root, path=path, overwrite=True),
        lambda: oxzarr.open_group(root, path=path, mode="a"),
        lambda: oxzarr.open_group(root, path=path, mode="w"),
        lambda: oxzarr.group(root, path=path),
        lambda: oxzarr.open(root, path=path, mode="a"),
        lambda: oxzarr.open(root, path=path, mode="a", shape=(1,), dtype="i1"),
        lambda: oxzarr.open_array(root, path=path, mode="a", shape=(1,), dtype="i1"),
        lambda: oxzarr.open_array(root, path=path, mode="w", shape=(1,), dtype="i1"),
        lambda: oxzarr.zeros((1,), store=root, path=path),
        lambda: oxzarr.array(data, store=root, path=path),
        lambda: oxzarr.from_array(root, data=data, name=path),
        lambda: oxzarr.from_array(root, data=oxzarr.array(data), name=path),
    ]
    if layout == "a group above":
        group = oxzarr.open_group(above, mode="r+")
        creations += [
            lambda: group.create_group(rel),
            lambda: group.require_group(rel),
            lambda: group.require_groups(rel),
            lambda: group.create_array(rel, shape=(1,), dtype="i1"),
            lambda: group.require_array(rel, shape=(1,), dtype="i1"),
            lambda: group.zeros(name=rel, shape=(1,)),
            lambda: group.__setitem__(rel, data),
        ]
    for number, create in enumerate(creations):
        with pytest.raises(ContainsArrayError, match="is an array"):
            create()
        assert _stored(root) == before, f"creation {number} wrote into the store"
    if layout == "v2 hierarchy":
        for lib in (oxzarr, zarr):
            group = lib.open_group(root, mode="r")
            assert group.metadata.zarr_format == 2
            assert dict(group.attrs) == {"title": "v2 root"}
            assert list(group.keys()) == ["arr"]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_create_hierarchy_checks_node_names_before_writing(
    tmp_path: Path, zarr_format: int
) -> None:
    """create_hierarchy took names every other way of creating a node refuses: "__x" and
    "..." were written, and "x/zarr.json" raised IsADirectoryError once x/zarr.json/zarr.json
    was. They are a ValueError (as create_group's, and zarr-python's for '.' and '..'), for
    every node named, before anything is written."""
    from zarr.core.group import GroupMetadata

    root = tmp_path / "h.zarr"
    group = oxzarr.open_group(root, mode="w", zarr_format=zarr_format)
    before = _stored(root)
    refused = ["...", "x/..", "x/zarr.json", "x/.zarray", "x/.zgroup", "x/.zattrs", ".zmetadata"]
    if zarr_format == 3:
        refused += ["__x", "x/__y"]
    good = GroupMetadata(zarr_format=zarr_format)
    for name in refused:
        # Each with a name that is fine, which is not written either.
        nodes = {"fine": good, name: good}
        with pytest.raises(ValueError, match="invalid node"):
            list(oxzarr.create_hierarchy(store=root, nodes=nodes))
        with pytest.raises(ValueError, match="invalid node"):
            list(group.create_hierarchy(nodes))
        with pytest.raises(ValueError, match="invalid node"):
            group.create_group(name)
        assert _stored(root) == before, name
    # A v2 name may start with "__" (xarray writes such members).
    if zarr_format == 2:
        made = [p for p, _ in oxzarr.create_hierarchy(store=root, nodes={"__x/y": good})]
        assert sorted(made) == ["__x", "__x/y"]


def test_create_hierarchy_refused_deletes_nothing(tmp_path: Path) -> None:
    """With overwrite=True, create_hierarchy deleted each named node it found as it went: one
    then refused further on (a node asked for below an array) had already deleted the
    others, the array "a" and its chunks here. Every node is looked at first."""
    from zarr.core.group import GroupMetadata

    root = tmp_path / "h.zarr"
    group = oxzarr.open_group(root, mode="w")
    group.create_array("a", shape=(4,), chunks=(2,), dtype="i4")[...] = [1, 2, 3, 4]
    group.create_array("b", shape=(2,), dtype="i4")[...] = 7
    before = _stored(root)
    again = zarr.open_array(root / "a").metadata
    nodes = {"a": again, "b/c": GroupMetadata()}
    with pytest.raises(ContainsArrayError, match="'b'"):
        list(oxzarr.create_hierarchy(store=root, nodes=nodes, overwrite=True))
    assert _stored(root) == before
    assert_same(oxzarr.open_array(root / "a")[...], np.array([1, 2, 3, 4], dtype="i4"))
    # A node replaced takes those below it along: the array at b is no parent in the way of
    # b/c when b itself is replaced.
    made = oxzarr.create_hierarchy(
        store=root, nodes={"b": GroupMetadata(), "b/c": GroupMetadata()}, overwrite=True
    )
    assert sorted((path, type(node).__name__) for path, node in made) == [
        ("b", "Group"),
        ("b/c", "Group"),
    ]
    assert sorted(oxzarr.open_group(root).keys()) == ["a", "b"]
