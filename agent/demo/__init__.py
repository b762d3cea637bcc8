"""The demo's surroundings: throw-away local servers the demo agent publishes to (`services`), and a
bundled subscriber that shows what leaves the device (`watch`). Nothing here runs on a real appliance."""
