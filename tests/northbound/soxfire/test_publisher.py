"""SoxPublisher against a real Prosody, read by a Keio-style anonymous subscriber."""

from __future__ import annotations

import json

from agent.core.model import ResourceSpec, value_type
from agent.northbound.soxfire.session import Endpoint, PubsubError, SoxSession
from agent.northbound.soxfire.wire import parse_data

from .conftest import until
from .keio_client import KeioSubscriber, transducers


async def test_every_reading_reaches_an_anonymous_keio_subscriber_in_order(rig, section, subscriber) -> None:
    r = await rig(section())
    await until(lambda: r.publisher.metas_published >= 2)
    assert set(await subscriber.devices()) == {"truck1", "truck2"}
    meta = await subscriber.meta("truck1")
    found = transducers(meta)
    assert found["env/temperature"]["units"] == "degC"
    assert found["env/temperature"]["minvalue"] == "-40" and found["env/temperature"]["maxvalue"] == "85"
    assert found["control/setpoint"]["canactuate"] == "true"
    assert found["env/humidity"]["canactuate"] == "false"
    await subscriber.subscribe("truck1")
    await subscriber.subscribe("truck2")

    for i in range(300):  # several readings queue up per round: batched items
        r.model.update("truck1", "env", "temperature", 20.0 + i / 10, timestamp=1_700_000_000 + i)
        r.model.update("truck2", "gps", "speed", float(i), timestamp=1_700_000_000 + i)
    await until(lambda: len(subscriber.readings) >= 600)
    await until(lambda: r.pending() == 0)  # acknowledged in the outbox only after the IQ results

    temps = [x for x in subscriber.readings if x.id == "env/temperature"]
    assert [float(x.typed) for x in temps] == [20.0 + i / 10 for i in range(300)]
    assert temps[0].timestamp == "2023-11-14T22:13:20.000Z"
    envelope = json.loads(temps[0].raw)  # rawValue: outbox identity + the sealed record
    assert envelope["seq"] >= 1 and envelope["uid"]
    assert json.loads(envelope["sealed"])["value"] == 20.0
    assert len({x.uid for x in subscriber.readings}) == 600
    assert subscriber.items < 600  # several readings per item
    assert r.publisher.items_published == subscriber.items


async def test_meta_is_republished_when_the_shape_changes(rig, section, subscriber) -> None:
    r = await rig(section())
    await until(lambda: r.publisher.metas_published >= 2)
    await subscriber.subscribe("truck1", "_meta")  # send_last_published_item=on_sub: the current meta
    await until(lambda: len(subscriber.metas) == 1)
    r.model.ensure_resource(
        "truck1", "env", "pressure", ResourceSpec(value_type("double"), metadata={"unit": "hPa"})
    )
    await until(lambda: len(subscriber.metas) >= 2)
    assert transducers(subscriber.metas[-1])["env/pressure"]["units"] == "hPa"
    # A new provider becomes a new device, nodes and all.
    r.model.ensure_resource("truck3", "env", "noise", ResourceSpec(value_type("double")))
    r.model.update("truck3", "env", "noise", 55.5)
    await until(lambda: r.publisher.published >= 1)
    assert "truck3" in await subscriber.devices()


async def test_existing_nodes_are_reused(rig, section, prosody, pki) -> None:
    owner = SoxSession(Endpoint("boss@localhost", "bosspass", "127.0.0.1", prosody.port, ca_file=str(pki.ca)))
    await owner.open()
    assert await owner.create_node(prosody.pubsub, "truck1_data", {"pubsub#access_model": "open"})
    r = await rig(section())
    r.model.update("truck1", "env", "humidity", 40.0)
    await until(lambda: r.publisher.published >= 1)
    item = await owner.last_item(prosody.pubsub, "truck1_data")
    assert parse_data(item).values[0].typed_value == "40.0"
    await owner.close()


async def test_oversize_batches_are_split_under_the_item_limit(rig, section, prosody, subscriber) -> None:
    r = await rig(section(max_item_bytes=2048))
    await until(lambda: r.publisher.metas_published >= 2)
    await subscriber.subscribe("truck1")
    sizes: list[int] = []
    original = r.publisher.session.publish

    async def measuring(service, node, payload, item_id=None):  # type: ignore[no-untyped-def]
        from slixmpp.xmlstream import tostring

        sizes.append(len(tostring(payload).encode()))
        await original(service, node, payload, item_id)

    r.publisher.session.publish = measuring
    for i in range(100):
        r.model.update("truck1", "env", "humidity", float(i))
    await until(lambda: len(subscriber.readings) >= 100)
    assert [float(x.typed) for x in subscriber.readings] == [float(i) for i in range(100)]
    assert max(sizes) <= 2048 and len(sizes) > 5


async def test_whitelisted_data_is_refused_to_strangers(rig, section, subscriber) -> None:
    r = await rig(section(data_access="whitelist", data_members=["operator@localhost"]))
    await until(lambda: r.publisher.metas_published >= 2)
    await subscriber.meta("truck1")  # _meta stays open
    try:
        await subscriber.subscribe("truck1")
    except Exception as error:  # IqError: the anonymous reader is not on the whitelist
        assert "forbidden" in str(getattr(error, "condition", error)) or "not-authorized" in str(error)
    else:
        raise AssertionError("an anonymous subscriber got into a whitelisted _data node")


async def test_node_creation_forbidden_is_reported_and_nothing_is_lost(rig, section) -> None:
    r = await rig(section(user="plain"))  # not an admin of Prosody's pubsub: may not create nodes
    r.model.update("truck1", "env", "humidity", 41.0)
    await until(lambda: "forbidden" in r.health().detail)
    assert r.health().state == "failed"
    await until(lambda: r.pending() >= 1)


def test_pubsub_error_names_the_condition() -> None:
    assert "conflict" in str(PubsubError("create node", "x_meta", "conflict"))


__all__ = ["KeioSubscriber"]
