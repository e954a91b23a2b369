"""The sync data-definition layer on a simulated replica set, through the real pymongo driver."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pymongo
import pytest
from clustersim.mongo import ReplicaSet
from mongomancy import Collection, CreateAllReport, Database
from mongomancy._sync.engine import Engine
from mongomancy.drift import same_options
from mongomancy.errors import LockTimeout
from mongomancy.types import CollectionDefinition, Document, Index


@pytest.fixture
def engine(rs: ReplicaSet) -> Iterator[Engine]:
    with Engine(rs.uri) as created:
        yield created


@pytest.fixture
def client(rs: ReplicaSet) -> Iterator[pymongo.MongoClient[Any]]:
    """A plain pymongo client, to set the scene and to look behind the layer's back."""
    plain: pymongo.MongoClient[Any]
    with pymongo.MongoClient(rs.uri) as plain:
        yield plain


def index_specs(client: pymongo.MongoClient[Any], db: str, coll: str) -> dict[str, Any]:
    return {ix["name"]: ix for ix in client[db][coll].list_indexes() if ix["name"] != "_id_"}


def test_readme_snippet(rs: ReplicaSet) -> None:
    # The README's usage, verbatim but for the engine's address.
    engine = Engine(rs.uri)
    logger = logging.getLogger(__name__)
    db = Database(engine=engine, logger=logger)
    game = CollectionDefinition(name="game", indices=[Index(fields={"genre": 1})])
    player = CollectionDefinition(
        name="player", indices=[Index(fields={"player_id": 1}, unique=True)]
    )
    db.add_collection(game)
    db.add_collection(player)
    db.create_all()
    cursor = db["game"].find({"genre": "adventure"})
    try:
        assert list(cursor) == []
        assert db.name == "test"  # no database in the URI
        assert set(db.list_collection_names()) >= {"game", "player"}
        assert "ix__game__genre" in {ix["name"] for ix in db.game.list_indexes()}
        assert db.player.index_information()["ux__player__player_id"]["unique"] is True
    finally:
        engine.dispose()


def test_name_defaults_to_the_uri_database(rs: ReplicaSet) -> None:
    with Engine(rs.uri.replace("/?", "/inventory?")) as engine:
        assert Database(engine=engine).name == "inventory"
        assert Database("other", None, engine).name == "other"


def test_collection_access(engine: Engine) -> None:
    definition = CollectionDefinition("game")
    db = Database("shop", None, engine, definition)
    assert "game" in db
    assert "nope" not in db
    assert 3 not in db
    assert db["game"] is db.get_collection("game") is db.game
    with pytest.raises(KeyError):
        db["nope"]
    with pytest.raises(KeyError):
        db.get_collection("nope")
    with pytest.raises(AttributeError):
        db.nope  # noqa: B018
    game = db.game
    assert isinstance(game, Collection)
    assert game.pymongo_collection is game.dialect_entity
    assert (game.name, game.full_name, game.database.name) == ("game", "shop.game", "shop")
    assert db.topology == [definition]
    db.add_collection(definition)  # an equal definition again: no-op
    assert db.topology == [definition]
    with pytest.raises(ValueError, match="already defined"):
        db.add_collection(CollectionDefinition("game", [Index({"a": 1})]))
    db.extend(CollectionDefinition("a"), CollectionDefinition("b"))
    assert [d.name for d in db.topology] == ["game", "a", "b"]
    assert db.ping() is True


