"""The Faust stream processor that resumes Phoenix experiments.

Rooms, one concern each:

- ``events``: the pydantic models every topic carries (the event contracts);
- ``codec``: how those models travel as JSON through Faust topics;
- ``summary``: the per-request summary and the pure rules that fold outcomes into it;
- ``registry``: ``@task`` registration and calling a task by parameter name;
- ``phoenix``: the async Phoenix REST client and its named errors;
- ``tracing``: OpenTelemetry providers per Phoenix project and Kafka header propagation;
- ``execution``: running one work item (task, span, POST) without any Kafka;
- ``app``: the app factory that wires topics, tables, agents and web views together.
"""
