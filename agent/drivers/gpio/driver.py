"""The GPIO driver: switches and pulse counters in, LEDs and relays out, through gpiozero.

gpiozero calls edge callbacks on its own thread; they write the model directly (it is thread-safe), so the
event loop never waits on a pin. Outputs are driven from two places: their ACTIONs (handlers run on the
caller's thread) and SETs of their `state` resource, which the driver learns of from the model's events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ...core.model import (
    ActionCall,
    EventType,
    Model,
    ModelEvent,
    Parameter,
    ResourceKind,
    ResourceSpec,
    ValueMode,
    value_type,
)
from ...core.runtime import Component
from ...core.runtime.component import State
from .config import CounterConfig, GpioConfig, InputConfig, OutputConfig
from .debounce import PulseCounter, Settle
from .pins import make_factory

log = logging.getLogger("agent.drivers.gpio")

ACTIONS = ("turn_on", "turn_off", "toggle", "blink")
_BOOLEAN = value_type("boolean")


def _blink_parameters() -> tuple[Parameter, ...]:
    seconds = value_type("double")
    return (
        Parameter("on_time", seconds, required=False, default=0.5, minimum=0.01, maximum=60),
        Parameter("off_time", seconds, required=False, default=0.5, minimum=0.01, maximum=60),
        Parameter("n", value_type("int"), required=False, default=0, minimum=0, maximum=10_000),  # 0: forever
    )


class GpioDriver(Component):
    critical = False

    def __init__(self, config: GpioConfig, model: Model) -> None:
        super().__init__(f"driver:{config.id}")
        self.config = config
        self.model = model
        # Made once, not per start: a MockFactory's pins (what tests drive) must outlive a restart.
        self.factory = make_factory(config.pin_factory)
        self.devices: list[Any] = []
        self.outputs: dict[str, Any] = {}  # service -> DigitalOutputDevice
        self.counters: dict[str, PulseCounter] = {}
        self._settles: list[Settle] = []
        self._timers: dict[str, threading.Timer] = {}
        self._subscription: Any = None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        from gpiozero import DigitalInputDevice, DigitalOutputDevice

        self._close_devices()  # after a failed run, before pins are claimed again
        p = self.config.provider
        self.model.add_provider(p)
        try:
            for item in self.config.inputs:
                device = DigitalInputDevice(item.pin, pull_up=item.pull_up, pin_factory=self.factory)
                self.devices.append(device)
                self._add_input(item, device)
            for counter in self.config.counters:
                device = DigitalInputDevice(counter.pin, pull_up=counter.pull_up, pin_factory=self.factory)
                self.devices.append(device)
                self._add_counter(counter, device)
            for output in self.config.outputs:
                device = DigitalOutputDevice(
                    output.pin,
                    active_high=output.active_high,
                    initial_value=output.initial,
                    pin_factory=self.factory,
                )
                self.devices.append(device)
                self.outputs[output.service] = device
                self._add_output(output)
        except Exception:
            self._close_devices()
            raise
        services = set(self.outputs)
        self._subscription = self.model.subscribe(
            f"{self.name}.set",
            maxsize=100,
            filter=lambda e: (
                e.type is EventType.VALUE_UPDATED
                and e.source != "driver"  # our own writes are not requests
                and e.provider == p
                and e.service in services
                and e.resource == "state"
            ),
        )
        self.set_health(State.OK, f"{len(self.devices)} pins on {type(self.factory).__name__}")

    async def run(self) -> None:
        subscription = self._subscription
        while not self.stopping and subscription is not None:
            event = await subscription.aget()
            if event is None:  # closed by stop()
                return
            self._apply_set(event)

    async def stop(self) -> None:
        await super().stop()
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        self._close_devices()

    def _close_devices(self) -> None:
        for settle in self._settles:
            settle.close()
        for timer in self._timers.values():
            timer.cancel()
        for device in self.devices:
            device.close()  # releases the pin (and stops a blink thread)
        self._settles, self._timers, self.devices, self.outputs = [], {}, [], {}

    # --- inputs ------------------------------------------------------------------------------------

    def _add_input(self, item: InputConfig, device: Any) -> None:
        p = self.config.provider
        spec = ResourceSpec(
            _BOOLEAN, ResourceKind.STATE_VARIABLE, ValueMode.UPDATABLE, {"pin": str(item.pin)}
        )
        self.model.ensure_resource(p, item.service, item.resource, spec)

        def report(active: bool) -> None:
            self.model.update(p, item.service, item.resource, active)

        settle = Settle(item.bounce, lambda: device.is_active, report)
        self._settles.append(settle)
        device.when_activated = settle.edge
        device.when_deactivated = settle.edge
        settle.check()  # the level at start, without waiting for a first edge

    def _add_counter(self, item: CounterConfig, device: Any) -> None:
        p = self.config.provider
        counter = self.counters.setdefault(item.service, PulseCounter(item.bounce))  # kept across restarts
        meta = {"pin": str(item.pin)}
        self.model.ensure_resource(
            p, item.service, "pulses", ResourceSpec(value_type("long"), metadata=meta), value=counter.count
        )
        total_meta = {**meta, "per_pulse": item.per_pulse} | ({"unit": item.unit} if item.unit else {})
        self.model.ensure_resource(
            p,
            item.service,
            "total",
            ResourceSpec(value_type("double"), metadata=total_meta),
            value=counter.count * item.per_pulse,
        )

        def pulse() -> None:
            count = counter.pulse()
            if count is not None:
                self.model.update(p, item.service, "pulses", count)
                self.model.update(p, item.service, "total", round(count * item.per_pulse, 6))

        device.when_activated = pulse

    # --- outputs -----------------------------------------------------------------------------------

    def _add_output(self, item: OutputConfig) -> None:
        p, s = self.config.provider, item.service
        meta = {"pin": str(item.pin)}
        state = ResourceSpec(_BOOLEAN, ResourceKind.STATE_VARIABLE, ValueMode.MODIFIABLE, meta)
        self.model.ensure_resource(p, s, "state", state)
        self.model.update(p, s, "state", bool(self.outputs[s].is_active))
        for action in ACTIONS:
            handler = f"{self.config.id}.{s}.{action}"
            self.model.register_action_handler(handler, self._action(s, action))
            parameters = _blink_parameters() if action == "blink" else ()
            spec = ResourceSpec(_BOOLEAN, ResourceKind.ACTION, parameters=parameters, handler=handler)
            self.model.ensure_resource(p, s, action, spec)

    def _action(self, service: str, action: str) -> Callable[[ActionCall], bool]:
        def act(call: ActionCall) -> bool:
            device = self._output(service)
            self._cancel_refresh(service)
            if action == "turn_on":
                device.on()
            elif action == "turn_off":
                device.off()
            elif action == "toggle":
                device.toggle()
            else:
                on, off, n = call.params["on_time"], call.params["off_time"], call.params["n"]
                device.blink(on_time=on, off_time=off, n=n or None, background=True)
                if n:  # a finite blink ends off: refresh the state when it is over
                    self._refresh_later(service, n * (on + off) + 0.05)
                return self._publish(service, True)  # blinking counts as on
            return self._publish(service, bool(device.is_active))

        return act

    def _apply_set(self, event: ModelEvent) -> None:
        service = event.service or ""
        try:
            device = self._output(service)
        except KeyError:
            return
        self._cancel_refresh(service)
        if event.value:
            device.on()
        else:
            device.off()
        log.info("%s/%s set to %s", self.config.provider, service, bool(event.value))

    def _output(self, service: str) -> Any:
        device = self.outputs.get(service)
        if device is None:
            raise KeyError(f"output {service!r} is not running")
        return device

    def _publish(self, service: str, on: bool) -> bool:
        self.model.update(self.config.provider, service, "state", on)
        return on

    def _refresh_later(self, service: str, delay: float) -> None:
        def refresh() -> None:
            device = self.outputs.get(service)
            if device is not None:
                self._publish(service, bool(device.is_active))

        timer = threading.Timer(delay, refresh)
        timer.daemon = True
        self._timers[service] = timer
        timer.start()

    def _cancel_refresh(self, service: str) -> None:
        timer = self._timers.pop(service, None)
        if timer is not None:
            timer.cancel()

    def stats(self) -> dict[str, object]:
        return {
            "pins": len(self.devices),
            "pulses": {s: c.count for s, c in self.counters.items()},
            "bounces": {s: c.bounced for s, c in self.counters.items()},
        }
