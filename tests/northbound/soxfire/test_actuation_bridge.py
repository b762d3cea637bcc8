"""transducerSetValue from authorized JIDs, and remote SOX devices mirrored into the model."""

from __future__ import annotations

from agent.core.model import Model, ResourceKind, ResourceSpec, ValueMode, value_type
from agent.northbound.soxfire.session import Endpoint, SoxSession
from agent.northbound.soxfire.wire import (
    DeviceMeta,
    Transducer,
    TransducerSetValue,
    TransducerValue,
    build_data,
    build_meta,
    build_set_value,
)

from .conftest import truck_model, until


def session(prosody, pki, user: str, password: str) -> SoxSession:
    return SoxSession(Endpoint(f"{user}@localhost", password, "127.0.0.1", prosody.port, ca_file=str(pki.ca)))


async def test_actuation_from_allowed_jids_only(rig, section, prosody, pki) -> None:
    model = truck_model()
    calls: list[dict] = []
    model.ensure_resource(
        "truck1",
        "control",
        "reset",
        ResourceSpec(
            value_type("boolean"), ResourceKind.ACTION, handler=lambda call: calls.append(dict(call.params))
        ),
    )
    r = await rig(section(actuation={"enabled": True, "allow": ["operator@localhost"]}), model)
    await until(lambda: r.publisher.metas_published >= 2)
    operator, boss = session(prosody, pki, "operator", "oppass"), session(prosody, pki, "boss", "bosspass")
    await operator.open()
    await boss.open()
    try:
        # boss administers the pubsub service (so the server lets it publish), but is not on the allow-list.
        await boss.publish(
            prosody.pubsub, "truck1_data", build_set_value([TransducerSetValue("control/setpoint", "12")])
        )
        await until(lambda: r.publisher.actuator.refused == 1)
        assert model.get("truck1", "control", "setpoint").value is None
        await operator.publish(
            prosody.pubsub,
            "truck1_data",
            build_set_value(
                [TransducerSetValue("control/setpoint", "42.5"), TransducerSetValue("control/reset", "{}")]
            ),
        )
        await until(lambda: r.publisher.actuator.applied == 2)
        assert model.get("truck1", "control", "setpoint").value == 42.5
        assert calls == [{}]
        # A read-only sensor cannot be driven, even by the operator.
        await operator.publish(
            prosody.pubsub, "truck1_data", build_set_value([TransducerSetValue("env/humidity", "1")])
        )
        await until(lambda: r.publisher.actuator.failed == 1)
    finally:
        await operator.close()
        await boss.close()


async def test_actuation_is_off_by_default(rig, section, prosody, pki) -> None:
    r = await rig(section())
    await until(lambda: r.publisher.metas_published >= 2)
    assert r.publisher.actuator is None
    operator = session(prosody, pki, "operator", "oppass")
    await operator.open()
    try:
        await operator.publish(
            prosody.pubsub, "truck1_data", build_set_value([TransducerSetValue("control/setpoint", "1")])
        )
    except Exception as error:
        assert "forbidden" in str(error)  # not a publisher of the node: the server refuses it
    else:
        raise AssertionError("a stranger could publish to _data")
    finally:
        await operator.close()


async def test_bridge_mirrors_a_remote_sox_device(rig, section, prosody, pki) -> None:
    remote = session(prosody, pki, "boss", "bosspass")  # a Keio-style device published by someone else
    await remote.open()
    for node in ("weather_meta", "weather_data"):
        await remote.create_node(
            prosody.pubsub, node, {"pubsub#access_model": "open", "pubsub#persist_items": "1"}
        )
    meta = DeviceMeta(
        "weather",
        "weather",
        "outdoor weather",
        transducers=(
            Transducer("temperature", "temperature", "celsius", "double"),
            Transducer("wind dir", "wind dir", "string"),
        ),
    )
    await remote.publish(prosody.pubsub, "weather_meta", build_meta(meta), "current")
    await remote.publish(
        prosody.pubsub, "weather_data", build_data([TransducerValue("temperature", "18.5", 1_700_000_000.0)])
    )

    model = Model()
    r = await rig(section(bridge=[{"device": "weather", "provider": "weather"}]), model)
    await until(lambda: "weather" in model and model.get("weather", "sox", "temperature").value == 18.5)
    assert model.get("weather", "sox", "temperature").metadata["unit"] == "celsius"
    wind = next(res for res in model.provider("weather").resources() if res.name.startswith("wind"))
    await remote.publish(
        prosody.pubsub,
        "weather_data",
        build_data(
            [
                TransducerValue("temperature", "19.25", 1_700_000_060.0),
                TransducerValue("wind dir", "NNE", 1_700_000_060.0),
            ]
        ),
    )
    await until(lambda: model.get("weather", "sox", "temperature").value == 19.25)
    await until(lambda: model.get("weather", "sox", wind.name).value == "NNE")
    assert model.get("weather", "sox", "temperature").timestamp == 1_700_000_060.0
    assert model.get("weather", "sox", "temperature").mode is ValueMode.UPDATABLE
    # Mirrored providers are not published back as our own devices.
    assert r.publisher.exclude == {"weather"}
    await remote.close()
