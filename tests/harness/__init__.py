"""What the integration tests share, one small module a concern.

- `site`: a fake outside HTTP site on loopback (what the `http` element calls), and
  the guard that fails a test whose code connects anywhere but loopback.
- `clock`: a clock the tests move, and the timestamps it gives.
- `looms`: Loom built for a test: settings, a started Loom, the API over it.
- `api`: the REST API as a client with a token sees it: tokens, create, start,
  wait for an execution to finish, the list of executions.
- `waits`: waiting on an eventually consistent Loom without sleeping blindly:
  until a check holds, until an execution finished, until the timers passed a time.
- `replays`: replaying what an execution recorded against today's code.
- `schedules`: processes with schedules, moving the clock past ticks, what they started.
"""
