"""Pure analyses of a recorded history: replay, re-run planning, state-at, what-if.

Each takes a graph and the events of one execution and re-folds them through the
same `Execution` commands the engine calls; none touches a store or the clock.
"""
