"""Northbound integrations, one folder each (sensiNact REST facade, SOXFire, MQTT).

They read the model and the outbox, and seal what they send; they never import a driver.
"""
