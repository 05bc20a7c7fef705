"""The stream processor that resumes Phoenix experiments: its rooms, one concern each.

- ``events``, ``wire``, ``codec``: the pydantic contracts every topic carries, how they travel as
  bytes (a codec that never raises), and Faust's wrapper of it (the Kafka path's only);
- ``effects``, ``publish``: what a step receives and returns, and the one step that publishes it;
- ``context``: the state tables and parts every step shares (below both the app and the steps);
- ``steps/``: the pipeline's handlers (intake, coordinate, run a task, dispatch, evaluate);
- ``coordinator/``: the pager and request state machine behind the coordinate step;
- ``execution/``: running user code (tasks, evaluators), de-duplication, aborts;
- ``summary``: the per-request summary and the pure rules that fold outcomes into it;
- ``board``: the status page's view of every request a status topic tells of;
- ``registry``, ``evaluators``: ``@task`` / ``@evaluator`` registration and result rules;
- ``phoenix/``: the async Phoenix REST client and its named errors;
- ``kafka/``: connection settings, topic administration and errors shared by all clients;
- ``limits/``: provider rate limits shared by the fleet (named limiters, AIMD, each worker's share);
- ``tracing``, ``teams``, ``metrics``: spans, per-team servers and caps, worker counters;
- ``app/``: the Faust deployment: app factory, topics, tables, agents, web views;
- ``local/``: the embedded runner, the same steps on in-process queues (one-shot runs, no broker);
- ``errors``: the root of every named error.
"""