def test_collection_operations_go_through_the_engine(engine: Engine) -> None:
    db = Database("ops", None, engine, CollectionDefinition("c"))
    c = db.c
    c.insert_one({"_id": 1, "k": "a", "n": 1})
    c.insert_many([{"_id": 2, "k": "b", "n": 2}, {"_id": 3, "k": "b", "n": 3}])
    assert c.find_one({"_id": 1})["k"] == "a"
    assert [d["_id"] for d in c.find({"k": "b"}, sort=[("_id", 1)])] == [2, 3]
    assert c.count_documents({"k": "b"}) == 2
    assert sorted(c.distinct("k")) == ["a", "b"]
    c.update_one({"_id": 1}, {"$set": {"n": 10}})
    c.update_many({"k": "b"}, {"$set": {"seen": True}})
    c.replace_one({"_id": 3}, {"k": "c", "n": 3})
    assert c.find_one_and_update({"_id": 1}, {"$set": {"x": 1}})["n"] == 10
    assert c.find_one_and_replace({"_id": 2}, {"k": "z"})["k"] == "b"
    assert c.find_one_and_delete({"_id": 2})["k"] == "z"
    c.bulk_write([pymongo.InsertOne({"_id": 4, "k": "d"})])
    assert [d["_id"] for d in c.aggregate([{"$match": {"k": {"$in": ["c", "d"]}}}])] == [3, 4]
    c.delete_one({"_id": 4})
    c.delete_many({})
    assert c.count_documents({}) == 0
    c.create_index([("k", 1)], name="k1")
    c.create_indexes([pymongo.IndexModel([("n", 1)], name="n1")])
    assert {"k1", "n1"} <= set(c.index_information())
    c.drop_index("k1")
    assert "k1" not in {ix["name"] for ix in c.list_indexes()}


def test_create_all_report_and_second_run(engine: Engine) -> None:
    game = CollectionDefinition(
        "game",
        [Index({"genre": 1}), Index({"code": 1}, unique=True)],
        [Document({"code": "pong"}, {"code": "pong", "genre": "arcade"})],
    )
    db = Database("report", None, engine, game)
    first = db.create_all()
    assert isinstance(first, CreateAllReport)
    assert first.collections_created == ("game",)
    assert first.indexes_created == (("game", "ix__game__genre"), ("game", "ux__game__code"))
    assert first.documents_upserted == (("game", {"code": "pong"}),)
    assert first.drift == ()
    second = db.create_all(skip_existing=False)
    assert second == CreateAllReport()
    with pytest.raises(AttributeError):
        second.drift = ()  # type: ignore[misc]


def test_drift_is_reported_and_repaired_only_on_request(
    engine: Engine, client: pymongo.MongoClient[Any]
) -> None:
    # Same name, other key and options; and the wanted key pattern under another name.
    client.drift.game.create_index([("genre", -1)], name="ix__game__genre", unique=True)
    client.drift.game.create_index([("code", 1)], name="by_code")
    definition = CollectionDefinition(
        "game", [Index({"genre": 1}), Index({"code": 1}, name="code_ix")]
    )
    db = Database("drift", None, engine, definition)

    report = db.create_all(skip_existing=False)
    drift = {(d.name, d.actual_name): d for d in report.drift}
    assert set(drift) == {("ix__game__genre", "ix__game__genre"), ("code_ix", "by_code")}
    genre = drift["ix__game__genre", "ix__game__genre"]
    assert genre.collection == "game"
    assert genre.repaired is False
    assert (genre.expected_key, genre.expected_options) == ((("genre", 1),), {})
    assert (genre.actual_key, genre.actual_options) == ((("genre", -1),), {"unique": True})
    assert report.indexes_created == ()
    untouched = index_specs(client, "drift", "game")
    assert set(untouched) == {"ix__game__genre", "by_code"}
    assert dict(untouched["ix__game__genre"]["key"]) == {"genre": -1}

    repaired = db.create_all(repair=True)
    assert {(d.name, d.repaired) for d in repaired.drift} == {
        ("ix__game__genre", True),
        ("code_ix", True),
    }
    assert set(repaired.indexes_created) == {("game", "ix__game__genre"), ("game", "code_ix")}
    fixed = index_specs(client, "drift", "game")
    assert set(fixed) == {"ix__game__genre", "code_ix"}
    assert list(fixed["ix__game__genre"]["key"].items()) == [("genre", 1)]
    assert "unique" not in fixed["ix__game__genre"]
    assert db.create_all(skip_existing=False).drift == ()


