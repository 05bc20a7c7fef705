"""Examples for users of the deployment: a task module and (later) a consumer of its events."""
