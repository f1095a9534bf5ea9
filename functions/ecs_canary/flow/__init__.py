"""The deployment flow: the logic behind each handler (handlers → flow → store/routers/AWS).

``trigger`` turns ECS task events into deployments, ``steps`` holds the owner execution's states
(prepare, steady, listen, tick, promote), ``rollback`` records intents, restores and closes,
``interrupts`` turns alarms, crashing tasks and operator commands into intents and signals, and
``sweeper`` closes what an execution left behind.
"""