def test_option_drift_is_compared(engine: Engine, client: pymongo.MongoClient[Any]) -> None:
    client.opts.c.create_index([("at", 1)], name="ttl", expireAfterSeconds=60)
    client.opts.c.create_index([("s", 1)], name="s", sparse=True)
    client.opts.c.create_index(
        [("p", 1)], name="p", partialFilterExpression={"p": {"$exists": True}}
    )
    same = CollectionDefinition(
        "c",
        [
            Index({"at": 1}, name="ttl", expire_after_seconds=60),
            Index({"s": 1}, name="s", sparse=True),
            Index({"p": 1}, name="p", partial_filter={"p": {"$exists": True}}),
        ],
    )
    assert Database("opts", None, engine, same).create_all(skip_existing=False).drift == ()
    other = CollectionDefinition(
        "c",
        [
            Index({"at": 1}, name="ttl", expire_after_seconds=30),
            Index({"s": 1}, name="s"),
            Index({"p": 1}, name="p", partial_filter={"p": {"$gt": 1}}),
        ],
    )
    report = Database("opts", None, engine, other).create_all()
    assert {d.name for d in report.drift} == {"ttl", "s", "p"}


def test_index_added_later_needs_skip_existing_false(
    engine: Engine, client: pymongo.MongoClient[Any]
) -> None:
    Database("later", None, engine, CollectionDefinition("c", [Index({"a": 1})])).create_all()
    grown = CollectionDefinition("c", [Index({"a": 1}), Index({"b": 1}, unique=True)])
    db = Database("later", None, engine, grown)
    assert db.create_all().indexes_created == ()  # existing collection left alone
    assert "ux__c__b" not in index_specs(client, "later", "c")
    assert db.create_all(skip_existing=False).indexes_created == (("c", "ux__c__b"),)
    assert index_specs(client, "later", "c")["ux__c__b"]["unique"] is True


def test_default_documents_are_idempotent_and_never_overwrite(engine: Engine) -> None:
    definition = CollectionDefinition(
        "settings",
        default_docs=[
            Document({"key": "theme"}, {"key": "theme", "value": "dark"}),
            Document({"key": "lang"}, {"value": "en"}),
        ],
    )
    db = Database("docs", None, engine, definition)
    first = db.create_all()
    assert first.documents_upserted == (
        ("settings", {"key": "theme"}),
        ("settings", {"key": "lang"}),
    )
    db.settings.update_one({"key": "theme"}, {"$set": {"value": "light"}})
    second = db.create_all(skip_existing=False)
    assert second.documents_upserted == ()
    assert db.settings.count_documents({}) == 2
    assert db.settings.find_one({"key": "theme"})["value"] == "light"
    assert db.settings.find_one({"key": "lang"})["value"] == "en"


def test_keyless_documents_go_only_into_an_empty_collection(engine: Engine) -> None:
    definition = CollectionDefinition(
        "seed", default_docs=[Document(None, {"n": 1}), Document(None, {"n": 2})]
    )
    db = Database("keyless", None, engine, definition)
    assert db.create_all().documents_inserted == (("seed", 2),)
    assert db.create_all(skip_existing=False).documents_inserted == ()
    assert sorted(d["n"] for d in db.seed.find({})) == [1, 2]


_CHILD = """
from mongomancy._sync.engine import Engine
from mongomancy._sync.schema import Database
from mongomancy.types import CollectionDefinition, Document, Index

definitions = [
    CollectionDefinition(
        f"c{i}",
        [Index({"a": 1}), Index({"b": 1}, unique=True)],
        [Document({"b": 1}, {"b": 1, "v": "x"}), Document(None, {"b": 2})],
    )
    for i in range(4)
]
with Engine(URI) as engine:
    Database("race", None, engine, *definitions, wait_step=0.02).create_all(skip_existing=False)
"""


def _assert_race_outcome(client: pymongo.MongoClient[Any]) -> None:
    db = client.race
    assert {f"c{i}" for i in range(4)} <= set(db.list_collection_names())
    for i in range(4):
        names = sorted(index_specs(client, "race", f"c{i}"))
        assert names == [f"ix__c{i}__a", f"ux__c{i}__b"]
        assert db[f"c{i}"].count_documents({"b": 1}) == 1
        assert db[f"c{i}"].count_documents({"b": 2}) == 1
    assert db.mongomancy_lock.count_documents({}) == 0


def test_create_all_from_several_processes(
    rs: ReplicaSet, client: pymongo.MongoClient[Any]
) -> None:
    context = multiprocessing.get_context("spawn")
    code = _CHILD.replace("URI", repr(rs.uri))
    children = [context.Process(target=exec, args=(code, {})) for _ in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [child.exitcode for child in children] == [0, 0, 0, 0]
    _assert_race_outcome(client)


def test_create_all_from_several_threads(
    engine: Engine, rs: ReplicaSet, client: pymongo.MongoClient[Any]
) -> None:
    code = _CHILD.replace("URI", repr(rs.uri))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            exec(code, {})
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    _assert_race_outcome(client)


def test_threads_sharing_one_database_create_once(engine: Engine) -> None:
    db = Database("shared", None, engine, CollectionDefinition("c", [Index({"a": 1})]))
    reports: list[CreateAllReport] = []
    threads = [threading.Thread(target=lambda: reports.append(db.create_all())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(len(r.collections_created) for r in reports) == [0, 0, 0, 1]
    assert sum(len(r.indexes_created) for r in reports) == 1


def _lock_doc(owner: str, expires_in: timedelta) -> dict[str, Any]:
    return {"_id": "create_all:lk", "owner": owner, "expires_at": datetime.now(UTC) + expires_in}


def test_stale_lock_is_taken_over_at_once(engine: Engine, client: pymongo.MongoClient[Any]) -> None:
    client.lk.mongomancy_lock.insert_one(_lock_doc("crashed", timedelta(minutes=-1)))
    # max_wait=0: any wait at all would raise LockTimeout.
    db = Database("lk", None, engine, CollectionDefinition("c"), max_wait=0.0)
    assert db.create_all().collections_created == ("c",)
    assert client.lk.mongomancy_lock.count_documents({}) == 0


def test_held_lock_times_out(engine: Engine, client: pymongo.MongoClient[Any]) -> None:
    client.lk.mongomancy_lock.insert_one(_lock_doc("alive", timedelta(hours=1)))
    db = Database("lk", None, engine, CollectionDefinition("c"), wait_step=0.01, max_wait=0.05)
    with pytest.raises(LockTimeout):
        db.create_all()
    assert client.lk.mongomancy_lock.find_one({"owner": "alive"}) is not None
    assert "c" not in client.lk.list_collection_names()


def test_lock_released_after_an_error(
    engine: Engine, client: pymongo.MongoClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database("lk", None, engine, CollectionDefinition("c", [Index({"a": 1})]), max_wait=0.0)

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(db, "_sync_indexes", broken)
    with pytest.raises(RuntimeError, match="boom"):
        db.create_all()
    assert client.lk.mongomancy_lock.count_documents({}) == 0
    monkeypatch.undo()
    assert db.create_all(skip_existing=False).indexes_created == (("c", "ix__c__a"),)


def test_create_collection_tolerates_existing_and_drop(
    engine: Engine, client: pymongo.MongoClient[Any]
) -> None:
    client.cc.create_collection("present")
    db = Database("cc", None, engine)
    present = db.create_collection(CollectionDefinition("present"))
    fresh = db.create_collection(CollectionDefinition("fresh"))
    assert (present.name, fresh.name) == ("present", "fresh")
    assert {"present", "fresh"} <= set(db.list_collection_names())
    assert "present" in db
    assert "fresh" in db
    db.drop()
    assert "cc" not in client.list_database_names()


def test_cached_collections_follow_a_reconnect(engine: Engine) -> None:
    db = Database("hook", None, engine, CollectionDefinition("c"))
    before = db.c.dialect_entity
    db.c.insert_one({"_id": 1})
    engine.reconnect()
    assert db.c.dialect_entity is not before
    assert db.c.dialect_entity.database.client is engine.client
    assert db.c.find_one({"_id": 1}) == {"_id": 1}


def test_collation_compared_as_a_real_server_lists_it() -> None:
    # The simulator accepts but does not list collations, so this checks the comparison alone:
    # a real server lists every collation field with its default filled in.
    listed = {
        "locale": "en",
        "caseLevel": False,
        "caseFirst": "off",
        "strength": 2,
        "numericOrdering": False,
        "alternate": "non-ignorable",
        "maxVariable": "punct",
        "normalization": False,
        "backwards": False,
        "version": "57.1",
    }
    wanted = Index({"a": 1}, collation={"locale": "en", "strength": 2}).options()
    assert same_options(wanted, {"collation": listed})
    assert not same_options(wanted, {"collation": {**listed, "strength": 3}})
    assert not same_options(wanted, {})
    assert not same_options({}, {"collation": listed})
    assert same_options({}, {"collation": {"locale": "simple"}})
